import { ShapeError } from '../errors.js';
import { concat, reshape, slice, stack } from '../engine/ops/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { HookedTransformer, InputOptions, ModelInput } from '../hooks/hooked-transformer.js';
import { unembed } from '../models/transformer.js';
import { applyFinalNorm } from './decompose.js';
import { singleToken } from './tokens.js';
import { tunedLensLogits, type TunedLens } from './tuned-lens.js';

export interface LensToken {
  id: number;
  token: string;
  prob: number;
  logit: number;
}

export interface LensTarget extends LensToken {
  /** 1 = the top prediction (1 + the number of tokens with a strictly larger logit). */
  rank: number;
}

export interface LogitLensOptions extends InputOptions {
  /** Token id, or text that is exactly one token, whose rank and probability are reported. */
  target?: number | string;
  /** Top tokens reported per layer and position (default 5). */
  topK?: number;
  /** Read each block input through this tuned lens's translator instead (the final layer is unchanged). */
  tunedLens?: TunedLens;
}

export interface LogitLensResult {
  tokens: number[];
  strings: string[];
  /** 'blocks.0.hook_resid_pre' .. 'blocks.{L-1}.hook_resid_pre', then 'blocks.{L-1}.hook_resid_post'. */
  layers: string[];
  target: { id: number; token: string } | null;
  /** top[layer][pos]: the top-k tokens read off that residual stream. */
  top: LensToken[][][];
  /** targets[layer][pos]: the target's rank, probability and logit (null without a target). */
  targets: LensTarget[][] | null;
  /** Lens logits [layers, pos, vocab]; the last layer is the model's own logits. */
  logits: Tensor;
}

/**
 * The logit lens (nostalgebraist, 2020): every layer's residual stream (each block's resid_pre, and the
 * final resid_post) through the model's own final norm, with its scale recomputed from that residual, and
 * the unembedding. The last layer reproduces the model's logits.
 */
export function logitLens(
  model: HookedTransformer,
  input: ModelInput,
  opts: LogitLensOptions = {},
): LogitLensResult {
  const { target, topK = 5, tunedLens, ...inputOpts } = opts;
  if (!Number.isInteger(topK) || topK < 0) throw new ShapeError(`topK must be an integer >= 0, got ${topK}`);
  const targetId = target === undefined ? null : singleToken(model, target, 'target');
  const { tokens, attentionMask } = model.toTokens(input, inputOpts);
  if (tokens.shape[0] !== 1)
    throw new ShapeError(`logitLens takes one sequence, got a batch of ${tokens.shape[0]}`);
  const L = model.cfg.nLayers;
  const layers = [
    ...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`),
    `blocks.${L - 1}.hook_resid_post`,
  ];
  const { cache } = model.runWithCache(tokens, {
    ...inputOpts,
    attentionMask: attentionMask ?? undefined,
    names: layers,
  });
  const P = tokens.shape[1]!;
  const V = model.cfg.vocabSize;
  // [layers, 1, pos, d] -> [layers, pos, d]: one normalization and one matmul for every layer.
  const resid = reshape(stack(layers.map((n) => cache.get(n))), [layers.length, P, model.cfg.dModel]);
  let logits = unembed(model.cfg, model.weights, applyFinalNorm(model, resid));
  if (tunedLens) {
    // Block inputs through their translators; the final layer's logits are the model's own either way.
    const perLayer = layers.map((n, l) =>
      l < L
        ? reshape(tunedLensLogits(model, tunedLens, l, cache.get(n)), [1, P, V])
        : slice(logits, 0, l, l + 1),
    );
    logits = concat(perLayer, 0);
  }
  const lg = logits.f32Sync();
  const ids = tokens.toArraySync();
  const top: LensToken[][][] = [];
  const targets: LensTarget[][] | null = targetId === null ? null : [];
  for (let l = 0; l < layers.length; l++) {
    top.push([]);
    targets?.push([]);
    for (let p = 0; p < P; p++) {
      const row = lg.subarray((l * P + p) * V, (l * P + p + 1) * V);
      const lse = logSumExp(row);
      const best = topIds(row, topK);
      const strings = model.tokenStrings(best);
      top[l]!.push(
        best.map((id, i) => ({ id, token: strings[i]!, prob: Math.exp(row[id]! - lse), logit: row[id]! })),
      );
      if (targetId !== null) {
        const t = row[targetId]!;
        let rank = 1;
        for (let i = 0; i < V; i++) if (row[i]! > t) rank++;
        targets![l]!.push({
          id: targetId,
          token: model.tokenStrings([targetId])[0]!,
          prob: Math.exp(t - lse),
          logit: t,
          rank,
        });
      }
    }
  }
  return {
    tokens: ids,
    strings: model.tokenStrings(ids),
    layers,
    target: targetId === null ? null : { id: targetId, token: model.tokenStrings([targetId])[0]! },
    top,
    targets,
    logits,
  };
}

/** Short labels for the lens layers: 'L0 in' .. 'L{L-1} in' (each block's input), then 'final'. */
export function lensLayerLabels(layers: string[]): string[] {
  return layers.map((n, i) =>
    i === layers.length - 1 ? 'final' : `L${/^blocks\.(\d+)\./.exec(n)?.[1] ?? i} in`,
  );
}

function logSumExp(row: Float32Array): number {
  let m = -Infinity;
  for (const v of row) if (v > m) m = v;
  if (!Number.isFinite(m)) return m;
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  return m + Math.log(s);
}

/** Ids of the k largest values (ties: lower id first). */
function topIds(row: Float32Array, k: number): number[] {
  const top: number[] = [];
  k = Math.min(k, row.length);
  for (let i = 0; i < row.length && k > 0; i++) {
    const v = row[i]!;
    if (top.length === k && !(v > row[top[k - 1]!]!)) continue;
    let j = top.length;
    while (j > 0 && v > row[top[j - 1]!]!) j--;
    top.splice(j, 0, i);
    if (top.length > k) top.pop();
  }
  return top;
}
