// The metrics circuit methods score a run by, per pair, as engine ops on its logits (differentiable, so EAP
// back-propagates the same expression ACDC evaluates).
import { UsageError } from '../errors.js';
import { mul, sub } from '../engine/ops/elementwise.js';
import { logSoftmax, softmax } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { expand, gatherElements, reshape, slice } from '../engine/ops/shape.js';
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

/**
 * The metric of each row of a run over V variants of one batch's n pairs: logits [V*n, pos, vocab] ->
 * [V*n]. `cleanLogits` [n, pos, vocab] (the unpatched clean run) is needed by kl.
 */
export type RowMetric = (logits: Tensor) => Tensor;

export function rowMetric(metric: CircuitMetric, batch: PairBatch, cleanLogits: Tensor | null): RowMetric {
  const { pairs } = batch;
  const n = pairs.length;
  const P = pairs[0]!.clean.length;
  // Mean over each pair's scored positions, as weights [1, n, pos].
  const weights = new Float32Array(n * P);
  pairs.forEach((pair, b) => {
    const ps = scoredPositions(metric, pair);
    if (metric === 'loss' && ps.some((p) => p >= P - 1))
      throw new UsageError(`metric loss scores next tokens: position ${P - 1} (the last) has none to score`);
    for (const p of ps) weights[b * P + p]! += 1 / ps.length;
  });
  const W = new Tensor(weights, [1, n, P]);
  const meanOverPositions = (perPos: Tensor, V: number) =>
    reshape(sum(mul(reshape(perPos, [V, n, P]), W), 2), [V * n]);
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
      const last = reshape(slice(logits, 1, P - 1, P), [V * n, logits.shape[2]!]);
      const picked = gatherElements(last, 1, reshape(perVariant(idx, [n, 2], V), [V * n, 2]));
      return sum(mul(picked, sign), 1);
    };
  }
  if (metric === 'loss') {
    const idx = new BigInt64Array(n * P);
    pairs.forEach((pair, b) =>
      pair.clean.forEach((_, p) => (idx[b * P + p] = BigInt(pair.clean[Math.min(p + 1, P - 1)]!))),
    );
    return (logits) => {
      const V = variants(logits);
      const logp = logSoftmax(logits, -1);
      const nll = mul(reshape(gatherElements(logp, 2, perVariant(idx, [n, P, 1], V)), [V * n, P]), -1);
      return meanOverPositions(nll, V);
    };
  }
  if (!cleanLogits) throw new Error('metric kl needs the clean logits');
  const logpClean = logSoftmax(cleanLogits, -1); // [n, pos, vocab]
  const pClean = softmax(cleanLogits, -1);
  return (logits) => {
    const V = variants(logits);
    const vocab = logits.shape[2]!;
    const logp = reshape(logSoftmax(logits, -1), [V, n, P, vocab]);
    const klPos = sum(mul(pClean, sub(logpClean, logp)), 3); // [V, n, pos]
    return meanOverPositions(klPos, V);
  };
}
