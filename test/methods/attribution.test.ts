import '../../src/engine/node.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HookedTransformer, Tensor, UsageError } from '../../src/index.js';
import { Rng } from '../../src/engine/random.js';
import { add, mul, sub } from '../../src/engine/ops/elementwise.js';
import { blend, selectionMask } from '../../src/engine/ops/intervene.js';
import { logSoftmax } from '../../src/engine/ops/nn.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { activationPatching } from '../../src/methods/patching.js';
import { attributionPatching, correlation } from '../../src/methods/attribution.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stories = HookedTransformer.load();
const induction = HookedTransformer.load(path.join(ROOT, 'test/fixtures/induction-2l'));

const NAME = {
  clean: 'Once upon a time, there was a little girl named Lily. One day,',
  corrupt: 'Once upon a time, there was a little girl named Tim. One day,',
  answer: 'Lily',
  wrong: 'Tim',
};
const NAME_POS = 14;

/** [BOS, r, r] and [BOS, r, r'] with r, r' random ids in 259..511 (as in patching.test.ts). */
function repeatedPair(seed: number, T: number): { clean: number[]; corrupt: number[] } {
  const rng = new Rng(seed);
  const rand = () => Array.from({ length: T }, () => 259 + rng.int(253));
  const r = rand();
  const r2 = rand();
  return { clean: [1, ...r, ...r], corrupt: [1, ...r, ...r2] };
}

/** Mean log-probability of the clean sequence's tokens over the second repeat, as a differentiable Tensor. */
function copyingMetric(clean: number[], T: number, V: number): (logits: Tensor) => Tensor {
  const P = clean.length;
  const sel = new Float32Array(P * V);
  for (let i = T + 1; i < 2 * T; i++) sel[i * V + clean[i + 1]!] = 1 / (T - 1);
  const G = new Tensor(sel, [1, P, V]);
  return (logits) => sum(mul(logSoftmax(logits, -1), G));
}

describe('attribution patching', () => {
  it('is exact to first order: a tiny patch moves the metric by the estimate', async () => {
    // Denoising: the base run is the corrupt prompt; patch base + eps (clean - base) at one position.
    const a = await attributionPatching(stories, NAME);
    const l = 2;
    const name = `blocks.${l}.hook_resid_pre`;
    const clean = stories.runWithCache(NAME.clean, { names: [name] }).cache.get(name);
    const ans = 317;
    const wr = a.wrong!.id;
    // base + eps (clean - base) at the name's position, as engine ops.
    const atName = selectionMask(clean.shape, [[[NAME_POS], null]]);
    const metric = async (eps: number) => {
      const lg = await stories
        .runWithHooks(NAME.corrupt, {
          fwd: [{ name, fn: (x) => blend(x, add(x, mul(sub(clean, x), eps)), atName) }],
        })
        .f32();
      const o = (a.cleanTokens.length - 1) * stories.cfg.vocabSize;
      return lg[o + ans]! - lg[o + wr]!;
    };
    expect(a.answer!.id).toBe(ans);
    const eps = 1e-2;
    const fd = ((await metric(eps)) - (await metric(-eps))) / (2 * eps);
    const estimate = a.raw[l]![0]![NAME_POS]! - a.corruptMetric;
    expect(Math.abs(estimate)).toBeGreaterThan(0.1);
    expect(Math.abs(fd - estimate)).toBeLessThan(0.01 * Math.abs(estimate) + 1e-3);
    // Layer 0 is the embedding: the residual patch at the name is exact in every direction, but the
    // linear estimate is not 1 there (the metric is not linear in the residual stream).
    expect(a.values.length).toBe(stories.cfg.nLayers);
    expect(a.values[0]![0]!.length).toBe(a.cleanTokens.length);
  });

  it('stories260K resid_pre per position: correlates with activation patching', async () => {
    // Measured: 0.999 denoising, 0.945 noising (attn_out 0.999 / 0.999, mlp_out 0.992 / 0.968).
    for (const direction of ['denoise', 'noise'] as const) {
      const a = await attributionPatching(stories, { ...NAME, direction });
      const r = await activationPatching(stories, { ...NAME, direction });
      expect(a.cleanMetric).toBeCloseTo(r.cleanMetric, 3);
      expect(a.corruptMetric).toBeCloseTo(r.corruptMetric, 3);
      expect(correlation(a.values, r.values)).toBeGreaterThan(0.9);
    }
  });

  it('induction-2l, head level (z, all positions): ranks an induction head first, correlation > 0.8', async () => {
    // Measured, noising, seeds 0..3: correlation 0.904, 0.925, 0.980, 0.903; denoising 0.990, 0.993,
    // 0.978, 0.994. The estimate overshoots for layer-0 heads when noising (values up to 1.16 where the
    // real patch gives ~1.0): their effect goes through layer 1's attention softmax, which saturates.
    const T = 20;
    for (const seed of [0, 1, 2, 3]) {
      const { clean, corrupt } = repeatedPair(seed, T);
      const metric = copyingMetric(clean, T, induction.cfg.vocabSize);
      for (const direction of ['noise', 'denoise'] as const) {
        const a = await attributionPatching(induction, { clean, corrupt, metric, target: 'z', direction });
        const r = await activationPatching(induction, {
          clean,
          corrupt,
          metric: (lg) => metric(lg).itemSync(),
          target: 'z',
          direction,
        });
        expect(a.cleanMetric - a.corruptMetric).toBeGreaterThan(3);
        expect(correlation(a.values, r.values)).toBeGreaterThan(0.85);
        // The most important head: lowest value when noising, highest when denoising.
        const flat = a.values.flatMap((l, li) => l.map((c, h) => ({ li, h, v: c[0]! })));
        const sign = direction === 'noise' ? 1 : -1;
        flat.sort((x, y) => sign * (x.v - y.v));
        expect(flat[0]!.li).toBe(1);
      }
    }
  });

  it("AtP*'s QK fix: q and k estimates correlate far better than the linear estimate", async () => {
    // Measured (noise, seeds 0..3) q: 0.94/0.99/0.98/0.97 vs linear 0.73/0.89/0.91/0.86;
    // k: 0.96/0.99/0.93/0.95 vs linear 0.24/0.08/0.35/0.62.
    const T = 20;
    for (const seed of [0, 1, 2, 3]) {
      const { clean, corrupt } = repeatedPair(seed, T);
      const metric = copyingMetric(clean, T, induction.cfg.vocabSize);
      for (const target of ['q', 'k'] as const) {
        const a = await attributionPatching(induction, {
          clean,
          corrupt,
          metric,
          target,
          direction: 'noise',
        });
        const r = await activationPatching(induction, {
          clean,
          corrupt,
          metric: (lg) => metric(lg).itemSync(),
          target,
          direction: 'noise',
        });
        expect(a.qkFixed).toBe(true);
        const fixed = correlation(a.values, r.values);
        expect(fixed).toBeGreaterThan(0.9);
        expect(fixed).toBeGreaterThan(correlation(a.linear, r.values));
      }
    }
    // stories260K (rotary, per position): q 0.967 vs linear 0.609; k 1.000 vs 0.992.
    const a = await attributionPatching(stories, { ...NAME, target: 'q', perPosition: true });
    const r = await activationPatching(stories, { ...NAME, target: 'q', perPosition: true });
    expect(correlation(a.values, r.values)).toBeGreaterThan(0.95);
    expect(correlation(a.linear, r.values)).toBeLessThan(0.8);
  });

  it('GradDrop: one extra backward per layer; unsigned; equals |AtP| where no later layer is dropped', async () => {
    const T = 20;
    const { clean, corrupt } = repeatedPair(0, T);
    const metric = copyingMetric(clean, T, induction.cfg.vocabSize);
    const a = await attributionPatching(induction, { clean, corrupt, metric, target: 'z', gradDrop: true });
    expect(a.backwardPasses).toBe(1 + induction.cfg.nLayers);
    const gd = a.gradDrop!;
    // Layer-1 heads: the only other layer is 0, whose drop does not touch their gradient.
    gd[1]!.forEach((c, h) => expect(c[0]).toBeCloseTo(Math.abs(a.linear[1]![h]![0]!), 5));
    // Layer-0 heads: only their direct path (through layer 1's skip connection) is left: small.
    for (const c of gd[0]!) expect(c[0]!).toBeLessThan(0.1);
    expect(Math.max(...gd[1]!.map((c) => c[0]!))).toBeGreaterThan(0.15);
  });

  it('errors: a numeric metric, unknown target', async () => {
    const { clean, corrupt } = repeatedPair(0, 4);
    await expect(
      attributionPatching(induction, {
        clean,
        corrupt,
        metric: (() => 1) as unknown as (l: Tensor) => Tensor,
      }),
    ).rejects.toThrow(UsageError);
    await expect(attributionPatching(stories, { ...NAME, target: 'pattern' })).rejects.toThrow(/use one of/);
    expect(correlation([1, 2, 3], [2, 4, 7])).toBeGreaterThan(0.98);
  });
});
