import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { add, mul } from '../../src/engine/ops/elementwise.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import type { Splice, Spliceable, SpliceTarget } from '../../src/hooks/splice.js';

const IDS = [[1, 403, 13, 71, 9]];

/**
 * A splice that is not an SAE: x -> scale * x + shift at one hook, with two points of its own. The hooks
 * layer knows only the interface, so this works exactly as an SAE does.
 */
class Affine implements Spliceable<{ scale: number }> {
  readonly shift: Tensor;
  constructor(
    readonly hook: string,
    d: number,
  ) {
    this.shift = Tensor.full([d], 0.25);
  }

  splice(target: SpliceTarget, _current: readonly Splice[], opts = { scale: 2 }): Splice {
    expect(target.cfg.dModel).toBe(this.shift.size);
    return {
      source: this,
      options: opts,
      hookName: this.hook,
      inputHook: this.hook,
      points: ['hook_scaled', 'hook_out'],
      params: [this.shift],
      apply: (input, _original, hook) =>
        hook('hook_out', add(hook('hook_scaled', mul(input, opts.scale)), this.shift)),
    };
  }
}

describe('the generic splice interface', () => {
  const model = HookedTransformer.load(undefined, { compile: 'never' });
  const H = 'blocks.1.hook_resid_post';
  const D = model.cfg.dModel;

  it('splices any Spliceable: its points become hook points, its output replaces the activation', () => {
    const before = model.hookNames();
    const affine = new Affine(H, D);
    model.addSAE(affine, { scale: 3 });
    try {
      const names = model.hookNames();
      expect(names.slice(names.indexOf(H), names.indexOf(H) + 3)).toEqual([
        H,
        `${H}.hook_scaled`,
        `${H}.hook_out`,
      ]);
      expect(names.length).toBe(before.length + 2);
      const { cache } = model.runWithCache(IDS, { names: [H, `${H}.hook_out`] });
      const x = cache.get(H).f32Sync(); // H's own hooks see the model's activation
      const out = cache.get(`${H}.hook_out`).f32Sync();
      for (let i = 0; i < x.length; i++) expect(out[i]).toBeCloseTo(3 * x[i]! + 0.25, 5);
      // The next layer reads the splice's output.
      const next = model.runWithCache(IDS, { names: ['blocks.2.hook_resid_pre'] }).cache;
      expect(Array.from(next.get('blocks.2.hook_resid_pre').f32Sync())).toEqual(Array.from(out));
      expect(model.saes.map((s) => s.source)).toEqual([affine]);
      expect(model.removeSAE(affine)).toBe(affine);
      expect(model.hookNames()).toEqual(before);
    } finally {
      model.resetSAEs();
    }
  });
});
