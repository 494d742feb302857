// Ablations: replace an activation (a whole hook, one attention head's z, or MLP neurons) by zero, its mean
// over a dataset, or its value on other inputs (resampling), and measure the next-token loss.
import { HookError, ShapeError, UsageError } from '../errors.js';
import { neg } from '../engine/ops/elementwise.js';
import { blend, indexTensor, selectionMask, take, type Selection } from '../engine/ops/intervene.js';
import { logSoftmax } from '../engine/ops/nn.js';
import { mean } from '../engine/ops/reduce.js';
import { gatherElements, slice, squeeze, unsqueeze } from '../engine/ops/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { ForwardHook } from '../hooks/hooks.js';
import type { HookedTransformer, ModelInput } from '../hooks/hooked-transformer.js';

export type AblationKind = 'zero' | 'mean' | 'resample';
export const ABLATION_KINDS: readonly AblationKind[] = ['zero', 'mean', 'resample'];

export interface AblationOptions {
  /** Default 'zero'. */
  kind?: AblationKind;
  /** A hook name (the whole activation), 'head' (blocks.L.attn.hook_z of some heads) or 'neuron' (blocks.L.mlp.hook_post). */
  target: string;
  layer?: number;
  /** Head index (or indices) with target 'head'. */
  head?: number | number[];
  /** Neuron index (or indices) with target 'neuron'. */
  neuron?: number | number[];
  /**
   * Inputs whose activations are averaged for kind 'mean'. The mean is taken over the dataset's rows per
   * position when its rows have the input's length, else over rows and positions. Default: the input itself.
   */
  dataset?: ModelInput;
  /**
   * Inputs (the input's length) whose activations replace the input's for kind 'resample': input row b
   * takes row b mod n of these. Default: the input's own rows shifted by one (row b takes row b+1 mod batch).
   */
  resampleFrom?: ModelInput;
}

export interface AblationResult {
  hook: string;
  kind: AblationKind;
  /** Mean next-token loss (nats) without and with the ablation. */
  loss: number;
  ablatedLoss: number;
  /** Mean loss of the prediction made at position i (of token i+1), over the batch: length pos-1. */
  lossByPosition: number[];
  ablatedLossByPosition: number[];
}

/**
 * The hook an ablation replaces, and which part of it: per axis after the batch, the indices ablated
 * (null: all), e.g. hook_z [batch, pos, head, d_head] of heads 1 and 3 is [null, [1, 3], null].
 */
function resolveTarget(
  model: HookedTransformer,
  opts: AblationOptions,
): { hook: string; select: Selection | null } {
  const { cfg } = model;
  const layer = opts.layer;
  const needLayer = () => {
    if (layer === undefined || !Number.isInteger(layer) || layer < 0 || layer >= cfg.nLayers)
      throw new UsageError(`ablation target '${opts.target}' needs a layer in [0, ${cfg.nLayers})`);
    return layer;
  };
  const list = (x: number | number[] | undefined, n: number, what: string): number[] => {
    const xs = x === undefined ? [] : Array.isArray(x) ? x : [x];
    if (xs.length === 0) throw new UsageError(`ablation target '${opts.target}' needs a ${what} index`);
    for (const i of xs)
      if (!Number.isInteger(i) || i < 0 || i >= n) throw new UsageError(`${what} ${i} is outside [0, ${n})`);
    return [...new Set(xs)];
  };
  if (opts.target === 'head') {
    const l = needLayer();
    // hook_z: [batch, pos, head, d_head].
    return { hook: `blocks.${l}.attn.hook_z`, select: [null, list(opts.head, cfg.nHeads, 'head'), null] };
  }
  if (opts.target === 'neuron') {
    if (cfg.attnOnly) throw new HookError(`model ${model.source} is attention-only: it has no MLP neurons`);
    const l = needLayer();
    // hook_post: [batch, pos, d_mlp].
    return { hook: `blocks.${l}.mlp.hook_post`, select: [null, list(opts.neuron, cfg.dMlp, 'neuron')] };
  }
  const all = model.hookNames();
  if (!all.includes(opts.target))
    throw new HookError(`unknown hook point '${opts.target}' (or use target 'head' or 'neuron')`);
  return { hook: opts.target, select: null };
}

/** Per-prediction next-token loss [batch][pos-1] from logits [batch, pos, vocab] and ids [batch, pos]. */
async function lossGrid(logits: Tensor, tokens: Tensor): Promise<number[][]> {
  const P = tokens.shape[1]!;
  const lp = logSoftmax(slice(logits, 1, 0, P - 1), -1); // [batch, pos-1, vocab]
  const next = unsqueeze(slice(tokens, 1, 1), -1); // [batch, pos-1, 1]
  return (await neg(squeeze(gatherElements(lp, -1, next), -1)).toNested()) as number[][];
}

const colMean = (g: number[][]): number[] => g[0]!.map((_, i) => g.reduce((s, r) => s + r[i]!, 0) / g.length);
const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/**
 * The forward hook of an ablation: part of the activation x [batch, pos, ...] replaced by `replacement`
 * (broadcast to x: a scalar, a per-position mean [1, pos, ...] or resampled rows [batch, pos, ...]).
 * `select` gives, per axis after the batch, the indices replaced (null: all); null replaces everything.
 * Gradients flow to x outside the selection and to the replacement inside it.
 */
export function ablationHook(
  hook: string,
  replacement: Tensor | number,
  select: Selection | null = null,
): ForwardHook {
  return {
    name: hook,
    fn: (x) => {
      const everything = x.shape.map(() => null);
      return blend(x, replacement, selectionMask(x.shape, [select ?? everything.slice(1)]));
    },
  };
}

/** The loss with and without one ablation. */
export async function ablate(
  model: HookedTransformer,
  input: ModelInput,
  opts: AblationOptions,
): Promise<AblationResult> {
  const kind = opts.kind ?? 'zero';
  if (!ABLATION_KINDS.includes(kind))
    throw new UsageError(`unknown ablation kind '${String(kind)}'; use ${ABLATION_KINDS.join(', ')}`);
  const { hook, select } = resolveTarget(model, opts);
  const { tokens } = model.toTokens(input);
  const [B, P] = tokens.shape as [number, number];
  if (P < 2) throw new ShapeError('ablation needs inputs of at least two tokens (the loss is next-token)');

  // The replacement, broadcast to the activation [batch, pos, ...].
  let replacement: Tensor | number;
  if (kind === 'zero') replacement = 0;
  else if (kind === 'mean') {
    const act = model.runWithCache(opts.dataset ?? tokens, { names: [hook] }).cache.get(hook);
    // Per position when the dataset's rows have the input's length, else over rows and positions.
    replacement = mean(act, act.shape[1] === P ? [0] : [0, 1], true);
  } else {
    const from = opts.resampleFrom;
    const act = model.runWithCache(from ?? tokens, { names: [hook] }).cache.get(hook);
    const [n, Pr] = act.shape as [number, number];
    if (Pr !== P) throw new ShapeError(`resampleFrom inputs have ${Pr} tokens; the input has ${P}`);
    if (!from && n < 2)
      throw new UsageError('resampling from the input itself needs a batch of at least 2 rows');
    // Input row b takes row b mod n of resampleFrom, or row b+1 mod batch of the input itself.
    const rows = Array.from({ length: B }, (_, b) => ((from ? b : b + 1) % n) as number);
    replacement = take(act, 0, indexTensor(rows));
  }
  const base = model.run(tokens);
  const ablated = model.runWithHooks(tokens, { fwd: [ablationHook(hook, replacement, select)] });
  const lb = colMean(await lossGrid(base, tokens));
  const la = colMean(await lossGrid(ablated, tokens));
  return { hook, kind, loss: avg(lb), ablatedLoss: avg(la), lossByPosition: lb, ablatedLossByPosition: la };
}

/**
 * Mean loss on the first and the second repeat of repeated-token inputs [BOS?, r_1..r_T, r_1..r_T], from
 * `lossByPosition` (the split of headScores: predictions inside each repeat, not of its first token).
 */
export function repeatLosses(
  lossByPosition: number[],
  T: number,
  bos = 1,
): { first: number; second: number } {
  return {
    first: avg(lossByPosition.slice(bos, bos + T - 1)),
    second: avg(lossByPosition.slice(bos + T, bos + 2 * T - 1)),
  };
}

export interface HeadSweepResult {
  kind: AblationKind;
  /** Mean loss without ablation. */
  loss: number;
  /** ablatedLoss[layer][head]: mean loss with that one head ablated. */
  ablatedLoss: number[][];
  /** Per-position losses: base, and [layer][head][position]. */
  lossByPosition: number[];
  ablatedLossByPosition: number[][][];
}

/** Ablates every attention head in turn. */
export async function ablateHeads(
  model: HookedTransformer,
  input: ModelInput,
  opts: Omit<AblationOptions, 'target' | 'layer' | 'head' | 'neuron'> & {
    onProgress?: (done: number, total: number) => void;
  } = {},
): Promise<HeadSweepResult> {
  const { nLayers: L, nHeads: H } = model.cfg;
  const ablatedLoss: number[][] = [];
  const byPos: number[][][] = [];
  let base: AblationResult | null = null;
  for (let l = 0; l < L; l++) {
    ablatedLoss.push([]);
    byPos.push([]);
    for (let h = 0; h < H; h++) {
      const r = await ablate(model, input, { ...opts, target: 'head', layer: l, head: h });
      base ??= r;
      ablatedLoss[l]!.push(r.ablatedLoss);
      byPos[l]!.push(r.ablatedLossByPosition);
      opts.onProgress?.(l * H + h + 1, L * H);
    }
  }
  return {
    kind: opts.kind ?? 'zero',
    loss: base!.loss,
    ablatedLoss,
    lossByPosition: base!.lossByPosition,
    ablatedLossByPosition: byPos,
  };
}
