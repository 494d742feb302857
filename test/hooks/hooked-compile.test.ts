import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { add, where } from '../../src/engine/ops/elementwise.js';
import { lazyGraphCount } from '../../src/engine/lazy.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';

const HOOK = 'blocks.2.hook_resid_pre';
const PROMPT = 'Once upon a time, there was a little girl named Lily.';

/** Hooks as tensor expressions: a position mask and a cached activation, both fed as graph inputs. */
describe('hooked forwards compile', () => {
  const compiled = HookedTransformer.load(undefined, { compile: 'always' });
  const eager = HookedTransformer.load(undefined, { compile: 'never' });
  const ids = compiled.encode(PROMPT);
  const P = ids.length;
  // The patch source: the same prompt with a few tokens replaced (a corrupted run).
  const corrupt = ids.map((id, i) => (i % 4 === 1 ? (id * 7 + 11) % compiled.cfg.vocabSize : id));
  const source = eager.runWithCache([corrupt], { names: [HOOK] }).cache.get(HOOK);

  const patchAt = (pos: number) => {
    const mask = new Uint8Array(P);
    mask[pos] = 1;
    const at = new Tensor(mask, [1, P, 1]);
    return [{ name: HOOK, fn: (x: Tensor) => where(at, source, x) }];
  };

  it('one graph serves a sweep over patched positions, and matches the eager forward', async () => {
    const before = lazyGraphCount();
    for (let pos = 0; pos < P; pos += 3) {
      const got = await compiled.runWithHooks([ids], { fwd: patchAt(pos) }).f32();
      const want = eager.runWithHooks([ids], { fwd: patchAt(pos) }).f32Sync();
      let maxDiff = 0;
      for (let i = 0; i < want.length; i++) maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
      expect(maxDiff).toBeLessThan(1e-4);
    }
    // First sight kernel by kernel, second compiled, every later position fed to that graph.
    expect(lazyGraphCount() - before).toBe(1);
  });

  it('a steering vector changes the logits as the eager forward does', async () => {
    const v = Tensor.full([compiled.cfg.dModel], 0.5);
    const fwd = [{ name: HOOK, fn: (x: Tensor) => add(x, v) }];
    const got = await compiled.runWithHooks(PROMPT, { fwd }).f32();
    const want = eager.runWithHooks(PROMPT, { fwd }).f32Sync();
    const plain = eager.run(PROMPT).f32Sync();
    let maxDiff = 0;
    let moved = 0;
    for (let i = 0; i < want.length; i++) {
      maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
      moved = Math.max(moved, Math.abs(want[i]! - plain[i]!));
    }
    expect(maxDiff).toBeLessThan(1e-4);
    expect(moved).toBeGreaterThan(0.1);
  });
});
