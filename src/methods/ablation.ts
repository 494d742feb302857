// Ablations: replace an activation (a whole hook, one attention head's z, or MLP neurons) by zero, its mean
// over a dataset, or its value on other inputs (resampling), and measure the next-token loss.
import { HookError, ShapeError, UsageError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
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

/** The hook an ablation replaces, and the index ranges [start, length) inside one row's position slice. */
function resolveTarget(
  model: HookedTransformer,
  opts: AblationOptions,
): { hook: string; slots: ((width: number) => [number, number][]) | null } {
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
    return xs;
  };
  if (opts.target === 'head') {
    const l = needLayer();
    const heads = list(opts.head, cfg.nHeads, 'head');
    const dh = cfg.dHead;
    // hook_z: [pos, head, d_head] per position.
    return { hook: `blocks.${l}.attn.hook_z`, slots: () => heads.map((h) => [h * dh, dh]) };
  }
  if (opts.target === 'neuron') {
    if (cfg.attnOnly) throw new HookError(`model ${model.source} is attention-only: it has no MLP neurons`);
    const l = needLayer();
    const ns = list(opts.neuron, cfg.dMlp, 'neuron');
    return { hook: `blocks.${l}.mlp.hook_post`, slots: () => ns.map((n) => [n, 1]) };
  }
  const all = model.hookNames();
  if (!all.includes(opts.target))
    throw new HookError(`unknown hook point '${opts.target}' (or use target 'head' or 'neuron')`);
  return { hook: opts.target, slots: null };
}

/** Per-prediction next-token loss [batch][pos-1] from logits [batch, pos, vocab]. */
function lossGrid(logits: Tensor, ids: number[], B: number, P: number, V: number): number[][] {
  const lg = logits.f32Sync();
  return Array.from({ length: B }, (_, b) =>
    Array.from({ length: P - 1 }, (_, i) => {
      const row = lg.subarray((b * P + i) * V, (b * P + i + 1) * V);
      let m = -Infinity;
      for (const x of row) m = Math.max(m, x);
      let s = 0;
      for (const x of row) s += Math.exp(x - m);
      return m + Math.log(s) - row[ids[b * P + i + 1]!]!;
    }),
  );
}

const colMean = (g: number[][]): number[] => g[0]!.map((_, i) => g.reduce((s, r) => s + r[i]!, 0) / g.length);
const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;

/** The loss with and without one ablation. */
export function ablate(model: HookedTransformer, input: ModelInput, opts: AblationOptions): AblationResult {
  const kind = opts.kind ?? 'zero';
  if (!ABLATION_KINDS.includes(kind))
    throw new UsageError(`unknown ablation kind '${String(kind)}'; use ${ABLATION_KINDS.join(', ')}`);
  const { hook, slots } = resolveTarget(model, opts);
  const { tokens } = model.toTokens(input);
  const [B, P] = tokens.shape as [number, number];
  if (P < 2) throw new ShapeError('ablation needs inputs of at least two tokens (the loss is next-token)');
  const ids = Array.from(tokens.dataSync() as BigInt64Array, Number);
  const V = model.cfg.vocabSize;

  // The replacement value per batch row: a function (b, i) of the flat index i inside one row.
  let replacement: (b: number, i: number) => number;
  if (kind === 'zero') replacement = () => 0;
  else if (kind === 'mean') {
    const act = model.runWithCache(opts.dataset ?? tokens, { names: [hook] }).cache.get(hook);
    const [n, Pd] = act.shape as [number, number];
    const R = act.size / n;
    const W = R / Pd; // width per position
    const d = act.f32Sync();
    const perPos = Pd === P;
    const m = new Float64Array(perPos ? R : W);
    for (let b = 0; b < n; b++) for (let i = 0; i < R; i++) m[perPos ? i : i % W]! += d[b * R + i]!;
    const count = perPos ? n : n * Pd;
    replacement = (_b, i) => m[perPos ? i : i % W]! / count;
  } else {
    const from = opts.resampleFrom;
    const act = model.runWithCache(from ?? tokens, { names: [hook] }).cache.get(hook);
    const [n, Pr] = act.shape as [number, number];
    if (Pr !== P) throw new ShapeError(`resampleFrom inputs have ${Pr} tokens; the input has ${P}`);
    if (!from && n < 2)
      throw new UsageError('resampling from the input itself needs a batch of at least 2 rows');
    const R = act.size / n;
    const d = act.f32Sync();
    replacement = (b, i) => d[((from ? b : b + 1) % n) * R + i]!;
  }

  const base = model.run(tokens);
  const ablated = model.runWithHooks(tokens, {
    fwd: [
      {
        name: hook,
        fn: (x) => {
          const data = x.f32Sync().slice();
          const R = data.length / B;
          const W = R / P;
          for (let b = 0; b < B; b++) {
            for (let p = 0; p < P; p++) {
              const rs = slots ? slots(W) : [[0, W] as [number, number]];
              for (const [s, len] of rs)
                for (let i = p * W + s; i < p * W + s + len; i++) data[b * R + i] = replacement(b, i);
            }
          }
          return new Tensor(data, x.shape);
        },
      },
    ],
  });
  const lb = colMean(lossGrid(base, ids, B, P, V));
  const la = colMean(lossGrid(ablated, ids, B, P, V));
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
export function ablateHeads(
  model: HookedTransformer,
  input: ModelInput,
  opts: Omit<AblationOptions, 'target' | 'layer' | 'head' | 'neuron'> & {
    onProgress?: (done: number, total: number) => void;
  } = {},
): HeadSweepResult {
  const { nLayers: L, nHeads: H } = model.cfg;
  const ablatedLoss: number[][] = [];
  const byPos: number[][][] = [];
  let base: AblationResult | null = null;
  for (let l = 0; l < L; l++) {
    ablatedLoss.push([]);
    byPos.push([]);
    for (let h = 0; h < H; h++) {
      const r = ablate(model, input, { ...opts, target: 'head', layer: l, head: h });
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
