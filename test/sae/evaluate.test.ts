import '../../src/engine/node.js';
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { defaultCorpus } from '../../src/organisms/induction.js';
import { saeConfig, SaeError } from '../../src/sae/config.js';
import { evaluateRows, evaluateSae } from '../../src/sae/evaluate.js';
import { SparseAutoencoder } from '../../src/sae/sae.js';
import { identitySae, setParam, standardSae as sae } from '../helpers/sae.js';

const model = HookedTransformer.load(undefined, { compile: 'never' });
const D = model.cfg.dModel;
const TEXTS = fs
  .readFileSync(defaultCorpus(), 'utf8')
  .split(/\n\s*\n/)
  .slice(0, 12);
const OPTS = { ctx: 48, batchSize: 4, maxTokens: 400 };

describe('evaluateSae', () => {
  const H = 'blocks.2.hook_resid_pre';

  it('an identity SAE: EV 1, MSE 0, CE recovered 1', async () => {
    const r = await evaluateSae(model, identitySae(H), TEXTS, OPTS);
    expect(r.tokens).toBe(400);
    expect(r.sequences).toBe(Math.ceil(400 / 48));
    expect(r.rows).toBeLessThan(400); // BOS positions left out
    expect(r.explainedVariance).toBeCloseTo(1, 4);
    expect(r.mse).toBeLessThan(1e-8);
    expect(r.cosineSimilarity).toBeCloseTo(1, 5);
    expect(r.l2Ratio).toBeCloseTo(1, 5);
    expect(Math.abs(r.ce.spliced - r.ce.clean)).toBeLessThan(1e-5);
    expect(r.ce.zeroAblated).toBeGreaterThan(r.ce.clean + 0.5);
    expect(r.ce.recovered).toBeCloseTo(1, 4);
    expect(r.ce.predictions).toBe(400 - r.sequences);
    // Each coordinate turns on exactly one of its two latents (none at an exact zero).
    expect(r.l0).toBeGreaterThan(D - 1);
    expect(r.l0).toBeLessThanOrEqual(D);
    expect(r.densityHistogram.counts.reduce((a, b) => a + b, 0)).toBe(2 * D);
    expect(r.densityHistogram.edges.length).toBe(21);
    expect(r.density.length).toBe(2 * D);
    // With BOS kept, every token is a row.
    const all = await evaluateSae(model, identitySae(H), TEXTS, { ...OPTS, excludeBos: false });
    expect(all.rows).toBe(400);
    expect(all.ce.recovered).toBeCloseTo(1, 4);
  });

  it('an SAE with a zero decoder recovers nothing: it is the zero ablation', async () => {
    const r = await evaluateSae(
      model,
      sae(H, new Float32Array(D * 16).fill(0.1), new Float32Array(16 * D), 16),
      TEXTS,
      OPTS,
    );
    expect(r.ce.spliced).toBeCloseTo(r.ce.zeroAblated, 6);
    expect(Math.abs(r.ce.recovered)).toBeLessThan(1e-4);
    expect(r.explainedVariance).toBeLessThan(0.05);
    expect(r.cosineSimilarity).toBe(0);
  });

  it('row metrics equal evaluateRows on the same activation rows', async () => {
    const s = SparseAutoencoder.init(saeConfig({ architecture: 'standard', dIn: D, dSae: 96, hookName: H }), {
      seed: 3,
      decoderNorm: 0.5,
    });
    const r = await evaluateSae(model, s, TEXTS, OPTS);
    // The same sequences by hand: rows of the non-BOS positions.
    const ids = TEXTS.flatMap((t) => model.encode(t)).slice(0, 400);
    const seqs: number[][] = [];
    for (let i = 0, left = 400; left > 0;) {
      const lead = ids[i] === 1 ? [] : [1];
      const take = 48 - lead.length;
      const q = [...lead, ...ids.slice(i, i + take)].slice(0, left);
      seqs.push(q);
      left -= q.length;
      i += take;
    }
    const rows: number[] = [];
    for (const q of seqs) {
      const x = await model
        .runWithCache([q], { names: [H] })
        .cache.get(H)
        .f32();
      q.forEach((id, p) => id !== 1 && rows.push(...x.subarray(p * D, (p + 1) * D)));
    }
    const m = await evaluateRows(s, Float32Array.from(rows), D);
    expect(m.rows).toBe(r.rows);
    expect(r.l0).toBeCloseTo(m.l0, 6);
    expect(r.mse).toBeCloseTo(m.mse, 5);
    expect(r.explainedVariance).toBeCloseTo(m.explainedVariance, 5);
    expect(r.density).toEqual(m.density);
    expect(r.ce.recovered).toBeLessThan(1);
    // Token sequences run as given.
    const t = await evaluateSae(model, s, seqs, { ctx: 48 });
    expect(t.tokens).toBe(400);
    expect(t.l0).toBeCloseTo(m.l0, 6);
  });

  it('a transcoder is measured against the activation it replaces', async () => {
    const In = 'blocks.1.ln2.hook_normalized';
    const Out = 'blocks.1.hook_mlp_out';
    const tc = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: D, dSae: 80, hookName: In, hookNameOut: Out, dOut: D }),
      { seed: 4, decoderNorm: 0.3 },
    );
    const r = await evaluateSae(model, tc, TEXTS, { ...OPTS, maxTokens: 200 });
    expect(r.hookNameOut).toBe(Out);
    const plain = await evaluateSae(model, identitySae(Out), TEXTS, { ...OPTS, maxTokens: 200 });
    expect(r.ce.zeroAblated).toBeCloseTo(plain.ce.zeroAblated, 6);
    expect(r.ce.clean).toBeCloseTo(plain.ce.clean, 6);
    // Against evaluateRows with inputs and targets collected by hand.
    const ids = TEXTS.flatMap((t) => model.encode(t)).slice(0, 48);
    const one = await evaluateSae(model, tc, [ids], { ctx: 48 });
    const { cache } = model.runWithCache([ids], { names: [In, Out] });
    const keep = (a: Float32Array) =>
      Float32Array.from(ids.flatMap((id, p) => (id === 1 ? [] : [...a.subarray(p * D, (p + 1) * D)])));
    const m = await evaluateRows(tc, keep(await cache.get(In).f32()), D, {
      targets: keep(await cache.get(Out).f32()),
    });
    expect(one.mse).toBeCloseTo(m.mse, 5);
    expect(one.l0).toBeCloseTo(m.l0, 6);
    await expect(evaluateRows(tc, keep(await cache.get(In).f32()), D)).rejects.toThrow(/targets/);
  });

  it('refuses an SAE that does not fit the model', async () => {
    const wrong = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: 32, dSae: 8, hookName: H }),
    );
    await expect(evaluateSae(model, wrong, TEXTS, OPTS)).rejects.toThrow(SaeError);
    expect(model.saes).toEqual([]);
  });
});

describe('evaluateRows', () => {
  it('L0, density, MSE, EV and the histogram of a handmade set', async () => {
    // pre = (x0, x1, x0 + x1 - 2.5); W_dec keeps the first two latents.
    const s = sae(
      'blocks.0.hook_resid_pre',
      Float32Array.from([1, 0, 1, 0, 1, 1]),
      Float32Array.from([1, 0, 0, 1, 0, 0]),
      3,
      Float32Array.from([0, 0, -2.5]),
    );
    const rows = Float32Array.from([1, 0, 0, 2, 1, 1, -1, -1, 2, 2]);
    const m = await evaluateRows(s, rows, 2, { denseThreshold: 0.5, deadThreshold: 0.2, bins: 2 });
    expect(m.rows).toBe(5);
    expect(m.l0).toBeCloseTo(7 / 5, 12);
    expect(m.density.map((p) => +p.toFixed(12))).toEqual([0.6, 0.6, 0.2]);
    expect(m.denseLatents).toEqual([0, 1]);
    expect(m.deadLatents).toEqual([2]);
    expect(m.mse).toBeCloseTo(2 / 5, 12);
    expect(m.msePerElement).toBeCloseTo(1 / 5, 12);
    expect(m.explainedVariance).toBeCloseTo(1 - 2 / 12, 12);
    expect(m.cosineSimilarity).toBeCloseTo(4 / 5, 6);
    expect(m.densityHistogram.counts).toEqual([1, 2]);
    expect(m.densityHistogram.edges[0]).toBeCloseTo(Math.log10(0.2), 6);
    expect(m.densityHistogram.edges[2]).toBeCloseTo(Math.log10(0.6), 6);
    expect((await evaluateRows(s, rows, 2)).deadLatents).toEqual([]);
    // Batching does not change a standard SAE's metrics.
    expect((await evaluateRows(s, rows, 2, { batchSize: 2 })).l0).toBeCloseTo(7 / 5, 12);
    await expect(evaluateRows(s, rows, 3)).rejects.toThrow(SaeError);
  });

  it('latents that never fire go to the lowest bin; counts sum to d_sae', async () => {
    const s = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: 4, dSae: 10, hookName: 'x' }),
      {
        seed: 1,
      },
    );
    await setParam(s, 'b_enc', [-100, -100, -100]);
    const rows = Float32Array.from({ length: 4 * 50 }, (_, i) => Math.sin(i * 1.7));
    const m = await evaluateRows(s, rows, 4, { bins: 7 });
    expect(m.deadLatents.slice(0, 3)).toEqual([0, 1, 2]);
    expect(m.densityHistogram.counts.reduce((a, b) => a + b, 0)).toBe(10);
    expect(m.densityHistogram.counts[0]).toBeGreaterThanOrEqual(3);
    expect(m.densityHistogram.edges[0]).toBeCloseTo(-10, 6);
  });
});
