import { HookError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import { stack } from '../engine/ops/shape.js';
import type { HookedTransformer } from './hooked-transformer.js';
import {
  accumulatedResid,
  applyLnToStack,
  decomposeResid,
  logitAttrs,
  stackHeadResults,
  type LabelledStack,
} from './resid-stacks.js';

/**
 * Activations recorded by runWithCache, keyed by TransformerLens hook names. A cache made by a model
 * also has TransformerLens's residual-stream helpers (accumulatedResid, decomposeResid, ...), which read
 * its config and weights.
 */
export class ActivationCache {
  constructor(
    private readonly entries: Map<string, Tensor>,
    readonly model: HookedTransformer | null = null,
  ) {}

  private requireModel(what: string): HookedTransformer {
    if (!this.model)
      throw new HookError(`${what} needs the model: use a cache made by model.runWithCache(...)`);
    return this.model;
  }

  /** The residual stream before each block up to `layer` (default: all, then 'final_post'); see resid-stacks.ts. */
  accumulatedResid(layer?: number, opts: { inclMid?: boolean; applyLn?: boolean } = {}): LabelledStack {
    return accumulatedResid(this.requireModel('accumulatedResid'), this, layer, opts);
  }

  /** What the embeddings, each attention and each MLP wrote to the residual stream before `layer`. */
  decomposeResid(layer?: number, opts: { applyLn?: boolean; inclEmbeds?: boolean } = {}): LabelledStack {
    return decomposeResid(this.requireModel('decomposeResid'), this, layer, opts);
  }

  /** Each head's hook_result before `layer`: [layers*heads, batch, pos, d_model], labels 'L0H0', ... */
  stackHeadResults(layer?: number, opts: { applyLn?: boolean } = {}): LabelledStack {
    return stackHeadResults(this.requireModel('stackHeadResults'), this, layer, opts);
  }

  /** Centre (LayerNorm) and divide by the cached scale of the norm that reads `layer` (ln_final by default). */
  applyLnToStack(residStack: Tensor, layer?: number): Tensor {
    return applyLnToStack(this.requireModel('applyLnToStack'), this, residStack, layer);
  }

  /** Each component's direct contribution to logit(answer) - logit(wrong): [...] from [..., d_model]. */
  logitAttrs(residStack: Tensor, answer: number | string, wrong?: number | string): Tensor {
    return logitAttrs(this.requireModel('logitAttrs'), residStack, answer, wrong);
  }

  get(name: string): Tensor {
    const t = this.entries.get(name);
    if (!t) {
      throw new HookError(
        `'${name}' is not in this cache (it holds ${this.entries.size} activations; see cache.keys())`,
      );
    }
    return t;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  keys(): string[] {
    return [...this.entries.keys()];
  }

  get size(): number {
    return this.entries.size;
  }

  /** One activation per layer, stacked on a new leading axis: e.g. stackLayers('hook_resid_post'). */
  stackLayers(suffix: string, nLayers: number): Tensor {
    return stack(Array.from({ length: nLayers }, (_, l) => this.get(`blocks.${l}.${suffix}`)));
  }

  [Symbol.iterator](): IterableIterator<[string, Tensor]> {
    return this.entries.entries();
  }
}
