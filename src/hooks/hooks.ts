import { HookError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import type { HookPoint } from '../models/hook-point.js';

/** Where a hook is called: its TransformerLens name and layer (null outside blocks). */
export interface HookInfo {
  name: string;
  layer: number | null;
}

/** A forward hook reads an activation and may return a replacement of the same shape. */
export type ForwardHookFn = (activation: Tensor, hook: HookInfo) => Tensor | void;
/** A backward hook reads the gradient at a hook point and may return a replacement. */
export type BackwardHookFn = (grad: Tensor, hook: HookInfo) => Tensor | void;

/** A name, or a filter over names (as TransformerLens's name filters). */
export type HookSelector = string | ((name: string) => boolean);

export interface ForwardHook {
  name: HookSelector;
  fn: ForwardHookFn;
}
export interface BackwardHook {
  name: HookSelector;
  fn: BackwardHookFn;
}

export function layerOf(name: string): number | null {
  const m = /^blocks\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

export function matches(sel: HookSelector, name: string): boolean {
  return typeof sel === 'string' ? sel === name : sel(name);
}

/** Checks that every string selector names a real hook point, with a suggestion when not. */
export function validateSelectors(selectors: HookSelector[], known: readonly string[]): void {
  const set = new Set(known);
  for (const s of selectors) {
    if (typeof s !== 'string' || set.has(s)) continue;
    const near = known.filter((k) => k.endsWith(s.split('.').pop() ?? '')).slice(0, 3);
    throw new HookError(
      `unknown hook point '${s}'${near.length ? `; did you mean ${near.map((n) => `'${n}'`).join(', ')}?` : ''} (see model.hookNames())`,
    );
  }
}

export interface HookPlan {
  fwd: ForwardHook[];
  bwd: BackwardHook[];
  cache: ((name: string) => boolean) | null;
  /** Cache entries are written here. */
  store: Map<string, Tensor>;
}

/** Builds the hook-point function for one forward pass. */
export function makeHookPoint(plan: HookPlan): HookPoint {
  return (name, x) => {
    const info: HookInfo = { name, layer: layerOf(name) };
    let y = x;
    for (const h of plan.fwd) {
      if (!matches(h.name, name)) continue;
      const r = h.fn(y, info);
      if (r) {
        if (r.shape.length !== y.shape.length || r.shape.some((d, i) => d !== y.shape[i])) {
          throw new HookError(`hook on '${name}' returned shape [${r.shape}], expected [${y.shape}]`);
        }
        y = r;
      }
    }
    if (plan.cache?.(name)) plan.store.set(name, y);
    for (const h of plan.bwd) {
      if (!matches(h.name, name)) continue;
      if (!y.requiresGrad) {
        throw new HookError(
          `backward hook on '${name}': this activation does not require grad (run with grad enabled)`,
        );
      }
      y.registerHook((g) => h.fn(g, info) ?? undefined);
    }
    return y;
  };
}
