import '../../src/engine/node.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { logitLens } from '../../src/methods/lens.js';
import {
  createTunedLens,
  lensDataset,
  lensKL,
  loadTunedLens,
  saveTunedLens,
  trainTunedLens,
  tunedLensLogits,
  TunedLensError,
} from '../../src/methods/tuned-lens.js';
import { defaultCorpus } from '../../src/organisms/induction.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-tuned-lens-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('tuned lens on stories260K', () => {
  const model = HookedTransformer.load();
  const data = lensDataset(model, defaultCorpus());

  it('an untrained lens is the logit lens (same logits as logitLens)', async () => {
    const lens = createTunedLens(model);
    const prompt = 'Once upon a time, there was a little girl named Lily.';
    const r = await logitLens(model, prompt, { topK: 1 });
    const { cache } = model.runWithCache(prompt, { names: ['blocks.2.hook_resid_pre'] });
    const got = tunedLensLogits(model, lens, 2, cache.get('blocks.2.hook_resid_pre')).f32Sync();
    const P = r.tokens.length;
    const V = model.cfg.vocabSize;
    const want = r.logits.f32Sync().subarray(2 * P * V, 3 * P * V);
    let maxDiff = 0;
    for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
  });

  it('trained 300 steps: held-out KL below the logit lens at every layer; save/load round trip', async () => {
    const losses: number[] = [];
    const lens = await trainTunedLens(model, data, {
      steps: 300,
      lr: 3e-3,
      onStep: (_s, l) => losses.push(l),
    });
    expect(losses).toHaveLength(300);
    expect(losses.at(-1)!).toBeLessThan(losses[0]! / 2);
    const k = await lensKL(model, data, lens, { maxWindows: 16 });
    // Measured: logit 21.91 12.27 5.50 2.37 0.82; tuned 2.21 1.76 1.26 0.85 0.42 (nats, 2,048 positions).
    expect(k.layers).toEqual([0, 1, 2, 3, 4].map((l) => `blocks.${l}.hook_resid_pre`));
    expect(k.positions).toBe(16 * 128);
    for (let l = 0; l < 5; l++) expect(k.tuned![l]!).toBeLessThan(k.logit[l]!);
    expect(k.tuned![0]!).toBeLessThan(k.logit[0]! / 4);
    // The logit lens gets closer to the final distribution with depth.
    for (let l = 1; l < 5; l++) expect(k.logit[l]!).toBeLessThan(k.logit[l - 1]!);

    const dir = path.join(tmp, 'lens');
    await saveTunedLens(lens, dir);
    expect(fs.readdirSync(dir).sort()).toEqual(['tuned-lens.json', 'tuned-lens.safetensors']);
    const back = loadTunedLens(dir, model);
    expect(back.meta.steps).toBe(300);
    expect(back.meta.architecture).toEqual({ nLayers: 5, dModel: 64, vocabSize: 512, normalization: 'RMS' });
    expect(Array.from(back.A.f32Sync())).toEqual(Array.from(lens.A.f32Sync()));
    expect(Array.from(back.b.f32Sync())).toEqual(Array.from(lens.b.f32Sync()));
    const k2 = await lensKL(model, data, back, { maxWindows: 16 });
    k2.tuned!.forEach((x, l) => expect(x).toBeCloseTo(k.tuned![l]!, 5));
  });

  it('refuses a lens made for another architecture, and a folder that is not a lens', async () => {
    const other = HookedTransformer.load('test/fixtures/induction-2l');
    const lens = createTunedLens(other);
    await expect(lensKL(model, data, lens)).rejects.toThrow(TunedLensError);
    expect(() => loadTunedLens(tmp + '/nothing')).toThrow(/not a tuned lens/);
  });
});
