// The metrics circuit methods score a run by, per pair, as engine ops on its logits (differentiable, so EAP
// back-propagates the same expression ACDC evaluates).
import { UsageError } from '../errors.js';
import { mul, sub } from '../engine/ops/elementwise.js';
import { logSoftmax, softmax } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { expand, gather, gatherElements, reshape, slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { CircuitPair, PairBatch } from './pairs.js';

export const CIRCUIT_METRICS = ['kl', 'logit-diff', 'loss'] as const;
export type CircuitMetric = (typeof CIRCUIT_METRICS)[number];

/** logit-diff grows as the model does the task; kl and loss shrink. */
export function higherIsBetter(metric: CircuitMetric): boolean {
  return metric === 'logit-diff';
}

export function checkMetric(name: string): CircuitMetric {
  if (!(CIRCUIT_METRICS as readonly string[]).includes(name))
    throw new UsageError(`unknown metric '${name}': use one of ${CIRCUIT_METRICS.join(', ')}`);
  return name as CircuitMetric;
}

/** The positions a metric scores in a pair: its own "positions", else the metric's default. */
export function scoredPositions(metric: CircuitMetric, pair: CircuitPair): number[] {
  const P = pair.clean.length;
  if (metric === 'logit-diff') return [P - 1];
  if (pair.positions) return pair.positions;
  return metric === 'kl' ? [P - 1] : Array.from({ length: P - 1 }, (_, i) => i);
}

/** Every position some pair of the batch scores, ascending: the logits a patched run must compute. */
export function metricPositions(metric: CircuitMetric, batch: PairBatch): number[] {
  const all = new Set<number>();
  for (const pair of batch.pairs) for (const p of scoredPositions(metric, pair)) all.add(p);
  return [...all].sort((a, b) => a - b);
}

/**
 * The metric of each row of a run over V variants of one batch's n pairs: logits [V*n, pos, vocab] ->
 * [V*n]. With `positions` (as metricPositions gives), the logits are those positions' only,
 * [V*n, positions, vocab]. `cleanLogits` [n, pos, vocab] (the unpatched clean run, every position) is
 * needed by kl.
 */
export type RowMetric = (logits: Tensor) => Tensor;

export function rowMetric(
  metric: CircuitMetric,
  batch: PairBatch,
  cleanLogits: Tensor | null,
  positions?: number[],
): RowMetric {
  const { pairs } = batch;
  const n = pairs.length;
  const P = pairs[0]!.clean.length;
  const at = positions ?? Array.from({ length: P }, (_, p) => p);
  const Q = at.length;
  const slot = new Map(at.map((p, q) => [p, q] as const));
  const slotOf = (p: number): number => {
    const q = slot.get(p);
    if (q === undefined)
      throw new Error(`metric: position ${p} is scored but not among the logits' positions`);
    return q;
  };
  // Mean over each pair's scored positions, as weights [1, n, Q].
  const weights = new Float32Array(n * Q);
  pairs.forEach((pair, b) => {
    const ps = scoredPositions(metric, pair);
    if (metric === 'loss' && ps.some((p) => p >= P - 1))
      throw new UsageError(`metric loss scores next tokens: position ${P - 1} (the last) has none to score`);
    for (const p of ps) weights[b * Q + slotOf(p)]! += 1 / ps.length;
  });
  const W = new Tensor(weights, [1, n, Q]);
  const meanOverPositions = (perPos: Tensor, V: number) =>
    reshape(sum(mul(reshape(perPos, [V, n, Q]), W), 2), [V * n]);
  const variants = (logits: Tensor) => logits.shape[0]! / n;
  // Int64 indices [n, pos, k] repeated over the V variants -> [V*n, pos, k].
  const perVariant = (idx: BigInt64Array, shape: number[], V: number) =>
    reshape(expand(new Tensor(idx, [1, ...shape]), [V, ...shape]), [V * shape[0]!, ...shape.slice(1)]);

  if (metric === 'logit-diff') {
    const idx = new BigInt64Array(n * 2);
    pairs.forEach((pair, b) => {
      if (pair.answer === undefined || pair.wrong === undefined)
        throw new UsageError(
          `metric logit-diff needs "answer" and "wrong" tokens in every pair (${pair.source ?? `pair ${batch.indices[b]! + 1}`} has none)`,
        );
      idx[2 * b] = BigInt(pair.answer);
      idx[2 * b + 1] = BigInt(pair.wrong);
    });
    const sign = Tensor.from([1, -1]);
    return (logits) => {
      const V = variants(logits);
      const last = reshape(slice(logits, 1, slotOf(P - 1), slotOf(P - 1) + 1), [V * n, logits.shape[2]!]);
      const picked = gatherElements(last, 1, reshape(perVariant(idx, [n, 2], V), [V * n, 2]));
      return sum(mul(picked, sign), 1);
    };
  }
  if (metric === 'loss') {
    const idx = new BigInt64Array(n * Q);
    pairs.forEach((pair, b) =>
      at.forEach((p, q) => (idx[b * Q + q] = BigInt(pair.clean[Math.min(p + 1, P - 1)]!))),
    );
    return (logits) => {
      const V = variants(logits);
      const logp = logSoftmax(logits, -1);
      const nll = mul(reshape(gatherElements(logp, 2, perVariant(idx, [n, Q, 1], V)), [V * n, Q]), -1);
      return meanOverPositions(nll, V);
    };
  }
  if (!cleanLogits) throw new Error('metric kl needs the clean logits');
  // [n, Q, vocab]: the clean run's logits at the same positions.
  const clean = positions
    ? gather(cleanLogits, 1, new Tensor(BigInt64Array.from(at, BigInt), [Q]))
    : cleanLogits;
  const logpClean = logSoftmax(clean, -1);
  const pClean = softmax(clean, -1);
  return (logits) => {
    const V = variants(logits);
    const vocab = logits.shape[2]!;
    const logp = reshape(logSoftmax(logits, -1), [V, n, Q, vocab]);
    const klPos = sum(mul(pClean, sub(logpClean, logp)), 3); // [V, n, pos]
    return meanOverPositions(klPos, V);
  };
}
