// Splicing SAEs and transcoders into a model's forward pass, as SAELens's HookedSAETransformer. An SAE at
// hook H replaces H's activation by its output; its internal points become hook points of the model named
// `H.hook_sae_input`, `H.hook_sae_acts_pre`, ..., reached through the same hook machinery as the model's
// own (so caching, forward and backward hooks, gradients and the methods work on them). A transcoder reads
// cfg.hookName and replaces cfg.hookNameOut; its points live under the hook it replaces.
import { runScoped } from '../hooks/scoped.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { Splice } from '../hooks/splice.js';
import type { ModelConfig } from '../models/config.js';
import { hookSpec, trailingShape } from '../models/hook-table.js';
import { isTranscoder, SAE_HOOKS, SaeError, type SaeHookName } from './config.js';
import type { SparseAutoencoder } from './sae.js';

export interface SpliceOptions {
  /**
   * Add the reconstruction error back (SAELens's use_error_term): the output equals the original
   * activation, but edits to the SAE's latents still change it. Default false.
   */
  useErrorTerm?: boolean;
}

/** An SAE spliced into a model: the generic splice of src/hooks, with the SAE and its options. */
export interface SplicedSae extends Splice {
  readonly sae: SparseAutoencoder;
  readonly options: { useErrorTerm: boolean };
  readonly useErrorTerm: boolean;
}

/** The internal hook points of a spliced SAE, in forward order (hook_sae_error only with the error term). */
export function saeHookNames(s: { hookName: string; useErrorTerm: boolean }): string[] {
  return saePoints(s.useErrorTerm).map((h) => `${s.hookName}.${h}`);
}

function saePoints(useErrorTerm: boolean): SaeHookName[] {
  return SAE_HOOKS.filter((h) => h !== 'hook_sae_error' || useErrorTerm);
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
  current: readonly Splice[],
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
    const spec = hookSpec(cfg, h);
    const t = spec ? trailingShape(cfg, spec) : null;
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
  if (clash) {
    const other = 'sae' in clash && isTranscoder((clash as SplicedSae).sae.cfg) ? 'transcoder' : 'SAE';
    throw new SaeError(
      `'${hookName}' already has a spliced ${other}: remove it first (model.removeSAE('${hookName}'))`,
    );
  }
  if (current.some((s) => s.source === sae))
    throw new SaeError(`this ${what} is already spliced into the model`);
  const useErrorTerm = opts.useErrorTerm ?? false;
  return {
    sae,
    source: sae,
    options: { useErrorTerm },
    useErrorTerm,
    hookName,
    inputHook: c.hookName,
    points: saePoints(useErrorTerm),
    // Read at each use: replacing a parameter tensor must retrace a compiled graph.
    get params() {
      return [...sae.params.values()];
    },
    apply: (input, original, hook) =>
      sae.spliceActivation(input, original.shape, hook, useErrorTerm ? original : undefined),
  };
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
    for (const s of previous) model.addSAE(s.source, s.options);
  };
  return runScoped(() => {
    for (const s of Array.isArray(saes) ? saes : [saes]) {
      if ('sae' in s) model.addSAE(s.sae, { useErrorTerm: s.useErrorTerm });
      else model.addSAE(s);
    }
    return fn(model);
  }, restore);
}
