// Attribution patching (Nanda 2023; Syed et al. 2023) and AtP* (Kramár et al. 2024): the first-order
// estimate of every activation patch of a sweep, grad(metric) · (source - base), from one forward and one
// backward pass on the base run plus one forward pass on the source run.
import { HookError, ShapeError, UsageError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { indexTensor, take, type Selection } from '../engine/ops/intervene.js';
import { sum } from '../engine/ops/reduce.js';
import { expand, slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { layerOf } from '../hooks/hooks.js';
import { attentionPattern, qkHookNames } from '../models/transformer.js';
import {
  activationPatching,
  answerToken,
  hookComponents,
  patchHookName,
  patchSelection,
  type PatchDirection,
  type PatchingOptions,
  type PatchingResult,
  type PatchTarget,
} from './patching.js';

export const ATTRIBUTION_TARGETS: readonly PatchTarget[] = [
  'resid_pre',
  'attn_out',
  'mlp_out',
  'z',
  'q',
  'k',
  'v',
];
const HEAD_TARGETS = new Set<PatchTarget>(['z', 'q', 'k', 'v']);

export interface AttributionOptions extends Pick<
  PatchingOptions,
  'clean' | 'corrupt' | 'answer' | 'wrong' | 'target' | 'perPosition' | 'direction' | 'hook' | 'indices'
> {
  /**
   * A metric of the logits [1, pos, vocab] (instead of answer/wrong). It must return a Tensor built with
   * differentiable ops (it is back-propagated); a number is accepted by activationPatching only.
   */
  metric?: (logits: Tensor) => Tensor;
  /**
   * AtP*'s QK fix for targets q and k (default true): the attention pattern of the patched head is
   * recomputed exactly (softmax of the patched scores) and only the map from the pattern to the metric is
   * linearised: estimate = Σ grad(hook_pattern) · (pattern_patched - pattern_base).
   */
  qkFix?: boolean;
  /** Also compute AtP*'s GradDrop magnitudes (one extra backward pass per layer); see `gradDrop`. */
  gradDrop?: boolean;
}

export interface AttributionResult extends Omit<PatchingResult, 'runs' | 'forwardPasses' | 'metric'> {
  metric: 'logit_diff' | 'custom';
  /**
   * The estimated patching result, normalised as activationPatching's `values` (0 = corrupt metric,
   * 1 = clean metric): (m_base + estimate - m_corrupt) / (m_clean - m_corrupt). With the QK fix on q/k
   * targets this is AtP*'s estimate, else plain attribution patching (equal to `linear`).
   */
  values: number[][][];
  /** m_base + estimate: the estimated metric of each patched run (layout of `values`). */
  raw: number[][][];
  /** Plain attribution patching, grad · (source - base), normalised like `values`. */
  linear: number[][][];
  /** Whether `values` used the QK fix (targets q and k with qkFix on). */
  qkFixed: boolean;
  /**
   * GradDrop (when requested): for a node in layer l, the mean over the other layers d != l of
   * |estimate with the gradient through layer d's residual writes (hook_attn_out, hook_mlp_out) set to
   * zero|, divided by |m_clean - m_corrupt|. Unsigned: compare it with |actual - no-effect value|.
   */
  gradDrop: number[][][] | null;
  forwardPasses: number;
  backwardPasses: number;
}

/** Pearson correlation of two grids (or flat arrays) of the same size; NaN entries are skipped pairwise. */
export function correlation(
  a: number[] | number[][] | number[][][],
  b: number[] | number[][] | number[][][],
): number {
  const x = (a as number[]).flat(2) as number[];
  const y = (b as number[]).flat(2) as number[];
  if (x.length !== y.length) throw new ShapeError(`correlation: ${x.length} values against ${y.length}`);
  const pairs = x
    .map((v, i) => [v, y[i]!] as const)
    .filter(([u, v]) => Number.isFinite(u) && Number.isFinite(v));
  const n = pairs.length;
  if (n < 2) return NaN;
  const mx = pairs.reduce((s, [u]) => s + u, 0) / n;
  const my = pairs.reduce((s, [, v]) => s + v, 0) / n;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  for (const [u, v] of pairs) {
    sxy += (u - mx) * (v - my);
    sxx += (u - mx) ** 2;
    syy += (v - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}

export interface ComparedAttribution {
  result: AttributionResult;
  /** The real activation patching of the same sweep (null without `compare`). */
  actual: PatchingResult | null;
  /** Pearson correlation of the estimate (`result.values`) with `actual.values` (null without `compare`). */
  correlation: number | null;
}

/**
 * Attribution patching and, with `compare`, real activation patching of the same sweep and the
 * correlation of the two: what `sonde attribute --compare` prints. The comparison needs answer/wrong
 * tokens (activationPatching's metric returns a number, attribution's a Tensor).
 */
export async function attributionCompared(
  model: HookedTransformer,
  opts: AttributionOptions & { compare?: boolean } & Pick<PatchingOptions, 'batchSize' | 'onProgress'>,
): Promise<ComparedAttribution> {
  const { compare, batchSize, onProgress, ...attribution } = opts;
  if (compare && opts.metric)
    throw new UsageError(
      'the comparison with activation patching needs answer and wrong tokens, not a metric',
    );
  const result = await attributionPatching(model, attribution);
  if (!compare) return { result, actual: null, correlation: null };
  const { clean, corrupt, answer, wrong, target, perPosition, direction, hook, indices } = attribution;
  const actual = await activationPatching(model, {
    ...{ clean, corrupt, answer, wrong, target, perPosition, direction, hook, indices },
    batchSize,
    onProgress,
  });
  return { result, actual, correlation: correlation(result.values, actual.values) };
}

interface Variant {
  layer: number;
  component: number;
  position: number; // -1: all positions
}

/**
 * Attribution patching over the same sweep as activationPatching (same grid, same normalisation). The
 * base run is the corrupt prompt when denoising and the clean one when noising.
 */
export async function attributionPatching(
  model: HookedTransformer,
  opts: AttributionOptions,
): Promise<AttributionResult> {
  const { cfg } = model;
  const hookMode = opts.hook !== undefined;
  const target = opts.target ?? 'resid_pre';
  if (hookMode) {
    if (opts.target !== undefined) throw new UsageError('give either a target or a hook, not both');
    if (!model.hookNames().includes(opts.hook!))
      throw new HookError(`unknown hook point '${opts.hook}' (see model.hookNames())`);
    if (/attn\.hook_(attn_scores|pattern)$/.test(opts.hook!))
      throw new UsageError(`hook '${opts.hook}' has no position axis after the batch`);
  } else {
    if (opts.indices !== undefined) throw new UsageError('indices go with a hook (the `hook` option)');
    if (!ATTRIBUTION_TARGETS.includes(target))
      throw new HookError(
        `attribution patching target '${String(target)}': use one of ${ATTRIBUTION_TARGETS.join(', ')}`,
      );
    if (target === 'mlp_out' && cfg.attnOnly)
      throw new HookError(`target 'mlp_out': model ${model.source} is attention-only (it has no MLP)`);
  }
  const direction: PatchDirection = opts.direction ?? 'denoise';
  if (direction !== 'denoise' && direction !== 'noise')
    throw new UsageError(`unknown direction '${String(direction)}'; use denoise or noise`);
  const isHead = !hookMode && HEAD_TARGETS.has(target);
  const perPosition = opts.perPosition ?? !isHead;
  const cleanIds = toIds(model, opts.clean);
  const corruptIds = toIds(model, opts.corrupt);
  const P = cleanIds.length;
  if (corruptIds.length !== P)
    throw new ShapeError(
      `clean and corrupt prompts must have the same number of tokens: clean has ${P}, corrupt has ${corruptIds.length}`,
    );

  // The metric as a differentiable loss and as a number.
  let answer: AttributionResult['answer'] = null;
  let wrong: AttributionResult['wrong'] = null;
  let lossFn: (logits: Tensor) => Tensor;
  if (opts.metric) {
    if (opts.answer !== undefined || opts.wrong !== undefined)
      throw new UsageError('give either a metric or answer/wrong tokens, not both');
    const fn = opts.metric;
    lossFn = (lg) => {
      const m = fn(lg) as unknown;
      if (!(m instanceof Tensor) || m.size !== 1)
        throw new UsageError(
          'attribution patching needs a metric that returns a one-element Tensor (differentiable)',
        );
      return m;
    };
  } else {
    if (opts.answer === undefined || opts.wrong === undefined)
      throw new UsageError('give answer and wrong tokens (for the logit difference), or a metric function');
    answer = answerToken(model, opts.answer, 'answer');
    wrong = answerToken(model, opts.wrong, 'wrong');
    if (answer.id === wrong.id)
      throw new UsageError(`answer and wrong are the same token (${JSON.stringify(answer.token)})`);
    // logit(answer) - logit(wrong) at the last position, as engine ops on the logits [1, pos, vocab].
    const ids = indexTensor([answer.id, wrong.id]);
    const sign = Tensor.from([1, -1]);
    lossFn = (lg) => sum(mul(take(take(lg, 1, indexTensor([P - 1])), 2, ids), sign));
  }

  const L = cfg.nLayers;
  const H = cfg.nHeads;
  const KV = cfg.nKvHeads;
  let C = !isHead ? 1 : target === 'k' || target === 'v' ? KV : H;
  const Pn = perPosition ? P : 1;
  const qkFixed = !hookMode && (target === 'q' || target === 'k') && (opts.qkFix ?? true);
  // One result row per layer, or the one hook.
  const hookNames = hookMode ? [opts.hook!] : Array.from({ length: L }, (_, l) => patchHookName(target, l));
  const R = hookNames.length;
  const rowLayer = hookNames.map((n) => layerOf(n));
  const qkNames: string[] = [];
  const patternNames = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  if (qkFixed)
    for (let l = 0; l < L; l++) {
      const { q, k } = qkHookNames(cfg, l);
      qkNames.push(q, k);
    }

  const baseIds = direction === 'denoise' ? corruptIds : cleanIds;
  const srcIds = direction === 'denoise' ? cleanIds : corruptIds;
  const gradNames = qkFixed ? [...hookNames, ...patternNames] : hookNames;
  const base = model.gradients([baseIds], { names: [...gradNames, ...qkNames], loss: (lg) => lossFn(lg) });
  const src = model.runWithCache([srcIds], { names: [...hookNames, ...qkNames] });
  const baseMetric = await base.loss.item();
  const srcMetric = await lossFn(src.logits).item();
  const cleanMetric = direction === 'denoise' ? srcMetric : baseMetric;
  const corruptMetric = direction === 'denoise' ? baseMetric : srcMetric;
  const denom = cleanMetric - corruptMetric;
  if (!(Math.abs(denom) > 1e-9))
    throw new UsageError(
      `the metric is the same on the clean and the corrupt prompt (${cleanMetric}): nothing to normalise`,
    );

  let components = isHead ? Array.from({ length: C }, (_, c) => `H${c}`) : ['all'];
  let select = (v: Variant): Selection => patchSelection(target, 0, v);
  if (hookMode) {
    // As activationPatching with a hook: whole positions, or single indices of the last axis.
    const act = base.cache.get(opts.hook!);
    if (act.rank < 3 || act.shape[1] !== P)
      throw new UsageError(
        `hook '${opts.hook}' has shape [${act.shape}]: patching a hook needs an activation [batch, pos, ...]`,
      );
    ({ C, components } = hookComponents(act, opts.hook!, opts.indices));
    select = (v) => patchSelection('hook', act.rank, v, opts.indices);
  }

  const variants: Variant[] = [];
  for (let l = 0; l < R; l++)
    for (let c = 0; c < C; c++)
      for (let p = 0; p < Pn; p++) variants.push({ layer: l, component: c, position: perPosition ? p : -1 });
  const grid = () =>
    Array.from({ length: R }, () => Array.from({ length: C }, () => new Array<number>(Pn).fill(NaN)));
  const at = (g: number[][][], v: Variant) =>
    [g[v.layer]![v.component]!, perPosition ? v.position : 0] as const;
  // grad · (source - base) of each variant of row l, from the gradient at its hook.
  const linearEstimates = (grad: Tensor, l: number): Promise<number[]> => {
    const name = hookNames[l]!;
    const contrib = mul(grad, sub(src.cache.get(name), base.cache.get(name)));
    return selectionSums(contrib, variants.filter((v) => v.layer === l).map(select));
  };
  const est = grid();
  const lin = grid();
  for (let l = 0; l < R; l++) {
    const vs = variants.filter((v) => v.layer === l);
    const es = await linearEstimates(base.grads.get(hookNames[l]!), l);
    const qs = qkFixed
      ? await qkEstimates(model, l, target as 'q' | 'k', vs, {
          base: { q: base.cache.get(qkNames[2 * l]!), k: base.cache.get(qkNames[2 * l + 1]!) },
          src: { q: src.cache.get(qkNames[2 * l]!), k: src.cache.get(qkNames[2 * l + 1]!) },
          gPattern: base.grads.get(patternNames[l]!),
        })
      : es;
    vs.forEach((v, i) => {
      const [lr, li] = at(lin, v);
      lr[li] = es[i]!;
      const [er, ei] = at(est, v);
      er[ei] = qs[i]!;
    });
  }

  let gradDrop: number[][][] | null = null;
  let backwardPasses = 1;
  let forwardPasses = 2;
  if (opts.gradDrop) {
    const acc = grid().map((r) => r.map((c) => c.map(() => 0)));
    for (let d = 0; d < L; d++) {
      const grads = new Map<string, Tensor>();
      const dropped = new Set([`blocks.${d}.hook_attn_out`, `blocks.${d}.hook_mlp_out`]);
      const logits = model.runWithHooks([baseIds], {
        bwd: [
          ...hookNames.map((name) => ({ name, fn: (g: Tensor) => void grads.set(name, g) })),
          // The gradient through layer d's residual writes, cut.
          { name: (n: string) => dropped.has(n), fn: (g: Tensor) => Tensor.zeros(g.shape, g.dtype) },
        ],
      });
      lossFn(logits).backward();
      forwardPasses++;
      backwardPasses++;
      for (let l = 0; l < R; l++) {
        if ((rowLayer[l] ?? -1) === d) continue;
        const g = grads.get(hookNames[l]!);
        const vs = variants.filter((v) => v.layer === l);
        const es = g ? await linearEstimates(g, l) : vs.map(() => 0);
        vs.forEach((v, i) => {
          const [r, j] = at(acc, v);
          r[j]! += Math.abs(es[i]!);
        });
      }
    }
    // Mean over the layers other than the node's own (all of them for a hook outside the blocks).
    gradDrop = acc.map((r, i) =>
      r.map((c) => c.map((x) => x / Math.max(1, rowLayer[i] === null ? L : L - 1) / Math.abs(denom))),
    );
  }

  const norm = (g: number[][][]) =>
    g.map((r) => r.map((c) => c.map((e) => (baseMetric + e - corruptMetric) / denom)));
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
    values: norm(est),
    raw: est.map((r) => r.map((c) => c.map((e) => baseMetric + e))),
    linear: norm(lin),
    qkFixed,
    gradDrop,
    forwardPasses,
    backwardPasses,
  };
}

/**
 * The sum of x [1, ...] over each selection (see patchSelection): x is first summed, on the engine, over
 * the axes no selection restricts; the small remainder is read and summed per selection.
 */
async function selectionSums(x: Tensor, selections: Selection[]): Promise<number[]> {
  const rest = x.shape.slice(1);
  const free = rest.flatMap((_, i) => (selections.some((s) => s[i] != null) ? [] : [i + 1]));
  const r = free.length ? sum(x, free, true) : x;
  const data = await r.f32();
  const dims = r.shape.slice(1);
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((p, d) => p * d, 1));
  return selections.map((sel) => {
    let total = 0;
    const visit = (i: number, off: number): void => {
      if (i === dims.length) {
        total += data[off]!;
        return;
      }
      const s = sel[i];
      if (s == null) for (let j = 0; j < dims[i]!; j++) visit(i + 1, off + j * strides[i]!);
      else for (const j of s) visit(i + 1, off + j * strides[i]!);
    };
    visit(0, 0);
    return total;
  });
}

/** Patterns [variants, head, q, k] of one chunk hold at most this many elements. */
const QK_CHUNK_ELEMENTS = 1 << 24;

/**
 * AtP*'s QK fix for the query or key patches `vs` of layer l: each patched head's attention pattern,
 * recomputed exactly by the models layer's attentionPattern (the forward's own scale, soft-cap, window,
 * grouped-query heads), minus the base pattern, dotted with the gradient at hook_pattern [1, head, q, k].
 * q and k are the activations at qkHookNames. The variants run as one batch per chunk (a float mask selects
 * each one's patched head and positions), with the unpatched run as row 0 so that unchanged heads cancel
 * exactly; only the estimates are read.
 */
async function qkEstimates(
  model: HookedTransformer,
  l: number,
  target: 'q' | 'k',
  vs: Variant[],
  t: { base: { q: Tensor; k: Tensor }; src: { q: Tensor; k: Tensor }; gPattern: Tensor },
): Promise<number[]> {
  const { cfg, weights } = model;
  const patched = t.base[target]; // [1, pos, head | kv_head, d_head]
  const [, P, C] = patched.shape as [number, number, number];
  const fixed = target === 'q' ? t.base.k : t.base.q;
  const delta = sub(t.src[target], patched);
  const chunk = Math.max(1, Math.floor(QK_CHUNK_ELEMENTS / (cfg.nHeads * P * P)) - 1);
  const out: number[] = [];
  for (let i = 0; i < vs.length; i += chunk) {
    const part = vs.slice(i, i + chunk);
    const n = part.length + 1;
    const m = new Float32Array(n * P * C);
    part.forEach((v, j) => {
      for (let p = 0; p < P; p++)
        if (v.position < 0 || v.position === p) m[((j + 1) * P + p) * C + v.component] = 1;
    });
    const x = add(patched, mul(Tensor.from(m, [n, P, C, 1]), delta));
    const other = expand(fixed, [n, ...fixed.shape.slice(1)]);
    const pattern =
      target === 'q'
        ? attentionPattern(cfg, weights, l, x, other)
        : attentionPattern(cfg, weights, l, other, x);
    const diff = sub(pattern, slice(pattern, 0, 0, 1));
    const e = await sum(mul(diff, t.gPattern), [1, 2, 3]).f32();
    out.push(...Array.from(e.subarray(1), Number));
  }
  return out;
}

function toIds(model: HookedTransformer, x: string | number[]): number[] {
  const ids = typeof x === 'string' ? model.encode(x) : [...x];
  if (ids.length === 0) throw new ShapeError('empty prompt: nothing to patch');
  for (const id of ids)
    if (!Number.isInteger(id) || id < 0 || id >= model.cfg.vocabSize)
      throw new ShapeError(`token id ${id} is outside the vocabulary [0, ${model.cfg.vocabSize})`);
  return ids;
}
