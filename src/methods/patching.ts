// Activation patching (Meng et al. 2022; Wang et al. 2022; Heimersheim & Nanda 2024): run the model on one
// prompt and replace one activation with its value on another prompt, for every layer, position and head.
import { resolveMetric } from './metric.js';
import { int64, toIds } from './tokens.js';
export { answerToken } from './metric.js';
import { HookError, ShapeError, UsageError } from '../errors.js';
import { blend, indexTensor, selectionMask, take, type Selection } from '../engine/ops/intervene.js';
import { expand } from '../engine/ops/shape.js';
import { noGrad, type Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { layerOf, type ForwardHook } from '../hooks/hooks.js';
import type { HookPoint } from '../models/hook-point.js';
import { runModel } from '../hooks/run-model.js';
import { spliceStartLayer } from '../hooks/splice.js';

/** What is patched: the residual stream, a block's attention or MLP output, or one head's activations. */
export type PatchTarget = 'resid_pre' | 'attn_out' | 'mlp_out' | 'z' | 'q' | 'k' | 'v' | 'pattern';

export const PATCH_TARGETS: readonly PatchTarget[] = [
  'resid_pre',
  'attn_out',
  'mlp_out',
  'z',
  'q',
  'k',
  'v',
  'pattern',
];

/** Targets whose components are attention heads (k and v: key/value heads under grouped-query attention). */
const HEAD_TARGETS = new Set<PatchTarget>(['z', 'q', 'k', 'v', 'pattern']);

/**
 * - `denoise`: run on the corrupt prompt and patch in the clean activation (which activations suffice
 *   to restore the behaviour).
 * - `noise`: run on the clean prompt and patch in the corrupt activation (which activations are
 *   necessary for it).
 */
export type PatchDirection = 'denoise' | 'noise';

export interface PatchingOptions {
  /** Text (BOS prepended as the tokenizer does by default) or token ids. */
  clean: string | number[];
  /** Same number of tokens as `clean`. */
  corrupt: string | number[];
  /** The metric is logit(answer) - logit(wrong) at the final position: tokens as text or ids. */
  answer?: string | number;
  wrong?: string | number;
  /** Or any metric of the logits [1, pos, vocab] of one run (instead of answer/wrong). */
  metric?: (logits: Tensor) => number;
  /** Default 'resid_pre'. */
  target?: PatchTarget;
  /**
   * Patch this one hook point instead of `target` in every layer: any name in model.hookNames(), such as
   * a spliced SAE's latents ('blocks.2.hook_resid_pre.hook_sae_acts_post'). Its activation must be
   * [batch, pos, ...]. The result has one row on the layer axis: the hook.
   */
  hook?: string;
  /**
   * With `hook`: one component per index of the activation's last axis (SAE latents, MLP neurons), each
   * patched alone; default: the whole activation is one component.
   */
  indices?: number[];
  /**
   * One patch per (layer, position) or (layer, head, position); false patches all positions at once.
   * Default: true for resid_pre/attn_out/mlp_out and `hook`, false for head targets.
   */
  perPosition?: boolean;
  /** Default 'denoise'. */
  direction?: PatchDirection;
  /** Patched runs per batched forward pass (default 64). */
  batchSize?: number;
  /** One full forward pass per patch, through hooks (the slow reference the sweep is checked against). */
  naive?: boolean;
  /** Called after each forward pass with patched runs done and the total. */
  onProgress?: (done: number, total: number) => void;
}

export interface PatchingResult {
  /** 'hook' when one hook point was patched (the `hook` option). */
  target: PatchTarget | 'hook';
  direction: PatchDirection;
  perPosition: boolean;
  /** The hook point patched in layer 0 (the same in every layer), or the one hook patched. */
  hook: string;
  metric: 'logit_diff' | 'custom';
  /** Answer and wrong tokens of the logit-difference metric (null with a custom metric). */
  answer: { id: number; token: string } | null;
  wrong: { id: number; token: string } | null;
  cleanTokens: number[];
  corruptTokens: number[];
  /** Metric of the unpatched clean and corrupt runs. */
  cleanMetric: number;
  corruptMetric: number;
  /** Row labels of the second axis: ['all'] for block targets, 'H0', 'H1', ... for heads, '#i' for indices. */
  components: string[];
  /** Number of entries on the position axis: the prompt length, or 1 (all positions at once). */
  positions: number;
  /**
   * values[layer][component][position] (layer 0 only with `hook`) = (m_patched - m_corrupt) / (m_clean - m_corrupt), in both
   * directions: 0 is the corrupt run's metric and 1 the clean run's. Denoising: 1 = the patch fully
   * restores the clean behaviour, 0 = no effect. Noising: 1 = no effect, 0 = the patch fully destroys it.
   */
  values: number[][][];
  /** The metric of each patched run, before normalisation; same layout as `values`. */
  raw: number[][][];
  /** Patched runs, and forward passes made for them. */
  runs: number;
  forwardPasses: number;
}

/**
 * Components of a generic hook patch: the whole activation, or single indices of its last axis (one
 * latent of an SAE, one neuron). Checks the indices.
 */
export function hookComponents(
  act: Tensor,
  hook: string,
  indices: number[] | undefined,
): { C: number; components: string[] } {
  const last = act.shape[act.rank - 1]!;
  if (indices === undefined) return { C: 1, components: ['all'] };
  if (indices.length === 0) throw new UsageError('indices: give at least one index');
  for (const i of indices)
    if (!Number.isInteger(i) || i < 0 || i >= last)
      throw new UsageError(`index ${i} is outside [0, ${last}) (the last axis of '${hook}')`);
  return { C: indices.length, components: indices.map((i) => `#${i}`) };
}

export function patchHookName(target: PatchTarget, layer: number): string {
  switch (target) {
    case 'resid_pre':
    case 'attn_out':
    case 'mlp_out':
      return `blocks.${layer}.hook_${target}`;
    default:
      return `blocks.${layer}.attn.hook_${target}`;
  }
}

/** One patch of a sweep: a component (head, index, or 0 for the whole activation) at a position (-1: all). */
export interface PatchSite {
  component: number;
  position: number;
}

interface Variant extends PatchSite {
  layer: number;
}

/**
 * What one patch replaces in an activation [batch, ...]: per axis after the batch, the indices patched
 * (null: all of it). Layouts: resid_pre/attn_out/mlp_out [batch, pos, d_model]; z/q/k/v
 * [batch, pos, head, d_head]; pattern [batch, head, query, key] (a position is a query); a `hook`
 * [batch, pos, ...] with `indices` on its last axis.
 */
export function patchSelection(
  target: PatchTarget | 'hook',
  rank: number,
  site: PatchSite,
  indices?: readonly number[],
): Selection {
  const pos = site.position < 0 ? null : [site.position];
  const c = [site.component];
  if (target === 'hook') {
    const rest = Array.from({ length: rank - 2 }, (): readonly number[] | null => null);
    if (indices) rest[rest.length - 1] = [indices[site.component]!];
    return [pos, ...rest];
  }
  if (target === 'pattern') return [c, pos, null];
  if (HEAD_TARGETS.has(target)) return [pos, c, null];
  return [pos, null];
}

/**
 * The forward hook of a batched patch: row b of the activation x [n, ...] takes `source` ([1, ...], the
 * activation of the other run) where selections[b] says, and keeps x elsewhere. Gradients flow to x and
 * to the source.
 */
export function patchHook(name: string, source: Tensor, selections: Selection[]): ForwardHook {
  return { name, fn: (x) => blend(x, source, selectionMask(x.shape, selections)) };
}

/**
 * Activation patching over every layer (and position and/or head). Sweeps are batched: the patched runs of
 * a layer go through one forward pass per `batchSize` runs, which starts at that layer from the cached
 * hook_resid_pre of the base run (earlier layers cannot see the patch, so they are not run again).
 */
export async function activationPatching(
  model: HookedTransformer,
  opts: PatchingOptions,
): Promise<PatchingResult> {
  const { cfg } = model;
  const hookMode = opts.hook !== undefined;
  const target = opts.target ?? 'resid_pre';
  if (hookMode) {
    if (opts.target !== undefined) throw new UsageError('give either a target or a hook, not both');
    if (!model.hookNames({ useAttnResult: true }).includes(opts.hook!))
      throw new HookError(`unknown hook point '${opts.hook}' (see model.hookNames())`);
    if (/attn\.hook_(attn_scores|pattern)$/.test(opts.hook!))
      throw new UsageError(`hook '${opts.hook}' has no position axis after the batch: use target 'pattern'`);
  } else {
    if (opts.indices !== undefined) throw new UsageError('indices go with a hook (the `hook` option)');
    if (!PATCH_TARGETS.includes(target)) {
      throw new HookError(
        `unknown patching target '${String(target)}'; use one of ${PATCH_TARGETS.join(', ')}`,
      );
    }
    if (target === 'mlp_out' && cfg.attnOnly) {
      throw new HookError(`target 'mlp_out': model ${model.source} is attention-only (it has no MLP)`);
    }
  }
  const direction = opts.direction ?? 'denoise';
  if (direction !== 'denoise' && direction !== 'noise') {
    throw new UsageError(`unknown direction '${String(direction)}'; use denoise or noise`);
  }
  const isHead = !hookMode && HEAD_TARGETS.has(target);
  const perPosition = opts.perPosition ?? !isHead;
  const batchSize = opts.batchSize ?? 64;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UsageError(`batchSize must be an integer >= 1, got ${batchSize}`);

  const cleanIds = toIds(model, opts.clean);
  const corruptIds = toIds(model, opts.corrupt);
  const P = cleanIds.length;
  if (corruptIds.length !== P) {
    const show = (ids: number[]) =>
      model
        .tokenStrings(ids)
        .map((s) => JSON.stringify(s))
        .join(' ');
    throw new ShapeError(
      `clean and corrupt prompts must have the same number of tokens: clean has ${P} (${show(cleanIds)}), ` +
        `corrupt has ${corruptIds.length} (${show(corruptIds)})`,
    );
  }

  // The metric of row b of logits [n, pos, vocab].
  const { answer, wrong, metricOf } = resolveMetric(model, opts, P);

  const L = cfg.nLayers;
  // The hook patched per row of the result (one row with `hook`), and the layer of each.
  const hookNames = hookMode ? [opts.hook!] : Array.from({ length: L }, (_, l) => patchHookName(target, l));
  const rowLayer = hookNames.map((n) => layerOf(n));

  // Clean and corrupt in one batch of two, caching every hook_resid_pre and the patched hooks.
  const residNames = Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`);
  const wanted = new Set([...hookNames, ...residNames]);
  const store = new Map<string, Tensor>();
  const both = int64([cleanIds, corruptIds]);
  const useAttnResult = hookMode && opts.hook!.endsWith('attn.hook_result');
  const baseLogits = await noGrad(() =>
    runModel(model, both, {
      hook: model.hookPoint({ cache: (n) => wanted.has(n), store }),
      useAttnResult,
    }),
  ).f32();
  const cleanMetric = metricOf(baseLogits, 0);
  const corruptMetric = metricOf(baseLogits, 1);
  const denom = cleanMetric - corruptMetric;
  if (!(Math.abs(denom) > 1e-9)) {
    throw new UsageError(
      `the metric is the same on the clean and the corrupt prompt (${cleanMetric}): nothing to normalise; ` +
        'choose prompts (or answer tokens) on which the model behaves differently',
    );
  }
  const baseRow = direction === 'denoise' ? 1 : 0; // the run patched
  const srcRow = 1 - baseRow; // where patches come from
  const baseIds = baseRow === 0 ? cleanIds : corruptIds;
  // Row b of a cached activation [2, ...], as [1, ...].
  const row = (name: string, b: number): Tensor => take(store.get(name)!, 0, indexTensor([b]));

  // Components, and what each variant replaces in the activation.
  let C: number;
  let components: string[];
  let select: (v: Variant) => Selection;
  if (hookMode) {
    const act = store.get(opts.hook!);
    if (!act)
      throw new HookError(`hook '${opts.hook}' was not reached by the forward pass (nothing to patch)`);
    if (act.rank < 3 || act.shape[1] !== P)
      throw new UsageError(
        `hook '${opts.hook}' has shape [${act.shape}]: patching a hook needs an activation [batch, pos, ...]`,
      );
    ({ C, components } = hookComponents(act, opts.hook!, opts.indices));
    select = (v) => patchSelection('hook', act.rank, v, opts.indices);
  } else {
    C = !isHead ? 1 : target === 'k' || target === 'v' ? cfg.nKvHeads : cfg.nHeads;
    components = isHead ? Array.from({ length: C }, (_, c) => `H${c}`) : ['all'];
    select = (v) => patchSelection(target, 0, v);
  }
  const Pn = perPosition ? P : 1;

  const variants: Variant[] = [];
  for (let l = 0; l < hookNames.length; l++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < Pn; p++) variants.push({ layer: l, component: c, position: perPosition ? p : -1 });
  const raw = Array.from({ length: hookNames.length }, () =>
    Array.from({ length: C }, () => new Array<number>(Pn).fill(NaN)),
  );
  const total = variants.length;
  let done = 0;
  let passes = 0;
  const record = (v: Variant, m: number) => {
    raw[v.layer]![v.component]![perPosition ? v.position : 0] = m;
  };

  if (opts.naive) {
    const tokens = int64([baseIds]);
    for (const v of variants) {
      const name = hookNames[v.layer]!;
      const fwd = [patchHook(name, row(name, srcRow), [select(v)])];
      const lg = await model.runWithHooks(tokens, { fwd, useAttnResult }).f32();
      record(v, metricOf(lg, 0));
      passes++;
      opts.onProgress?.(++done, total);
    }
  } else {
    for (let l = 0; l < hookNames.length; l++) {
      const layerVariants = variants.filter((v) => v.layer === l);
      const name = hookNames[l]!;
      const src = row(name, srcRow);
      // Layers before the patched hook cannot see the patch: start at its layer from the cached residual
      // stream (earlier, where a spliced transcoder reads an earlier layer; from the embeddings outside blocks).
      const hookLayer = rowLayer[l]!;
      const start = hookLayer === null ? null : spliceStartLayer(model.saes, hookLayer);
      const residBase = start === null ? null : row(residNames[start]!, baseRow);
      const direct = !hookMode && target === 'resid_pre' && start === hookLayer;
      for (let i = 0; i < layerVariants.length; i += batchSize) {
        const chunk = layerVariants.slice(i, i + batchSize);
        const n = chunk.length;
        const selections = chunk.map(select);
        let residual: Tensor | undefined;
        if (residBase) {
          const rows = expand(residBase, [n, P, cfg.dModel]);
          residual = direct ? blend(rows, src, selectionMask(rows.shape, selections)) : rows;
        }
        let hook: HookPoint | undefined;
        if (!direct) hook = model.hookPoint({ fwd: [patchHook(name, src, selections)] });
        else if (model.saes.length) hook = model.hookPoint();
        const tokens = int64(Array.from({ length: n }, () => baseIds));
        const lg = await noGrad(() =>
          runModel(model, tokens, {
            hook,
            useAttnResult,
            ...(start === null ? {} : { startAtLayer: start, residual }),
          }),
        ).f32();
        chunk.forEach((v, b) => record(v, metricOf(lg, b)));
        passes++;
        done += n;
        opts.onProgress?.(done, total);
      }
    }
  }

  return {
    target: hookMode ? 'hook' : target,
    direction,
    perPosition,
    hook: hookNames[0]!,
    metric: opts.metric ? 'custom' : 'logit_diff',
    answer,
    wrong,
    cleanTokens: cleanIds,
    corruptTokens: corruptIds,
    cleanMetric,
    corruptMetric,
    components,
    positions: Pn,
    values: raw.map((r) => r.map((c) => c.map((m) => (m - corruptMetric) / denom))),
    raw,
    runs: total,
    forwardPasses: passes,
  };
}

/** What patchingMatrix reads of a patching-style result (activation or attribution patching). */
export type PatchingGrid = Pick<
  PatchingResult,
  'target' | 'perPosition' | 'hook' | 'components' | 'values' | 'raw' | 'cleanTokens'
>;

export interface PatchingMatrix {
  rows: string[];
  columns: string[];
  /** The normalised values (0 = corrupt, 1 = clean), values[row][column]. */
  values: number[][];
  /** The metric of each patched run before normalisation, in the same layout. */
  raw: number[][];
  /** What the axes are: 'layer' | 'layer.head' | 'hook' | 'index', and 'position' | 'head' | 'index' | 'all positions'. */
  rowAxis: string;
  columnAxis: string;
}

/**
 * The result as a matrix for tables and heatmaps: rows are layers (or layer-head pairs when both heads and
 * positions vary), columns are positions, heads, or one column for all positions. A patched `hook` is one
 * row (or one row per index, with positions as columns).
 */
export function patchingMatrix(r: PatchingGrid): PatchingMatrix {
  const both = (layout: (g: number[][][]) => number[][]) => ({
    values: layout(r.values),
    raw: layout(r.raw),
  });
  if (r.target === 'hook') {
    const indexed = r.components[0] !== 'all';
    if (indexed && r.perPosition)
      return {
        rows: r.components,
        columns: positionLabels(r),
        ...both((g) => g[0]!),
        rowAxis: 'index',
        columnAxis: 'position',
      };
    return {
      rows: [r.hook],
      columns: indexed ? r.components : r.perPosition ? positionLabels(r) : ['all'],
      ...both((g) => [indexed ? g[0]!.map((c) => c[0]!) : g[0]![0]!]),
      rowAxis: 'hook',
      columnAxis: indexed ? 'index' : r.perPosition ? 'position' : 'all positions',
    };
  }
  const heads = r.components.length > 1 || r.components[0] !== 'all';
  const layers = r.values.map((_, l) => `L${l}`);
  if (heads && r.perPosition) {
    return {
      rows: r.values.flatMap((row, l) => row.map((_, c) => `L${l}${r.components[c]}`)),
      columns: positionLabels(r),
      ...both((g) => g.flatMap((row) => row)),
      rowAxis: 'layer.head',
      columnAxis: 'position',
    };
  }
  if (heads) {
    return {
      rows: layers,
      columns: r.components,
      ...both((g) => g.map((row) => row.map((c) => c[0]!))),
      rowAxis: 'layer',
      columnAxis: 'head',
    };
  }
  return {
    rows: layers,
    columns: r.perPosition ? positionLabels(r) : ['all'],
    ...both((g) => g.map((row) => row[0]!)),
    rowAxis: 'layer',
    columnAxis: r.perPosition ? 'position' : 'all positions',
  };
}

/** Position indices as labels; callers with a tokenizer can add the tokens (tokenPositionLabels). */
function positionLabels(r: Pick<PatchingResult, 'cleanTokens'>): string[] {
  return r.cleanTokens.map((_, i) => String(i));
}

/** "14 ' Lily'/' Tim'": the index, and the clean token (and the corrupt one where they differ). */
export function tokenPositionLabels(
  model: HookedTransformer,
  r: Pick<PatchingResult, 'cleanTokens' | 'corruptTokens'>,
): string[] {
  const clean = model.tokenStrings(r.cleanTokens);
  const corrupt = model.tokenStrings(r.corruptTokens);
  return clean.map(
    (c, i) => `${i} ${JSON.stringify(c)}${corrupt[i] !== c ? `/${JSON.stringify(corrupt[i])}` : ''}`,
  );
}

/**
 * What every surface shows of a patching-style result: its matrix with position columns labelled by
 * their tokens (as `sonde patch` and `sonde attribute` print and plot them), and both prompts' tokens.
 */
export function patchingTable(
  model: HookedTransformer,
  r: PatchingGrid & Pick<PatchingResult, 'corruptTokens'>,
): PatchingMatrix & { cleanStrings: string[]; corruptStrings: string[] } {
  const m = patchingMatrix(r);
  return {
    ...m,
    columns: m.columnAxis === 'position' ? tokenPositionLabels(model, r) : m.columns,
    cleanStrings: model.tokenStrings(r.cleanTokens),
    corruptStrings: model.tokenStrings(r.corruptTokens),
  };
}
