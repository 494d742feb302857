// Attention patterns read off a forward pass: pattern[head][query][key] per layer, for the CLI's heads
// grid (`sonde cache --plot`) and the explorer's attention view.
import { ShapeError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import type { HookedTransformer, ModelInput } from '../hooks/hooked-transformer.js';
import type { AttentionPatterns } from '../plot/attention.js';

export interface AttentionResult extends AttentionPatterns {
  /** Token ids of the sequence (`tokens` holds their strings). */
  ids: number[];
  /** The layers read, in the order of `hooks`. */
  layers: number[];
}

/** pattern[head][query][key] of a [1, head, query, key] attention pattern. */
export async function headMatrices(t: Tensor): Promise<number[][][]> {
  const [, H, Q, K] = t.shape as [number, number, number, number];
  const x = await t.f32();
  return Array.from({ length: H }, (_, h) =>
    Array.from({ length: Q }, (_, q) => Array.from(x.subarray((h * Q + q) * K, (h * Q + q + 1) * K))),
  );
}

/** The attention patterns of `layers` (default: every layer) on one sequence. */
export async function attentionPatterns(
  model: HookedTransformer,
  input: ModelInput,
  layers: number[] = Array.from({ length: model.cfg.nLayers }, (_, l) => l),
): Promise<AttentionResult> {
  const L = model.cfg.nLayers;
  for (const l of layers)
    if (!Number.isInteger(l) || l < 0 || l >= L)
      throw new ShapeError(`layer ${l} is not in [0, ${L}): the model has ${L} layers`);
  const { tokens } = model.toTokens(input);
  if (tokens.shape[0] !== 1)
    throw new ShapeError(`attentionPatterns takes one sequence, got a batch of ${tokens.shape[0]}`);
  const names = layers.map((l) => `blocks.${l}.attn.hook_pattern`);
  const { cache } = model.runWithCache(tokens, { names });
  const [ids, patterns] = await Promise.all([
    tokens.toArray(),
    Promise.all(names.map((n) => headMatrices(cache.get(n)))),
  ]);
  return {
    ids,
    tokens: model.tokenStrings(ids),
    layers,
    hooks: names.map((name, i) => ({ name, pattern: patterns[i]! })),
  };
}
