// Row-wise numerics on logits, in one place and as engine ops: top-k tokens, log-probabilities, a token's
// rank and the next-token loss are computed where the logits live (lazily, on any backend); only the small
// results are read back.
import { add, gt, sub } from '../engine/ops/elementwise.js';
import { crossEntropy } from '../engine/ops/nn.js';
import { logsumexp, sum, topk } from '../engine/ops/reduce.js';
import { cast, gather, gatherElements, reshape, slice, squeeze } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import { nextTokenLoss, type HookedTransformer } from '../hooks/hooked-transformer.js';

export interface Prediction {
  id: number;
  token: string;
  prob: number;
  logit: number;
}

/** Next-token loss of each prediction, [batch, pos-1], from logits [batch, pos, vocab] and tokens [batch, pos]. */
export function nextTokenLosses(logits: Tensor, tokens: Tensor): Tensor {
  const P = tokens.shape[1]!;
  return crossEntropy(slice(logits, 1, 0, P - 1), slice(tokens, 1, 1, P), 'none');
}

/**
 * The k largest logits of each row of logits [..., vocab] (ties: lower id first), as ids (int64), logits and
 * log-probabilities, each [..., k].
 */
export function topTokens(logits: Tensor, k: number): { ids: Tensor; logits: Tensor; logProbs: Tensor } {
  const { values, indices } = topk(logits, Math.min(k, logits.shape[logits.rank - 1]!));
  return { ids: indices, logits: values, logProbs: sub(values, logsumexp(logits, -1, true)) };
}

/** Token `id`'s logit, log-probability and rank (1 + the number of strictly larger logits) in each row, each [...]. */
export function tokenStats(logits: Tensor, id: number): { logit: Tensor; logProb: Tensor; rank: Tensor } {
  return pickedStats(logits, gather(logits, -1, Tensor.from([id], [1], 'int64')));
}

/** tokenStats of a different token in each row of logits [rows, vocab]: row r's ids[r], each [rows]. */
export function rowTokenStats(
  logits: Tensor,
  ids: number[],
): { logit: Tensor; logProb: Tensor; rank: Tensor } {
  return pickedStats(logits, gatherElements(logits, -1, Tensor.from(ids, [ids.length, 1], 'int64')));
}

/** Logit, log-probability and rank of the picked logits [..., 1] in their rows of logits [..., vocab]. */
function pickedStats(logits: Tensor, picked: Tensor): { logit: Tensor; logProb: Tensor; rank: Tensor } {
  const above = sum(cast(gt(logits, picked), 'float32'), -1);
  return {
    logit: squeeze(picked, -1),
    logProb: squeeze(sub(picked, logsumexp(logits, -1, true)), -1),
    rank: add(above, 1),
  };
}

/** The top-k predictions of each row of logits [rows, vocab], read and labelled: [rows][k]. */
export async function readPredictions(
  model: HookedTransformer,
  logits: Tensor,
  k: number,
): Promise<Prediction[][]> {
  const rows = logits.shape[0]!;
  if (k <= 0) return Array.from({ length: rows }, () => []);
  const top = topTokens(logits, k);
  const [ids, lg, lp] = await Promise.all([top.ids.toArray(), top.logits.f32(), top.logProbs.f32()]);
  const kk = ids.length / rows;
  return Array.from({ length: rows }, (_, r) => {
    const rowIds = ids.slice(r * kk, (r + 1) * kk);
    const strings = model.tokenStrings(rowIds);
    return rowIds.map((id, i) => ({
      id,
      token: strings[i]!,
      prob: Math.exp(lp[r * kk + i]!),
      logit: lg[r * kk + i]!,
    }));
  });
}

/** tokenStats (one id for every row, or one id per row) read back: per row, the token's logit, log-probability and rank. */
export async function readTokenStats(
  logits: Tensor,
  id: number | number[],
): Promise<{ logit: Float32Array; logProb: Float32Array; rank: Float32Array }> {
  const s = typeof id === 'number' ? tokenStats(logits, id) : rowTokenStats(logits, id);
  const [logit, logProb, rank] = await Promise.all([s.logit.f32(), s.logProb.f32(), s.rank.f32()]);
  return { logit, logProb, rank };
}

/** A prompt's tokens, the top-k predictions after each, and the loss of each actual next token. */
export interface PromptPredictions {
  tokens: number[];
  strings: string[];
  topK: number;
  /** predictions[i]: the top-k tokens predicted to follow position i. */
  predictions: Prediction[][];
  /** losses[i]: cross-entropy of the actual token i+1 given the prefix (null at the last position). */
  losses: (number | null)[];
  /** Mean next-token cross-entropy in nats (null for a single token). */
  loss: number | null;
}

/** One forward pass over `ids`: what `sonde run` prints and the explorer's prompt view shows. */
export async function promptPredictions(
  model: HookedTransformer,
  ids: number[],
  topK: number,
): Promise<PromptPredictions> {
  const { tokens } = model.toTokens(ids);
  const logits = model.run(tokens);
  const V = logits.shape[2]!;
  const many = ids.length >= 2;
  const [predictions, perToken, loss] = await Promise.all([
    readPredictions(model, reshape(logits, [ids.length, V]), topK),
    many ? nextTokenLosses(logits, tokens).toArray() : [],
    many ? nextTokenLoss(logits, tokens).item() : null,
  ]);
  const losses = ids.map((_, p) => (perToken as number[])[p] ?? null);
  return { tokens: ids, strings: model.tokenStrings(ids), topK, predictions, losses, loss };
}
