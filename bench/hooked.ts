/**
 * Hooked forwards, the bulk of interpretability work: each hook written as a tensor expression, so the
 * whole hooked forward runs as one compiled graph with the hook's tensors fed as inputs. Each row
 * changes the intervention's values at every repetition (another patched position, another steering
 * vector), so one graph must serve the whole sweep.
 */
import { add, where } from '../src/engine/ops/elementwise.js';
import { Tensor } from '../src/engine/tensor.js';
import type { HookedTransformer } from '../src/hooks/hooked-transformer.js';
import { SparseAutoencoder } from '../src/sae/sae.js';

const HOOK = 'blocks.6.hook_resid_pre';

export interface HookedTimes {
  patch: number;
  steer: number;
  sae: number;
}

/** Median ms of `fn(i)` over reps after one warm-up call per distinct structure (i = 0, 1). */
function median(reps: number, fn: (i: number) => void): number {
  fn(0);
  fn(1); // the second sight of a structure compiles it
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    fn(i + 2);
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function hookedForwards(model: HookedTransformer, tokens: Tensor, reps: number): HookedTimes {
  const P = tokens.shape[1]!;
  const d = model.cfg.dModel;
  // A cached activation to patch from (another prompt), computed once.
  const other = new Tensor(
    BigInt64Array.from({ length: P }, (_, i) => BigInt((i * 104729 + 3) % model.cfg.vocabSize)),
    [1, P],
  );
  const source = model.runWithCache(other, { names: [HOOK] }).cache.get(HOOK);
  source.dataSync();
  const patch = median(reps, (i) => {
    const mask = new Uint8Array(P);
    mask[(i * 37) % P] = 1;
    const at = new Tensor(mask, [1, P, 1]);
    model.runWithHooks(tokens, { fwd: [{ name: HOOK, fn: (x) => where(at, source, x) }] }).dataSync();
  });
  const steer = median(reps, (i) => {
    const v = Tensor.full([d], 0.01 * (i + 1));
    model.runWithHooks(tokens, { fwd: [{ name: HOOK, fn: (x) => add(x, v) }] }).dataSync();
  });
  const sae = SparseAutoencoder.init({
    architecture: 'standard',
    dIn: d,
    dSae: 8 * d,
    dOut: d,
    hookName: HOOK,
    hookNameOut: null,
    k: null,
    applyBDecToInput: true,
    normalizeActivations: 'none',
    scalingFactor: null,
    metadata: {},
  });
  model.addSAE(sae);
  let saeMs: number;
  try {
    saeMs = median(reps, () => void model.run(tokens).dataSync());
  } finally {
    model.resetSAEs();
  }
  return { patch, steer, sae: saeMs };
}
