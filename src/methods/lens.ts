import { ShapeError } from '../errors.js';
import { concat, reshape, slice, stack } from '../engine/ops/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { HookedTransformer, InputOptions, ModelInput } from '../hooks/hooked-transformer.js';
import { unembed } from '../models/transformer.js';
import { applyFinalNorm } from './decompose.js';
import { readPredictions, readTokenStats } from './predictions.js';
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
  /** Also report the rank and probability of the actual next token at each position (`next`). */
  nextToken?: boolean;
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
  /** next[layer][pos]: the actual next token's (tokens[pos + 1]) rank, probability and logit, for pos < P - 1
   * (null unless asked for with `nextToken`). */
  next: LensTarget[][] | null;
  /** Lens logits [layers, pos, vocab]; the last layer is the model's own logits. */
  logits: Tensor;
}

/**
 * The logit lens (nostalgebraist, 2020): every layer's residual stream (each block's resid_pre, and the
 * final resid_post) through the model's own final norm, with its scale recomputed from that residual, and
 * the unembedding. The last layer reproduces the model's logits.
 */
export async function logitLens(
  model: HookedTransformer,
  input: ModelInput,
  opts: LogitLensOptions = {},
): Promise<LogitLensResult> {
  const { target, topK = 5, tunedLens, nextToken = false, ...inputOpts } = opts;
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
  // Everything row-wise runs on the engine; only the top-k and the target's numbers are read.
  const flat = reshape(logits, [layers.length * P, V]);
  const ids = await tokens.toArray();
  // Row l * P + p predicts tokens[p + 1] (the last position's row is read against itself and dropped).
  const nextIds = layers.flatMap(() => ids.map((_, p) => ids[Math.min(p + 1, P - 1)]!));
  const [preds, stats, nextStats] = await Promise.all([
    readPredictions(model, flat, topK),
    targetId === null ? null : readTokenStats(flat, targetId),
    nextToken ? readTokenStats(flat, nextIds) : null,
  ]);
  const top: LensToken[][][] = layers.map((_, l) => preds.slice(l * P, (l + 1) * P));
  let targets: LensTarget[][] | null = null;
  if (stats !== null) {
    const token = model.tokenStrings([targetId!])[0]!;
    targets = layers.map((_, l) =>
      Array.from({ length: P }, (_, p) => {
        const i = l * P + p;
        return {
          id: targetId!,
          token,
          prob: Math.exp(stats.logProb[i]!),
          logit: stats.logit[i]!,
          rank: stats.rank[i]!,
        };
      }),
    );
  }
  const strings = model.tokenStrings(ids);
  const next =
    nextStats &&
    layers.map((_, l) =>
      Array.from({ length: P - 1 }, (_, p) => {
        const i = l * P + p;
        return {
          id: ids[p + 1]!,
          token: strings[p + 1]!,
          prob: Math.exp(nextStats.logProb[i]!),
          logit: nextStats.logit[i]!,
          rank: nextStats.rank[i]!,
        };
      }),
    );
  return {
    tokens: ids,
    strings,
    layers,
    target: targetId === null ? null : { id: targetId, token: model.tokenStrings([targetId])[0]! },
    top,
    targets,
    next,
    logits,
  };
}

/** Short labels for the lens layers: 'L0 in' .. 'L{L-1} in' (each block's input), then 'final'. */
export function lensLayerLabels(layers: string[]): string[] {
  return layers.map((n, i) =>
    i === layers.length - 1 ? 'final' : `L${/^blocks\.(\d+)\./.exec(n)?.[1] ?? i} in`,
  );
}
