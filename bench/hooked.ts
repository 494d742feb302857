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

/** Median ms of `fn(i)`, its result read, over reps after one warm-up call per structure (i = 0, 1). */
async function median(reps: number, fn: (i: number) => Tensor): Promise<number> {
  await fn(0).data();
  await fn(1).data(); // the second sight of a structure compiles it
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn(i + 2).data();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function hookedForwards(
  model: HookedTransformer,
  tokens: Tensor,
  reps: number,
): Promise<HookedTimes> {
  const P = tokens.shape[1]!;
  const d = model.cfg.dModel;
  // A cached activation to patch from (another prompt), computed once.
  const other = new Tensor(
    BigInt64Array.from({ length: P }, (_, i) => BigInt((i * 104729 + 3) % model.cfg.vocabSize)),
    [1, P],
  );
  const source = model.runWithCache(other, { names: [HOOK] }).cache.get(HOOK);
  await source.data();
  const patch = await median(reps, (i) => {
    const mask = new Uint8Array(P);
    mask[(i * 37) % P] = 1;
    const at = new Tensor(mask, [1, P, 1]);
    return model.runWithHooks(tokens, { fwd: [{ name: HOOK, fn: (x) => where(at, source, x) }] });
  });
  const steer = await median(reps, (i) => {
    const v = Tensor.full([d], 0.01 * (i + 1));
    return model.runWithHooks(tokens, { fwd: [{ name: HOOK, fn: (x) => add(x, v) }] });
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
    saeMs = await median(reps, () => model.run(tokens));
  } finally {
    model.resetSAEs();
  }
  return { patch, steer, sae: saeMs };
}
