import { UsageError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { singleToken } from './tokens.js';

/** What patching-style methods compare: logit(answer) - logit(wrong) at the last position, or any metric. */
export interface MetricSpec {
  answer?: string | number;
  wrong?: string | number;
  /** Any metric of one run's logits [1, pos, vocab]. */
  metric?: (logits: Tensor) => number;
}

export interface ResolvedMetric {
  answer: { id: number; token: string } | null;
  wrong: { id: number; token: string } | null;
  /** The metric of row b of flat logits [rows, pos, vocab]. */
  metricOf: (logits: Float32Array, b: number) => number;
}

/** An answer as an id plus its display string (see tokens.ts for what counts as one token). */
export function answerToken(
  model: HookedTransformer,
  x: string | number,
  what = 'token',
): { id: number; token: string } {
  const id = singleToken(model, x, what);
  return { id, token: model.tokenStrings([id])[0]! };
}

/** Checks a metric spec and makes the per-row metric for sequences of P tokens. */
export function resolveMetric(model: HookedTransformer, spec: MetricSpec, P: number): ResolvedMetric {
  const V = model.cfg.vocabSize;
  if (spec.metric) {
    if (spec.answer !== undefined || spec.wrong !== undefined)
      throw new UsageError('give either a metric or answer/wrong tokens, not both');
    const fn = spec.metric;
    return {
      answer: null,
      wrong: null,
      metricOf: (lg, b) => fn(new Tensor(lg.slice(b * P * V, (b + 1) * P * V), [1, P, V])),
    };
  }
  if (spec.answer === undefined || spec.wrong === undefined)
    throw new UsageError('give answer and wrong tokens (for the logit difference), or a metric function');
  const answer = answerToken(model, spec.answer, 'answer');
  const wrong = answerToken(model, spec.wrong, 'wrong');
  if (answer.id === wrong.id)
    throw new UsageError(`answer and wrong are the same token (${JSON.stringify(answer.token)})`);
  const a = answer.id;
  const w = wrong.id;
  return {
    answer,
    wrong,
    metricOf: (lg, b) => {
      const o = (b * P + P - 1) * V;
      return lg[o + a]! - lg[o + w]!;
    },
  };
}
