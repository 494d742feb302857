import type { Tensor } from '../engine/tensor.js';

/**
 * What a forward pass calls at each named activation (TransformerLens names). The forward functions
 * know nothing of caches or hooks: src/hooks builds this callback.
 */
export type HookPoint = (name: string, x: Tensor) => Tensor;

export const NO_HOOKS: HookPoint = (_name, x) => x;
