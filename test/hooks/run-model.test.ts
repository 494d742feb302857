import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { runModel } from '../../src/hooks/run-model.js';
import { emptyKVCache } from '../../src/models/transformer.js';
import { standardSae } from '../helpers/sae.js';

const IDS = [[1, 403, 13, 71, 9, 250, 33, 5]];
const tokens = Tensor.from(IDS, undefined, 'int64');

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** A standard SAE with a fixed pseudo-random encoder and decoder (not an identity). */
function randomSae(hook: string, d: number, dSae: number) {
  let seed = 7;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31 - 0.5) * 0.4;
  const enc = Float32Array.from({ length: d * dSae }, next);
  const dec = Float32Array.from({ length: dSae * d }, next);
  return standardSae(hook, enc, dec, dSae);
}

describe('runModel: the one entry point that runs a model', () => {
  const model = HookedTransformer.load(undefined, { compile: 'never' });
  const plain = model.run(IDS).f32Sync();

  it('runs the model as model.run does, and a bare {cfg, weights} the same way', () => {
    expect(maxAbsDiff(runModel(model, tokens).f32Sync(), plain)).toBe(0);
    expect(maxAbsDiff(runModel({ cfg: model.cfg, weights: model.weights }, tokens).f32Sync(), plain)).toBe(0);
  });

  it('takes a hook plan: hooks and caches as runWithHooks and runWithCache', () => {
    const zero = (x: Tensor) => Tensor.zeros(x.shape);
    const fwd = [{ name: 'blocks.1.hook_attn_out', fn: zero }];
    const store = new Map<string, Tensor>();
    const got = runModel(model, tokens, {
      plan: { fwd, cache: (n) => n === 'blocks.2.hook_resid_pre', store },
    });
    expect(maxAbsDiff(got.f32Sync(), model.runWithHooks(IDS, { fwd }).f32Sync())).toBe(0);
    expect(maxAbsDiff(got.f32Sync(), plain)).toBeGreaterThan(1e-3);
    expect(store.get('blocks.2.hook_resid_pre')!.shape).toEqual([1, 8, model.cfg.dModel]);
  });

  it("applies the model's splices without being asked; a bare {cfg, weights} has none", () => {
    const sae = randomSae('blocks.2.hook_resid_pre', model.cfg.dModel, 32);
    model.addSAE(sae);
    try {
      const spliced = model.run(IDS).f32Sync();
      expect(maxAbsDiff(spliced, plain)).toBeGreaterThan(1e-3);
      expect(maxAbsDiff(runModel(model, tokens).f32Sync(), spliced)).toBe(0);
      expect(maxAbsDiff(runModel({ cfg: model.cfg, weights: model.weights }, tokens).f32Sync(), plain)).toBe(
        0,
      );
    } finally {
      model.resetSAEs();
    }
  });

  it('starts at a layer from a cached residual, stops at a layer, and decodes with a KV cache', () => {
    const { cache } = model.runWithCache(IDS, {
      names: ['blocks.2.hook_resid_pre', 'blocks.3.hook_resid_post'],
    });
    const started = runModel(model, tokens, {
      startAtLayer: 2,
      residual: cache.get('blocks.2.hook_resid_pre'),
    });
    expect(maxAbsDiff(started.f32Sync(), plain)).toBeLessThan(1e-5);
    const stopped = runModel(model, tokens, { stopAtLayer: 3 });
    expect(maxAbsDiff(stopped.f32Sync(), cache.get('blocks.3.hook_resid_post').f32Sync())).toBe(0);
    const kv = emptyKVCache(model.cfg);
    const V = model.cfg.vocabSize;
    runModel(model, Tensor.from([IDS[0]!.slice(0, 7)], undefined, 'int64'), { kvCache: kv });
    const last = runModel(model, Tensor.from([[IDS[0]![7]!]], undefined, 'int64'), { kvCache: kv });
    expect(maxAbsDiff(last.f32Sync(), plain.subarray(7 * V, 8 * V))).toBeLessThan(1e-4);
  });
});
