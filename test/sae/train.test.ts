import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng, Tensor, randn } from '../../src/index.js';
import { estimators, saeLoss, type LossSettings } from '../../src/sae/losses.js';
import { geometricMedian } from '../../src/sae/stats.js';
import { meanMaxCosine, SyntheticFeatures } from '../../src/sae/synthetic.js';
import {
  annealedK,
  SaeTrainError,
  topkDeadWindow,
  trainSae,
  type SaeTrainOptions,
  type TrainingData,
} from '../../src/sae/train.js';
import { CheckpointSettingsError } from '../../src/train/checkpoint.js';
import { gradcheck } from '../engine/gradcheck.js';

const tmp = (tag: string) => fs.mkdtempSync(path.join(os.tmpdir(), `sonde-sae-${tag}-`));

function f64(shape: number[], seed: number, scale = 1): Tensor {
  const r = new Rng(seed);
  return new Tensor(
    Float64Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => r.normal() * scale),
    shape,
  );
}

const settings = (
  architecture: LossSettings['architecture'],
  over: Partial<LossSettings> = {},
): LossSettings => ({
  architecture,
  k: 3,
  applyBDecToInput: true,
  l1DecoderNorm: true,
  auxKCoefficient: 0,
  kAux: 4,
  bandwidth: 1e-3,
  ...over,
});

describe('SAE losses: gradients against finite differences (float64)', () => {
  const n = 5;
  const d = 4;
  const s = 7;
  const inputs = (extra: Record<string, Tensor> = {}) => ({
    x: f64([n, d], 1),
    W_enc: f64([d, s], 2, 0.5),
    b_enc: f64([s], 3, 0.3),
    W_dec: f64([s, d], 4, 0.5),
    b_dec: f64([d], 5, 0.1),
    ...extra,
  });
  const run =
    (arch: LossSettings['architecture'], names: string[], st: LossSettings, dead?: Tensor) =>
    (...ts: Tensor[]) => {
      const p = new Map(names.map((nm, i) => [nm, ts[i]!] as const));
      const x = p.get('x')!;
      p.delete('x');
      const y = p.get('y') ?? x;
      p.delete('y');
      return saeLoss(
        p,
        { ...st, architecture: arch },
        {
          x,
          y,
          coef: new Tensor(Float64Array.from([0.7]), [1]),
          dead: dead ?? new Tensor(new Float64Array(s), [s]),
        },
      ).loss;
    };

  it('standard ReLU with decoder-norm-weighted L1', async () => {
    const inp = inputs();
    const names = Object.keys(inp);
    const r = gradcheck(run('standard', names, settings('standard')), Object.values(inp), {
      name: 'sae standard',
    });
    expect(r.dtype).toBe('float64');
    expect(r.checked).toBeGreaterThan(80);
  });

  it('TopK with a transcoder skip', async () => {
    const inp = inputs({ W_skip: f64([d, d], 6, 0.2) });
    const names = Object.keys(inp);
    // The aux-k loss stops gradients through its residual, which finite differences cannot see; it has
    // its own test below.
    const st = settings('topk', { applyBDecToInput: false });
    const r = gradcheck(run('topk', names, st), Object.values(inp), { name: 'sae topk' });
    expect(r.checked).toBeGreaterThan(80);
  });

  it('gated (magnitude path, L1 on the gate, frozen-decoder auxiliary loss)', async () => {
    const { b_enc: _drop, ...rest } = inputs();
    const inp = { ...rest, b_gate: f64([s], 7, 0.3), r_mag: f64([s], 8, 0.2), b_mag: f64([s], 9, 0.3) };
    const names = Object.keys(inp);
    // W_dec and b_dec are frozen in the auxiliary term (a stop-gradient finite differences cannot see).
    const wrt = names.map((_, i) => i).filter((i) => names[i] !== 'W_dec' && names[i] !== 'b_dec');
    const r = gradcheck(run('gated', names, settings('gated')), Object.values(inp), {
      name: 'sae gated',
      wrt,
    });
    expect(r.checked).toBeGreaterThan(50);
  });

  it("the aux-k loss reaches only dead latents' encoder columns", async () => {
    const inp = inputs();
    const ts = Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, v.requireGrad()]));
    const dead = new Tensor(Float64Array.from([1, 1, 0, 0, 0, 0, 0]), [s]);
    const p = new Map(Object.entries(ts).filter(([k]) => k !== 'x'));
    // Top-k loss gradients minus the same without aux: only latents 0 and 1 may differ.
    const grad = async (coef: number) => {
      for (const t of Object.values(ts)) t.grad = null;
      const parts = saeLoss(p, settings('topk', { auxKCoefficient: coef, applyBDecToInput: false }), {
        x: ts.x!,
        y: ts.x!,
        coef: new Tensor(Float64Array.from([0]), [1]),
        dead,
      });
      parts.loss.backward();
      return Float64Array.from((await ts.W_enc!.grad!.data()) as Float64Array);
    };
    const withAux = await grad(1);
    const without = await grad(0);
    let deadDiff = 0;
    for (let j = 0; j < d; j++)
      for (let i = 0; i < s; i++) {
        const diff = Math.abs(withAux[j * s + i]! - without[j * s + i]!);
        if (i < 2) deadDiff += diff;
        else expect(diff).toBeLessThan(1e-12);
      }
    expect(deadDiff).toBeGreaterThan(1e-3);
  });

  it('the revive term reaches only long-dead latents (encoder columns, biases, decoder rows)', async () => {
    const inp = inputs();
    const ts = Object.fromEntries(Object.entries(inp).map(([k, v]) => [k, v.requireGrad()]));
    const dead = new Tensor(Float64Array.from([1, 1, 0, 0, 0, 0, 1]), [s]);
    const longDead = new Tensor(Float64Array.from([0, 1, 0, 0, 0, 0, 1]), [s]);
    const p = new Map(Object.entries(ts).filter(([k]) => k !== 'x'));
    // Gradients with the long-dead mask minus the same without: only latents 1 and 6 may differ.
    const grads = async (withLong: boolean) => {
      for (const t of Object.values(ts)) t.grad = null;
      const parts = saeLoss(p, settings('topk', { auxKCoefficient: 1, applyBDecToInput: false }), {
        x: ts.x!,
        y: ts.x!,
        coef: new Tensor(Float64Array.from([0]), [1]),
        dead,
        longDead: withLong ? longDead : undefined,
      });
      parts.loss.backward();
      return Promise.all(
        ['W_enc', 'b_enc', 'W_dec'].map(async (k) =>
          Float64Array.from((await ts[k]!.grad!.data()) as Float64Array),
        ),
      );
    };
    const [a, b] = [await grads(true), await grads(false)];
    const latentOf = [(i: number) => i % s, (i: number) => i, (i: number) => Math.floor(i / d)];
    let revived = 0;
    a.forEach((g, t) =>
      g.forEach((v, i) => {
        const diff = Math.abs(v - b[t]![i]!);
        if ([1, 6].includes(latentOf[t]!(i))) revived += diff;
        else expect(diff).toBeLessThan(1e-12);
      }),
    );
    expect(revived).toBeGreaterThan(1e-3);
  });

  it('the aux-k loss is normalised by the residual variance (Gao et al.), on the target variance scale', async () => {
    const inp = inputs();
    const p = new Map(Object.entries(inp).filter(([k]) => k !== 'x'));
    const dead = Float64Array.from([1, 0, 1, 0, 0, 1, 0]);
    const parts = saeLoss(p, settings('topk', { auxKCoefficient: 1, applyBDecToInput: false, kAux: 2 }), {
      x: inp.x,
      y: inp.x,
      coef: new Tensor(Float64Array.from([0]), [1]),
      dead: new Tensor(dead, [s]),
    });
    // By hand: top-3 latents reconstruct x; the residual loses its components along their decoder rows;
    // the 2 dead latents with the largest encoder responses (x W_enc, no b_enc; relu) fit what is left.
    const [x, We, be, Wd, bd] = (await Promise.all(
      ['x', 'W_enc', 'b_enc', 'W_dec', 'b_dec'].map((k) => (inp as Record<string, Tensor>)[k]!.data()),
    )) as Float64Array[];
    const residual: number[][] = [];
    const auxRecon: number[][] = [];
    for (let r = 0; r < n; r++) {
      const pre = Array.from({ length: s }, (_, i) => {
        let v = be![i]!;
        for (let j = 0; j < d; j++) v += x![r * d + j]! * We![j * s + i]!;
        return v;
      });
      const enc = pre.map((v, i) => v - be![i]!);
      const order = (ids: number[], by: number[]) => [...ids].sort((a, b) => by[b]! - by[a]!);
      const top = order(
        pre.map((_, i) => i),
        pre,
      ).slice(0, 3);
      const auxTop = order(
        pre.flatMap((_, i) => (dead[i] ? [i] : [])),
        enc,
      ).slice(0, 2);
      const decode = (ids: number[], a: number[]) =>
        Array.from({ length: d }, (_, j) =>
          ids.reduce((t, i) => t + Math.max(0, a[i]!) * Wd![i * d + j]!, 0),
        );
      const rec = decode(top, pre);
      const res = rec.map((v, j) => x![r * d + j]! - (v + bd![j]!));
      const unexpressed = [...res];
      for (const i of top) {
        if (!(pre[i]! > 0)) continue;
        const c = res.reduce((a, v, j) => a + v * Wd![i * d + j]!, 0);
        for (let j = 0; j < d; j++) unexpressed[j]! -= c * Wd![i * d + j]!;
      }
      residual.push(unexpressed);
      auxRecon.push(decode(auxTop, enc));
    }
    const variance = (rows: number[][]) => {
      const mean = Array.from({ length: d }, (_, j) => rows.reduce((a, row) => a + row[j]!, 0) / n);
      return rows.reduce((a, row) => a + row.reduce((b, v, j) => b + (v - mean[j]!) ** 2, 0), 0) / n;
    };
    const xs = Array.from({ length: n }, (_, r) => Array.from(x!.subarray(r * d, (r + 1) * d)));
    const err =
      auxRecon.reduce((a, row, r) => a + row.reduce((b, v, j) => b + (v - residual[r]![j]!) ** 2, 0), 0) / n;
    expect(await parts.aux.item()).toBeCloseTo((err * variance(xs)) / variance(residual), 10);
  });
});

describe('JumpReLU straight-through estimators', () => {
  it('pass gradient to z through H(z - θ) and to θ through the rectangle kernel', async () => {
    const eps = 0.1;
    const z = new Tensor(Float64Array.from([0.5, 1.04, 0.97, 2, 1.2, 0.99]), [2, 3]).requireGrad();
    const theta = new Tensor(Float64Array.from([1, 1, 1]), [3]).requireGrad();
    const y = estimators.jumpRelu(z, theta, eps);
    expect(Array.from((await y.data()) as Float64Array)).toEqual([0, 1.04, 0, 2, 1.2, 0]);
    const g = new Tensor(Float64Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    y.backward(g);
    expect(Array.from((await z.grad!.data()) as Float64Array)).toEqual([0, 2, 0, 4, 5, 0]);
    // dθ_j = Σ_rows -(θ/ε) g K((z-θ)/ε), K = 1 where |z-θ| < ε/2: entries 1.04 (g=2), 0.97 (g=3), 0.99 (g=6).
    const gt = Array.from((await theta.grad!.data()) as Float64Array);
    expect(gt[0]).toBeCloseTo(0, 12);
    expect(gt[1]).toBeCloseTo(-10 * 2, 10);
    expect(gt[2]).toBeCloseTo(-10 * (3 + 6), 10);
  });

  it('the L0 step has no gradient to z and -(1/ε)K to θ', async () => {
    const eps = 0.1;
    const z = new Tensor(Float64Array.from([1.02, 0.5, 1.5]), [1, 3]).requireGrad();
    const theta = new Tensor(Float64Array.from([1, 0.52, 1]), [3]).requireGrad();
    const y = estimators.stepFn(z, theta, eps);
    expect(Array.from((await y.data()) as Float64Array)).toEqual([1, 0, 1]);
    y.backward(new Tensor(Float64Array.from([1, 1, 1]), [1, 3]));
    expect(z.grad).toBeNull();
    expect(Array.from((await theta.grad!.data()) as Float64Array).map((v) => +v.toFixed(9))).toEqual([
      -10, -10, 0,
    ]);
  });
});

describe('geometric median', () => {
  it('is the centre of a symmetric set and ignores an outlier the mean follows', async () => {
    const square = Float32Array.from([1, 1, -1, 1, 1, -1, -1, -1, 0, 0].map((v) => v + 3));
    expect(Array.from(geometricMedian(square, 2)).map((v) => +v.toFixed(4))).toEqual([3, 3]);
    const outlier = Float32Array.from([0, 0, 0.1, 0, 0, 0.1, 0.1, 0.1, 1000, 1000]);
    const m = geometricMedian(outlier, 2);
    expect(Math.hypot(m[0]! - 0.05, m[1]! - 0.05)).toBeLessThan(0.05);
  });
});

function smallSynthetic(seed = 0) {
  return new SyntheticFeatures({ features: 48, dim: 24, meanActive: 3, seed });
}

const base = (
  arch: SaeTrainOptions['architecture'],
  over: Partial<SaeTrainOptions> = {},
): SaeTrainOptions => ({
  architecture: arch,
  width: 48,
  hookName: 'synthetic',
  k: 4,
  batchSize: 256,
  totalRows: 256 * 12,
  deadWindowRows: 512,
  ...over,
});

describe('trainer', () => {
  for (const arch of ['topk', 'jumprelu', 'standard', 'batchtopk', 'gated'] as const) {
    it(`${arch}: stopping and resuming from a checkpoint gives the same SAE as one run`, async () => {
      const syn = smallSynthetic();
      const extra = arch === 'standard' ? { resampleEverySteps: 5 } : {};
      const straight = await trainSae(syn.trainingData(), base(arch, extra));
      const dir = path.join(tmp('resume'), 'ck');
      const first = await trainSae(
        syn.trainingData(),
        base(arch, { ...extra, checkpointDir: dir, stopAfterStep: 7 }),
      );
      expect(first.steps).toBe(7);
      const resumed = await trainSae(syn.trainingData(), base(arch, { ...extra, checkpointDir: dir }));
      expect(resumed.resumedFrom).toBe(7);
      expect(resumed.steps).toBe(12);
      for (const [name, t] of straight.sae.params)
        expect(Array.from(await resumed.sae.param(name).f32()), name).toEqual(Array.from(await t.f32()));
      expect(resumed.history.map((h) => h.loss)).toEqual(straight.history.map((h) => h.loss));
    });
  }

  it('keeps decoder rows at unit norm (topk) and learns the data (MSE falls)', async () => {
    const r = await trainSae(smallSynthetic().trainingData(), base('topk', { totalRows: 256 * 80 }));
    const W = await r.sae.param('W_dec').f32();
    // The saved SAE folds the input scale into W_dec; undo it to check the training constraint.
    const s = r.sae.cfg.scalingFactor ?? 1;
    for (let i = 0; i < 48; i++) {
      let ss = 0;
      for (let j = 0; j < 24; j++) ss += W[i * 24 + j]! ** 2;
      expect(Math.sqrt(ss)).toBeCloseTo(1, 4);
    }
    expect(s).toBeGreaterThan(1);
    expect(r.history[r.history.length - 1]!.mse).toBeLessThan(0.5 * r.history[0]!.mse);
  });

  it('resampling revives latents that never fire', async () => {
    const syn = smallSynthetic();
    const data = syn.trainingData();
    const killed = 12;
    // The first latents start with a bias so negative that they never fire.
    const b_enc = new Tensor(new Float32Array(48).fill(-1e3, 0, killed), [48]);
    const runWith = async (resample: number) =>
      await trainSae(
        data,
        base('standard', {
          totalRows: 256 * 30,
          resampleEverySteps: resample,
          initialParams: new Map([['b_enc', b_enc]]),
        }),
      );
    const dead = await runWith(0);
    const revived = await runWith(6);
    const deadCount = (ld: Float32Array) => Array.from(ld.slice(0, killed)).filter((v) => v < -9).length;
    expect(deadCount(dead.logDensity)).toBe(killed);
    expect(deadCount(revived.logDensity)).toBeLessThan(killed / 2);
  });

  it('refuses to resume with another lr, coefficient, seed or budget, naming each (old → new)', async () => {
    const syn = smallSynthetic();
    const dir = path.join(tmp('settings'), 'ck');
    await trainSae(syn.trainingData(), base('topk', { checkpointDir: dir, stopAfterStep: 3 }));
    const again = async (over: Partial<SaeTrainOptions>) =>
      await trainSae(syn.trainingData(), base('topk', { checkpointDir: dir, ...over }));
    await expect(again({ lr: 0.05, coefficient: 2, seed: 3, totalRows: 256 * 20 })).rejects.toThrow(
      /\(step 3\) was made with other settings: totalRows 3072 → 5120, lr 0\.01 → 0\.05, coefficient 0\.5 → 2, seed 0 → 3; .*--no-resume/,
    );
    await expect(again({ lr: 0.05 })).rejects.toThrow(CheckpointSettingsError);
    expect((await again({ lr: 0.05, resume: false })).resumedFrom).toBeNull();
  });

  it('stops on NaN with a message naming the step and keeps the last good checkpoint', async () => {
    const syn = smallSynthetic();
    const good = syn.trainingData();
    const poisoned: TrainingData = {
      ...good,
      input: (b, seed, state) => {
        const inner = good.input(b, seed, state);
        let served = (state as { block?: number } | undefined)?.block ?? 0;
        return {
          next: () => {
            const x = inner.next();
            if (++served === 6) x[3] = NaN;
            return x;
          },
          state: () => inner.state(),
        };
      },
    };
    const dir = path.join(tmp('nan'), 'ck');
    await expect(
      trainSae(poisoned, base('topk', { checkpointDir: dir, checkpointEverySteps: 2 })),
    ).rejects.toThrow(/loss became NaN at step 6 \(the last good checkpoint in .* is kept\)/);
    await expect(trainSae(poisoned, base('topk'))).rejects.toThrow(SaeTrainError);
    const ck = JSON.parse(fs.readFileSync(path.join(dir, 'state.json'), 'utf8')) as { step: number };
    expect(ck.step).toBe(4);
    // Resuming on clean data goes on from step 4.
    const resumed = await trainSae(good, base('topk', { checkpointDir: dir }));
    expect(resumed.resumedFrom).toBe(4);
  });

  it("TopK's dead window is 1/128 of the budget, at least a batch", async () => {
    expect(topkDeadWindow(1 << 20, 1024)).toBe(8192);
    expect(topkDeadWindow(30000, 1024)).toBe(1024);
  });

  it("TopK's k anneals 8k, 4k, 2k, k over the first fraction of the steps, capped (d_in / 2)", async () => {
    const ks = [0, 85, 86, 170, 171, 255, 256, 1023].map((s) => annealedK(5, 128, s, 1024, 0.25));
    expect(ks).toEqual([40, 40, 20, 20, 10, 10, 5, 5]);
    // stories260K (d_in 64), k 32: the cap is k itself, so no annealing.
    expect(annealedK(32, 32, 0, 1024, 0.25)).toBe(32);
    expect(annealedK(5, 16, 0, 1024, 0.25)).toBe(16);
    expect(annealedK(5, 128, 0, 1024, 0)).toBe(5);
    expect(annealedK(null, 128, 0, 1024, 0.25)).toBe(null);
  });

  it('recovers the features of a small synthetic problem (MMCS)', async () => {
    const syn = smallSynthetic(1);
    const r = await trainSae(
      syn.trainingData(),
      base('topk', { k: 3, totalRows: 256 * 300, batchSize: 256, deadWindowRows: 4096 }),
    );
    const { mmcs } = meanMaxCosine(syn.directions, await r.sae.param('W_dec').f32(), 24);
    expect(mmcs).toBeGreaterThan(0.9);
    // A random decoder scores far lower: the metric is not trivially high.
    const random = meanMaxCosine(syn.directions, await randn([48, 24], new Rng(5)).f32(), 24);
    expect(random.mmcs).toBeLessThan(0.6);
  });
});
