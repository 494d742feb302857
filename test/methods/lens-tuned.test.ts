// `logitLens` with a tuned lens: block inputs go through the translators, the final layer is unchanged.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { logitLens } from '../../src/methods/lens.js';
import { createTunedLens, tunedLensLogits } from '../../src/methods/tuned-lens.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-lens-tuned-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('logit lens through a tuned lens', () => {
  const model = HookedTransformer.load();
  const prompt = 'Once upon a time, there was a little girl named Lily. One day,';

  it('an identity (untrained) tuned lens gives the logit lens; a perturbed one changes only block inputs', async () => {
    const lens = createTunedLens(model);
    const plain = await logitLens(model, prompt, { target: ' Lily' });
    const same = await logitLens(model, prompt, { target: ' Lily', tunedLens: lens });
    const a = plain.logits.f32Sync();
    const b = same.logits.f32Sync();
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
    expect(maxDiff).toBeLessThan(1e-4);
    // Perturb layer 2's bias: only that layer's lens logits move, and they equal tunedLensLogits.
    lens.b.f32Sync().fill(0.5, 2 * model.cfg.dModel, 3 * model.cfg.dModel);
    const moved = await logitLens(model, prompt, { tunedLens: lens });
    const P = plain.tokens.length;
    const V = model.cfg.vocabSize;
    const layer = (r: typeof plain, l: number) => r.logits.f32Sync().subarray(l * P * V, (l + 1) * P * V);
    expect(Array.from(layer(moved, 0))).toEqual(Array.from(layer(same, 0)));
    expect(Array.from(layer(moved, model.cfg.nLayers))).toEqual(Array.from(layer(plain, model.cfg.nLayers)));
    const { cache } = model.runWithCache(prompt, { names: ['blocks.2.hook_resid_pre'] });
    const direct = tunedLensLogits(model, lens, 2, cache.get('blocks.2.hook_resid_pre')).f32Sync();
    const got = layer(moved, 2);
    let d2 = 0;
    for (let i = 0; i < got.length; i++) d2 = Math.max(d2, Math.abs(got[i]! - direct[i]!));
    expect(d2).toBeLessThan(1e-5);
    expect(Math.max(...Array.from(got).map((x, i) => Math.abs(x - layer(same, 2)[i]!)))).toBeGreaterThan(
      1e-3,
    );
  });
});
