import { HookError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import { stack } from '../engine/ops/shape.js';

/** Activations recorded by runWithCache, keyed by TransformerLens hook names. */
export class ActivationCache {
  constructor(private readonly entries: Map<string, Tensor>) {}

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
