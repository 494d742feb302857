import type { Tensor } from '../engine/tensor.js';
import type { ModelConfig } from '../models/config.js';
import type { HookPoint } from '../models/hook-point.js';
import { forward, type ForwardOptions } from '../models/transformer.js';
import type { Weights } from '../models/weights.js';
import type { HookPlan } from './hooks.js';

/** What runModel runs: a config and weights and, for a HookedTransformer, its added hooks and splices. */
export interface Runnable {
  readonly cfg: ModelConfig;
  readonly weights: Weights;
  /** Whether every pass must go through hookPoint() (splices or added hooks). */
  readonly hooked?: boolean;
  hookPoint?(plan?: Partial<HookPlan>, recordsGrad?: boolean): HookPoint;
}

export interface RunModelOptions extends Omit<ForwardOptions, 'hook'> {
  /** Hooks and caches of this pass; the model's added hooks and splices join them. */
  plan?: Partial<HookPlan>;
  /** A hook point built already (model.hookPoint(...), wrapped for gradients); replaces `plan`. */
  hook?: HookPoint;
  /** Weights to run instead of the model's (the trainer's parameters, as traced inputs). */
  weights?: Weights;
}

/**
 * The one entry point that runs a model: token ids [batch, pos] -> logits [batch, pos, vocab] (the
 * residual stream with stopAtLayer). Hook plan, splices, start and stop layers and the KV cache all
 * pass through here, so that generation, the methods and the trainer run the model the same way and a
 * change to how a pass runs (compiling it, say) is made once.
 */
export function runModel(model: Runnable, tokens: Tensor, opts: RunModelOptions = {}): Tensor {
  const { plan, hook, weights, ...rest } = opts;
  const hp = hook ?? (model.hookPoint && (plan || model.hooked) ? model.hookPoint(plan) : undefined);
  return forward(model.cfg, weights ?? model.weights, tokens, { ...rest, hook: hp });
}
