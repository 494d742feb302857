// attentionPattern (the forward's attention maths, exposed for methods such as AtP*'s QK fix) on every fixture
// architecture: from the activations at qkHookNames it gives the pattern the forward computed, and it agrees
// with a float64 host reference written from the definition (scale, soft-cap, window, grouped-query heads).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { mul } from '../../src/engine/ops/elementwise.js';
import { concat, slice } from '../../src/engine/ops/shape.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { attnTypeOf } from '../../src/models/config.js';
import { attentionPattern, qkHookNames } from '../../src/models/transformer.js';
import { ARCHITECTURE_FIXTURES } from '../helpers/fixtures.js';

const ARCHS = ARCHITECTURE_FIXTURES;
const TOKENS = [3, 17, 42, 8, 60, 5, 91, 23, 11, 77, 2, 40];

function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each(ARCHS)('%s', (name) => {
  const model = HookedTransformer.load(path.resolve('test/fixtures', name), { compile: 'never' });
  const { cfg } = model;
  const P = TOKENS.length;
  const names = Array.from({ length: cfg.nLayers }, (_, l) => {
    const { q, k } = qkHookNames(cfg, l);
    return [q, k, `blocks.${l}.attn.hook_pattern`] as const;
  });
  const { cache } = model.runWithCache(Tensor.from([TOKENS], undefined, 'int64'), { names: names.flat() });

  it("gives the forward's pattern from the cached q and k", async () => {
    for (let l = 0; l < cfg.nLayers; l++) {
      const [q, k, pattern] = names[l]!;
      const got = await attentionPattern(cfg, model.weights, l, cache.get(q), cache.get(k)).f32();
      expect(maxDiff(got, await cache.get(pattern).f32()), `layer ${l}`).toBeLessThan(1e-6);
    }
  });

  it('agrees with a float64 reference of the definition (scale, soft-cap, window, GQA)', async () => {
    const { nHeads: H, nKvHeads: KV, dHead: dh } = cfg;
    for (let l = 0; l < cfg.nLayers; l++) {
      const [qn, kn] = names[l]!;
      const q = await cache.get(qn).f32(); // [1, P, H, dh]
      const k = await cache.get(kn).f32(); // [1, P, KV, dh]
      const got = await attentionPattern(cfg, model.weights, l, cache.get(qn), cache.get(kn)).f32();
      const window = attnTypeOf(cfg, l) === 'local' ? cfg.windowSize! : Infinity;
      const want = new Float64Array(H * P * P);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        for (let i = 0; i < P; i++) {
          const row = want.subarray((h * P + i) * P, (h * P + i + 1) * P);
          for (let j = 0; j < P; j++) {
            if (j > i || j <= i - window) continue;
            let s = 0;
            for (let d = 0; d < dh; d++) s += q[(i * H + h) * dh + d]! * k[(j * KV + g) * dh + d]!;
            s *= cfg.attnScale;
            if (cfg.attnSoftcap) s = cfg.attnSoftcap * Math.tanh(s / cfg.attnSoftcap);
            row[j] = Math.exp(s);
          }
          const total = row.reduce((a, b) => a + b, 0);
          for (let j = 0; j < P; j++) row[j]! /= total;
        }
      }
      expect(maxDiff(got, want), `layer ${l}`).toBeLessThan(1e-5);
    }
  });

  it('takes the last queries against all keys (a cached past) and a batch of variants', async () => {
    for (let l = 0; l < cfg.nLayers; l++) {
      const [qn, kn, pn] = names[l]!;
      const q = slice(cache.get(qn), 1, 5, P);
      const k = cache.get(kn);
      // Row 1 has q = 0: every visible key scores 0, so attention is uniform over the causal window.
      const batch = concat([q, mul(q, 0)], 0);
      const got = await attentionPattern(cfg, model.weights, l, batch, concat([k, k], 0)).f32();
      const n = cfg.nHeads * (P - 5) * P;
      expect(maxDiff(got.subarray(0, n), await slice(cache.get(pn), 2, 5, P).f32())).toBeLessThan(1e-6);
      const window = attnTypeOf(cfg, l) === 'local' ? cfg.windowSize! : Infinity;
      const uniform = Array.from({ length: n }, (_, x) => {
        const i = 5 + (Math.floor(x / P) % (P - 5));
        const j = x % P;
        return j <= i && j > i - window ? 1 / Math.min(i + 1, window) : 0;
      });
      expect(maxDiff(got.subarray(n), uniform), `layer ${l}`).toBeLessThan(1e-6);
    }
  });
});
