// Splicing: replacing the activation at a hook point by a computation of its own (an SAE, a transcoder,
// any module with the same interface). The hooks layer knows only this interface; src/sae implements it.
// A splice's internal points become hook points of the model named `H.<point>` (H: the hook it
// replaces), reached through the same hook machinery as the model's own.
import { HookError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import type { ModelConfig } from '../models/config.js';
import type { HookPoint } from '../models/hook-point.js';
import { layerOf, makeHookPoint, type HookPlan } from './hooks.js';

/** One module spliced into a model's forward pass. */
export interface Splice {
  /** The object spliced (e.g. a SparseAutoencoder): what removeSAE and withSAEs find it by. */
  readonly source: Spliceable;
  /** The options it was spliced with, to splice it again the same way. */
  readonly options: object;
  /** The hook whose activation it replaces. */
  readonly hookName: string;
  /** The hook it reads: hookName, or an earlier hook (a transcoder reads one hook and writes another). */
  readonly inputHook: string;
  /** Its own hook points' short names, in forward order (the model shows them as `${hookName}.${short}`). */
  readonly points: readonly string[];
  /** Parameters a compiled graph bakes in (read at each use: a replaced tensor means a new graph). */
  readonly params: readonly Tensor[];
  /**
   * The replacement of `original` (the activation at hookName after its hooks), computed from `input`
   * (the activation at inputHook); `hook` runs the splice's own hook points.
   */
  apply(input: Tensor, original: Tensor, hook: (short: string, x: Tensor) => Tensor): Tensor;
}

/** What a splice is checked against: the model's config and hook names (a HookedTransformer). */
export interface SpliceTarget {
  readonly cfg: ModelConfig;
}

/** Something that can be spliced into a model (SparseAutoencoder implements it). */
export interface Spliceable<O extends object = object> {
  /** Checks that it fits `target` beside the splices already there, and returns its splice. */
  splice(target: SpliceTarget, current: readonly Splice[], opts?: O): Splice;
}

/** The model's hook names with each splice's points inserted right after the hook it replaces. */
export function splicedHookNames(base: readonly string[], splices: readonly Splice[]): string[] {
  if (splices.length === 0) return [...base];
  const byHook = new Map(splices.map((s) => [s.hookName, s]));
  return base.flatMap((n) => {
    const s = byHook.get(n);
    return s ? [n, ...s.points.map((p) => `${n}.${p}`)] : [n];
  });
}

/**
 * The hook point of one forward pass: the plan's hooks at every point (model hooks and splice points),
 * with the splices applied. At a hook H with a splice, H's own hooks run first (they see the model's
 * activation), then the activation is replaced by the splice's output. A splice reading an earlier hook
 * gets the activation there in the same pass, after that hook's own hooks and any splice there.
 */
export function makeSplicedHookPoint(plan: HookPlan, splices: readonly Splice[]): HookPoint {
  const base = makeHookPoint(plan);
  if (splices.length === 0) return base;
  const byHook = new Map(splices.map((s) => [s.hookName, s]));
  const read = new Set(splices.filter((s) => s.inputHook !== s.hookName).map((s) => s.inputHook));
  const inputs = new Map<string, Tensor>();
  return (name, x) => {
    let y = base(name, x);
    const s = byHook.get(name);
    if (s) {
      let input = y;
      if (s.inputHook !== s.hookName) {
        const seen = inputs.get(s.inputHook);
        if (!seen)
          throw new HookError(
            `splice '${s.inputHook}' -> '${s.hookName}': its input hook was not run earlier in this forward pass`,
          );
        input = seen;
      }
      y = s.apply(input, y, (short, t) => base(`${s.hookName}.${short}`, t));
    }
    if (read.has(name)) inputs.set(name, y);
    return y;
  };
}

const ids = new WeakMap<object, number>();
let nextId = 1;

/** A key naming the spliced set (identity of each source, its hook and options) for compile caches. */
export function spliceKey(splices: readonly Splice[]): string {
  return splices
    .map((s) => {
      let id = ids.get(s.source);
      if (id === undefined) ids.set(s.source, (id = nextId++));
      return `${id}@${s.hookName}${JSON.stringify(s.options)}`;
    })
    .join(',');
}

/** Every parameter tensor of the splices (a compiled graph bakes them in). */
export function spliceTensors(splices: readonly Splice[]): Tensor[] {
  return splices.flatMap((s) => [...s.params]);
}

/**
 * The layer a pass that skips earlier layers (startAtLayer) must start at so that every splice writing
 * at or after `layer` still sees its input: `layer`, or the input layer of a splice that spans it.
 */
export function spliceStartLayer(splices: readonly Splice[], layer: number): number {
  let start = layer;
  for (let changed = true; changed;) {
    changed = false;
    for (const s of splices) {
      const out = layerOf(s.hookName);
      const inp = layerOf(s.inputHook) ?? 0;
      if (s.inputHook !== s.hookName && (out === null || out >= start) && inp < start) {
        start = inp;
        changed = true;
      }
    }
  }
  return start;
}
