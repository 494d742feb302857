// Splicing SAEs and transcoders into a model's forward pass, as SAELens's HookedSAETransformer. An SAE at
// hook H replaces H's activation by its output; its internal points become hook points of the model named
// `H.hook_sae_input`, `H.hook_sae_acts_pre`, ..., reached through the same hook machinery as the model's
// own (so caching, forward and backward hooks, gradients and the methods work on them). A transcoder reads
// cfg.hookName and replaces cfg.hookNameOut; its points live under the hook it replaces.
import { HookError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';
import { layerOf, makeHookPoint, type HookPlan } from '../hooks/hooks.js';
import { runScoped } from '../hooks/scoped.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ModelConfig } from '../models/config.js';
import type { HookPoint } from '../models/hook-point.js';
import { isTranscoder, SaeError } from './config.js';
import { SAE_HOOKS, type SaeHookName, type SparseAutoencoder } from './sae.js';

export interface SpliceOptions {
  /**
   * Add the reconstruction error back (SAELens's use_error_term): the output equals the original
   * activation, but edits to the SAE's latents still change it. Default false.
   */
  useErrorTerm?: boolean;
}

/** An SAE spliced into a model. */
export interface SplicedSae {
  readonly sae: SparseAutoencoder;
  /** The hook whose activation it replaces (cfg.hookName, or cfg.hookNameOut for a transcoder). */
  readonly hookName: string;
  /** The hook it reads (the same as hookName for an SAE). */
  readonly inputHook: string;
  readonly useErrorTerm: boolean;
}

/** The internal hook points of a spliced SAE, in forward order (hook_sae_error only with the error term). */
export function saeHookNames(s: SplicedSae): string[] {
  return SAE_HOOKS.filter((h) => h !== 'hook_sae_error' || s.useErrorTerm).map((h) => `${s.hookName}.${h}`);
}

/** The model's hook names with each spliced SAE's points inserted right after the hook it replaces. */
export function splicedHookNames(base: readonly string[], saes: readonly SplicedSae[]): string[] {
  if (saes.length === 0) return [...base];
  const byHook = new Map(saes.map((s) => [s.hookName, s]));
  return base.flatMap((n) => {
    const s = byHook.get(n);
    return s ? [n, ...saeHookNames(s)] : [n];
  });
}

/**
 * The activation's shape after [batch, pos] at a model hook (from the config), or null where it is not
 * fixed per position (attention scores and patterns: [head, key]) or the name is not a model hook.
 */
export function hookTrailingShape(cfg: ModelConfig, name: string): number[] | null {
  const { dModel: D, nHeads: H, nKvHeads: KV, dHead: dh, dMlp: F } = cfg;
  if (/(^|\.)hook_(embed|pos_embed|resid_pre|resid_mid|resid_post|attn_out|mlp_out)$/.test(name)) return [D];
  if (/\.hook_normalized$/.test(name)) return [D];
  if (/\.hook_scale$/.test(name)) return [1];
  if (/attn\.hook_(q|rot_q|z)$/.test(name)) return [H, dh];
  if (/attn\.hook_(k|v|rot_k)$/.test(name)) return [KV, dh];
  if (/attn\.hook_result$/.test(name)) return [H, D];
  if (/mlp\.hook_(pre|post|pre_linear)$/.test(name)) return [F];
  return null;
}

/** Rows per position of width d at an activation with this trailing shape, or null when d does not fit. */
function rowsPerPosition(trailing: number[], d: number): number | null {
  const r = trailing.length;
  const last = trailing[r - 1]!;
  if (last === d) return trailing.slice(0, r - 1).reduce((a, b) => a * b, 1);
  if (r >= 2 && last * trailing[r - 2]! === d) return trailing.slice(0, r - 2).reduce((a, b) => a * b, 1);
  return null;
}

/**
 * Checks that `sae` fits the model (its hooks exist, in the right order, with its widths, and no other
 * spliced SAE replaces the same hook) and returns how it is spliced. Throws SaeError naming the hook.
 */
export function checkSplice(
  cfg: ModelConfig,
  modelHooks: readonly string[],
  current: readonly SplicedSae[],
  sae: SparseAutoencoder,
  opts: SpliceOptions = {},
): SplicedSae {
  const c = sae.cfg;
  const transcoder = isTranscoder(c);
  const what = transcoder ? 'transcoder' : 'SAE';
  const hooks = transcoder ? [c.hookName, c.hookNameOut!] : [c.hookName];
  for (const h of hooks) {
    if (!modelHooks.includes(h)) {
      const tail = h.split('.').pop() ?? '';
      const near = modelHooks.filter((k) => tail !== '' && k.endsWith(tail)).slice(0, 3);
      throw new SaeError(
        `${what} hook '${h}' is not a hook point of this model` +
          (near.length ? `; did you mean ${near.map((n) => `'${n}'`).join(', ')}?` : '') +
          ' (see model.hookNames())',
      );
    }
  }
  const shapes = hooks.map((h) => {
    const t = hookTrailingShape(cfg, h);
    if (!t)
      throw new SaeError(
        `${what} hook '${h}': an SAE can be spliced only where the activation has a fixed width per position ` +
          '(not attention scores or patterns)',
      );
    return t;
  });
  const show = (t: number[]) => `[batch, pos, ${t.join(', ')}]`;
  const inRows = rowsPerPosition(shapes[0]!, c.dIn);
  if (inRows === null)
    throw new SaeError(
      `${what} for '${c.hookName}' has d_in=${c.dIn}, but the activation there has shape ${show(shapes[0]!)}`,
    );
  if (transcoder) {
    const outRows = rowsPerPosition(shapes[1]!, c.dOut);
    if (outRows === null)
      throw new SaeError(
        `transcoder writing '${c.hookNameOut}' has d_out=${c.dOut}, but the activation there has shape ${show(shapes[1]!)}`,
      );
    if (outRows !== inRows)
      throw new SaeError(
        `transcoder '${c.hookName}' -> '${c.hookNameOut}': ${inRows} input row(s) of width ${c.dIn} per position ` +
          `but ${outRows} output row(s) of width ${c.dOut}`,
      );
    if (modelHooks.indexOf(c.hookNameOut!) <= modelHooks.indexOf(c.hookName))
      throw new SaeError(
        `transcoder '${c.hookName}' -> '${c.hookNameOut}': the output hook must come after the input hook in the forward pass`,
      );
  }
  const hookName = c.hookNameOut ?? c.hookName;
  const clash = current.find((s) => s.hookName === hookName);
  if (clash)
    throw new SaeError(
      `'${hookName}' already has a spliced ${isTranscoder(clash.sae.cfg) ? 'transcoder' : 'SAE'}: remove it first (model.removeSAE('${hookName}'))`,
    );
  if (current.some((s) => s.sae === sae))
    throw new SaeError(`this ${what} is already spliced into the model`);
  return { sae, hookName, inputHook: c.hookName, useErrorTerm: opts.useErrorTerm ?? false };
}

/**
 * The hook point of one forward pass: the plan's hooks at every point (model hooks and SAE points), with
 * the SAEs spliced. At a hook H with an SAE, H's own hooks run first (they see the model's activation, the
 * SAE's input), then the activation is replaced by the SAE's output. A transcoder's input is the activation
 * at its input hook in the same pass, after that hook's own hooks and any SAE spliced there.
 */
export function makeSplicedHookPoint(plan: HookPlan, saes: readonly SplicedSae[]): HookPoint {
  const base = makeHookPoint(plan);
  if (saes.length === 0) return base;
  const byHook = new Map(saes.map((s) => [s.hookName, s]));
  const read = new Set(saes.filter((s) => s.inputHook !== s.hookName).map((s) => s.inputHook));
  const inputs = new Map<string, Tensor>();
  return (name, x) => {
    let y = base(name, x);
    const s = byHook.get(name);
    if (s) {
      const inner = (short: SaeHookName, t: Tensor) => base(`${s.hookName}.${short}`, t);
      let input = y;
      if (s.inputHook !== s.hookName) {
        const seen = inputs.get(s.inputHook);
        if (!seen)
          throw new HookError(
            `transcoder '${s.inputHook}' -> '${s.hookName}': its input hook was not run earlier in this forward pass`,
          );
        input = seen;
      }
      y = s.sae.spliceActivation(input, y.shape, inner, s.useErrorTerm ? y : undefined);
    }
    if (read.has(name)) inputs.set(name, y);
    return y;
  };
}

const ids = new WeakMap<SparseAutoencoder, number>();
let nextId = 1;

/** A key naming the spliced set (identity of each SAE, its hook and error term) for compile caches. */
export function spliceKey(saes: readonly SplicedSae[]): string {
  return saes
    .map((s) => {
      let id = ids.get(s.sae);
      if (id === undefined) ids.set(s.sae, (id = nextId++));
      return `${id}@${s.hookName}${s.useErrorTerm ? '+err' : ''}`;
    })
    .join(',');
}

/** Every parameter tensor of the spliced SAEs (a compiled graph bakes them in). */
export function spliceTensors(saes: readonly SplicedSae[]): Tensor[] {
  return saes.flatMap((s) => [...s.sae.params.values()]);
}

/**
 * The layer a pass that skips earlier layers (startAtLayer) must start at so that every transcoder
 * writing at or after `layer` still sees its input: `layer`, or the input layer of a transcoder that
 * spans it.
 */
export function spliceStartLayer(saes: readonly SplicedSae[], layer: number): number {
  let start = layer;
  for (let changed = true; changed;) {
    changed = false;
    for (const s of saes) {
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

/** An SAE, or an SAE with its splice options. */
export type SaeSpec = SparseAutoencoder | ({ sae: SparseAutoencoder } & SpliceOptions);

/**
 * Runs `fn` with the SAEs spliced into the model (after those already there), then restores the model's
 * previous set of SAEs, also when `fn` throws (SAELens's `with model.saes(...)`). An async `fn` keeps them
 * until its promise settles.
 */
export function withSAEs<T>(
  model: HookedTransformer,
  saes: SaeSpec | SaeSpec[],
  fn: (m: HookedTransformer) => T,
): T {
  const previous = model.saes;
  const restore = () => {
    model.resetSAEs();
    for (const s of previous) model.addSAE(s.sae, { useErrorTerm: s.useErrorTerm });
  };
  return runScoped(() => {
    for (const s of Array.isArray(saes) ? saes : [saes]) {
      if ('sae' in s) model.addSAE(s.sae, { useErrorTerm: s.useErrorTerm });
      else model.addSAE(s);
    }
    return fn(model);
  }, restore);
}
