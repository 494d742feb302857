import { HookError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
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

/** A hook as an object or as TransformerLens's `(name, fn)` tuple: `[['blocks.0.hook_z', fn]]`. */
export type HookSpec<F> = { name: HookSelector; fn: F } | readonly [HookSelector, F];

/** Hooks given as objects or tuples, as objects; anything else is a HookError saying what was expected. */
export function toHooks<F>(
  specs: readonly HookSpec<F>[] | undefined,
  kind: 'fwd' | 'bwd',
): { name: HookSelector; fn: F }[] {
  if (specs === undefined) return [];
  if (!Array.isArray(specs))
    throw new HookError(
      `${kind} hooks must be an array of { name, fn } or [name, fn], got ${describe(specs)}`,
    );
  return specs.map((h: unknown, i) => {
    const [name, fn] = Array.isArray(h) ? h : [(h as { name?: unknown })?.name, (h as { fn?: unknown })?.fn];
    if ((typeof name !== 'string' && typeof name !== 'function') || typeof fn !== 'function')
      throw new HookError(
        `${kind} hook ${i} must be { name, fn } or [name, fn] with a hook name (or name filter) and a function, got ${describe(h)}`,
      );
    return { name: name as HookSelector, fn: fn as F };
  });
}

/** A short description of a value for error messages. */
function describe(x: unknown): string {
  if (x === null || x === undefined) return String(x);
  if (x instanceof Tensor) return `a Tensor of shape [${x.shape}]`;
  if (Array.isArray(x)) return `an array of ${x.length}`;
  return typeof x === 'object'
    ? `an object with keys ${JSON.stringify(Object.keys(x))}`
    : `${typeof x} ${String(x).slice(0, 40)}`;
}

/** A hook's return value: a Tensor of the activation's shape, or nothing (null/undefined). */
function checkReturn(r: unknown, like: Tensor, what: string): Tensor | undefined {
  if (r === undefined || r === null) return undefined;
  if (!(r instanceof Tensor))
    throw new HookError(
      `${what} returned ${describe(r)}: return a Tensor of shape [${like.shape}], or nothing`,
    );
  if (r.shape.length !== like.shape.length || r.shape.some((d, i) => d !== like.shape[i]))
    throw new HookError(`${what} returned shape [${r.shape}], expected [${like.shape}]`);
  return r;
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
    if (/^blocks\.\d+\.attn\.hook_result$/.test(s))
      throw new HookError(`'${s}' (each head's output) exists only with useAttnResult: true`);
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
      y = checkReturn(h.fn(y, info), y, `hook on '${name}'`) ?? y;
    }
    if (plan.cache?.(name)) plan.store.set(name, y);
    for (const h of plan.bwd) {
      if (!matches(h.name, name)) continue;
      if (!y.requiresGrad) {
        throw new HookError(
          `backward hook on '${name}': this activation does not require grad (run with grad enabled)`,
        );
      }
      y.registerHook((g) => checkReturn(h.fn(g, info), g, `backward hook on '${name}'`));
    }
    return y;
  };
}
