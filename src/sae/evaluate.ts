// Evaluating an SAE (or transcoder) as SAELens's evals do: sparsity (L0, per-latent firing density, dead
// and dense latents), reconstruction (MSE, explained variance, cosine similarity) and the cross-entropy loss
// of the model with the SAE spliced in, against the clean model and the hook zero-ablated.
import { noGrad, Tensor } from '../engine/tensor.js';
import { reshape } from '../engine/ops/shape.js';
import { gt, where } from '../engine/ops/elementwise.js';
import { nextTokenLoss, type HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ForwardHook } from '../hooks/hooks.js';
import { isTranscoder, SaeError } from './config.js';
import type { SparseAutoencoder } from './sae.js';
import { withSAEs } from './splice.js';

/** log10(density + DENSITY_EPS) is what the histogram bins (so latents that never fire land at -10). */
export const DENSITY_EPS = 1e-10;

export interface RowMetricOptions {
  /** Latents firing on more than this fraction of rows are dense (default 0.1). */
  denseThreshold?: number;
  /** Latents firing on at most this fraction of rows are dead (default 0: never fired). */
  deadThreshold?: number;
  /** Bins of the log10 density histogram (default 20). */
  bins?: number;
}

export interface EvaluateOptions extends RowMetricOptions {
  /** Tokens per sequence (default: 128, or the model's context when shorter). */
  ctx?: number;
  /** Sequences per forward pass (default 8). */
  batchSize?: number;
  /** Tokens run at most, BOS included (default: all of the data). */
  maxTokens?: number;
  /**
   * Leave BOS positions out (default true): out of the activation statistics, and the SAE does not replace
   * the activation there (nor does the zero ablation), as SAEs are trained without BOS rows.
   */
  excludeBos?: boolean;
  /** Called after each batch with the tokens done and the total. */
  onProgress?: (done: number, total: number) => void;
}

/** Metrics over activation rows (one row per token, or per token and head for a per-head SAE). */
export interface SaeRowMetrics {
  /** Rows in the statistics. */
  rows: number;
  /** Mean number of active (non-zero) latents per row. */
  l0: number;
  /** Mean over rows of the summed squared error Σ_d (target - recons)^2 (SAELens's sum-over-d convention). */
  mse: number;
  /** The mean squared error per element: mse / d_out. */
  msePerElement: number;
  /**
   * 1 - Σ ||target - recons||^2 / Σ ||target - mean(target)||^2 over all rows, the mean taken over the rows
   * (SAELens's explained_variance).
   */
  explainedVariance: number;
  /** Mean over rows of cos(recons, target) (0 where either is the zero vector). */
  cosineSimilarity: number;
  /** Mean over rows of ||recons|| / ||target|| (rows with a zero target left out). */
  l2Ratio: number;
  /** Fraction of rows on which each latent is active. */
  density: number[];
  /** Latents with density <= deadThreshold. */
  deadLatents: number[];
  /** Latents with density > denseThreshold. */
  denseLatents: number[];
  denseThreshold: number;
  deadThreshold: number;
  /** Histogram of log10(density + 1e-10) over the latents: bins + 1 edges, counts sum to d_sae. */
  densityHistogram: { edges: number[]; counts: number[] };
}

export interface SaeEvaluation extends SaeRowMetrics {
  hookName: string;
  /** The hook a transcoder replaces (null for an SAE). */
  hookNameOut: string | null;
  /** Tokens run (BOS included), in `sequences` sequences of at most `ctx` tokens. */
  tokens: number;
  sequences: number;
  ctx: number;
  excludeBos: boolean;
  /**
   * Mean next-token cross-entropy (nats) over every prediction of the sequences: the clean model, with the
   * SAE spliced in (no error term), and with the replaced hook zero-ablated. recovered =
   * (zeroAblated - spliced) / (zeroAblated - clean): 1 = the SAE loses nothing, 0 = as bad as zero-ablation.
   */
  ce: { clean: number; spliced: number; zeroAblated: number; recovered: number; predictions: number };
}

/** Running sums of the row metrics, in float64. */
class RowStats {
  private n = 0;
  private l0 = 0;
  private sse = 0;
  private cos = 0;
  private ratio = 0;
  private ratioRows = 0;
  private sumSq = 0;
  private readonly sum: Float64Array;
  private readonly fired: Float64Array;

  constructor(
    private readonly dOut: number,
    private readonly dSae: number,
  ) {
    this.sum = new Float64Array(dOut);
    this.fired = new Float64Array(dSae);
  }

  /** Row r of target/recons (width dOut) and acts (width dSae), for the rows where keep(r). */
  add(target: Float32Array, recons: Float32Array, acts: Float32Array, keep?: (r: number) => boolean): void {
    const d = this.dOut;
    const k = this.dSae;
    const rows = target.length / d;
    for (let r = 0; r < rows; r++) {
      if (keep && !keep(r)) continue;
      this.n++;
      let active = 0;
      for (let j = r * k; j < (r + 1) * k; j++)
        if (acts[j] !== 0) {
          active++;
          this.fired[j - r * k]!++;
        }
      this.l0 += active;
      let err = 0;
      let tt = 0;
      let rr = 0;
      let tr = 0;
      for (let i = 0; i < d; i++) {
        const t = target[r * d + i]!;
        const y = recons[r * d + i]!;
        err += (t - y) * (t - y);
        tt += t * t;
        rr += y * y;
        tr += t * y;
        this.sum[i]! += t;
      }
      this.sse += err;
      this.sumSq += tt;
      if (tt > 0 && rr > 0) this.cos += tr / Math.sqrt(tt * rr);
      if (tt > 0) {
        this.ratio += Math.sqrt(rr / tt);
        this.ratioRows++;
      }
    }
  }

  finish(opts: RowMetricOptions): SaeRowMetrics {
    const n = this.n;
    if (n === 0) throw new SaeError('no activation rows to evaluate (after leaving out BOS positions)');
    let meanSq = 0;
    for (let i = 0; i < this.dOut; i++) meanSq += (this.sum[i]! / n) ** 2;
    const variance = this.sumSq - n * meanSq;
    const density = Array.from(this.fired, (f) => f / n);
    return {
      rows: n,
      ...densityStats(density, opts),
      l0: this.l0 / n,
      mse: this.sse / n,
      msePerElement: this.sse / n / this.dOut,
      explainedVariance: variance > 0 ? 1 - this.sse / variance : NaN,
      cosineSimilarity: this.cos / n,
      l2Ratio: this.ratioRows ? this.ratio / this.ratioRows : NaN,
    };
  }
}

/** Dead and dense latents and the log10 density histogram. */
export function densityStats(
  density: number[],
  opts: RowMetricOptions = {},
): Pick<
  SaeRowMetrics,
  'density' | 'deadLatents' | 'denseLatents' | 'denseThreshold' | 'deadThreshold' | 'densityHistogram'
> {
  const denseThreshold = opts.denseThreshold ?? 0.1;
  const deadThreshold = opts.deadThreshold ?? 0;
  const bins = opts.bins ?? 20;
  if (!Number.isInteger(bins) || bins < 1) throw new SaeError(`bins must be a positive integer, got ${bins}`);
  const logs = density.map((p) => Math.log10(p + DENSITY_EPS));
  let lo = Math.min(...logs);
  let hi = Math.max(...logs);
  if (!(hi - lo > 1e-9)) {
    lo -= 0.5;
    hi += 0.5;
  }
  const width = (hi - lo) / bins;
  const edges = Array.from({ length: bins + 1 }, (_, i) => (i === bins ? hi : lo + i * width));
  const counts = new Array<number>(bins).fill(0);
  for (const v of logs) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - lo) / width)))]!++;
  return {
    density,
    deadLatents: density.flatMap((p, i) => (p <= deadThreshold ? [i] : [])),
    denseLatents: density.flatMap((p, i) => (p > denseThreshold ? [i] : [])),
    denseThreshold,
    deadThreshold,
    densityHistogram: { edges, counts },
  };
}

/**
 * The row metrics (L0, MSE, explained variance, cosine similarity, density) of an SAE on activation rows
 * [n, dim] without a model (synthetic data, saved activations). A transcoder needs `targets` [n, d_out],
 * the activations it predicts. Rows go through the SAE `batchSize` at a time (default 4096; BatchTopK
 * latents depend on it).
 */
export async function evaluateRows(
  sae: SparseAutoencoder,
  rows: Float32Array,
  dim: number,
  opts: RowMetricOptions & { targets?: Float32Array; batchSize?: number } = {},
): Promise<SaeRowMetrics> {
  const c = sae.cfg;
  if (dim !== c.dIn) throw new SaeError(`the rows have width ${dim}, but the SAE's d_in is ${c.dIn}`);
  if (rows.length % dim !== 0)
    throw new SaeError(`${rows.length} values are not a whole number of rows of width ${dim}`);
  const n = rows.length / dim;
  const targets = opts.targets ?? (isTranscoder(c) ? null : rows);
  if (!targets)
    throw new SaeError('a transcoder is evaluated against its targets: pass opts.targets [n, d_out]');
  if (targets.length !== n * c.dOut)
    throw new SaeError(`targets have ${targets.length} values, expected ${n} rows of width d_out=${c.dOut}`);
  const batch = opts.batchSize ?? 4096;
  const stats = new RowStats(c.dOut, c.dSae);
  for (let s = 0; s < n; s += batch) {
    const m = Math.min(batch, n - s);
    const x = new Tensor(rows.slice(s * dim, (s + m) * dim), [m, dim]);
    const { acts, recons } = noGrad(() => sae.forwardRows(x));
    stats.add(targets.subarray(s * c.dOut, (s + m) * c.dOut), await recons.f32(), await acts.f32());
  }
  return stats.finish(opts);
}

/**
 * Evaluates an SAE (or transcoder) on a model over `data`: texts (documents, tokenized with BOS and packed
 * into sequences of `ctx` tokens, each starting with BOS) or token sequences (run as given, split every
 * `ctx` tokens). Statistics are over the rows at the replaced hook (for a transcoder: input at hookName,
 * target at hookNameOut); BOS positions are left out unless excludeBos is false. The model's other spliced
 * SAEs stay in place (this one, if spliced, is taken out for the clean and ablated runs).
 */
export async function evaluateSae(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  data: string[] | number[][],
  opts: EvaluateOptions = {},
): Promise<SaeEvaluation> {
  const c = sae.cfg;
  const out = c.hookNameOut ?? c.hookName;
  const ctx = opts.ctx ?? Math.min(128, model.cfg.nCtx);
  const batchSize = opts.batchSize ?? 8;
  const excludeBos = opts.excludeBos ?? true;
  if (!Number.isInteger(ctx) || ctx < 2) throw new SaeError(`ctx must be an integer >= 2, got ${ctx}`);
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new SaeError(`batchSize must be a positive integer, got ${batchSize}`);
  const prior = model.saes;
  const own = prior.find((s) => s.source === sae);
  if (own) model.removeSAE(sae);
  try {
    withSAEs(model, sae, () => undefined); // fits the model? (one clear SaeError if not)
    const seqs = sequences(model, data, ctx, opts.maxTokens ?? Infinity);
    if (seqs.length === 0) throw new SaeError('no sequences of at least two tokens to evaluate');
    const total = seqs.reduce((a, s) => a + s.length, 0);
    const bos = excludeBos ? model.cfg.bosTokenId : null;
    const stats = new RowStats(c.dOut, c.dSae);
    const ce = { clean: 0, spliced: 0, zero: 0, predictions: 0 };
    let done = 0;
    // Batches of equal-length sequences.
    const byLength = new Map<number, number[][]>();
    for (const s of seqs) byLength.set(s.length, [...(byLength.get(s.length) ?? []), s]);
    for (const [P, group] of byLength) {
      for (let i = 0; i < group.length; i += batchSize) {
        const rows = group.slice(i, i + batchSize);
        const B = rows.length;
        const ids = rows.flat();
        const tokens = new Tensor(
          BigInt64Array.from(ids, (v) => BigInt(v)),
          [B, P],
        );
        const excluded = (bp: number) => bos !== null && ids[bp] === bos; // bp = b * P + p
        const anyExcluded = bos !== null && ids.includes(bos);
        // [B, P] mask of the excluded positions (from the token ids, not from any tensor's values).
        const excludedMask = gt(
          new Tensor(
            Float32Array.from(ids, (v) => (v === bos ? 1 : 0)),
            [B, P],
          ),
          0,
        );
        // Keeps excluded positions of `replacement` at their value in `orig` (same [B, P, ...] layout).
        const restore = (replacement: Tensor, orig: Tensor): Tensor => {
          if (!anyExcluded) return replacement;
          const m = reshape(excludedMask, [B, P, ...replacement.shape.slice(2).map(() => 1)]);
          return where(m, orig, replacement);
        };
        const loss = (lg: Tensor) => nextTokenLoss(lg, tokens).item();

        // Clean, and zero-ablated at the replaced hook.
        const clean = model.run(tokens);
        const zeroed = model.runWithHooks(tokens, {
          fwd: [{ name: out, fn: (x) => restore(Tensor.zeros(x.shape), x) }],
        });
        // Spliced (no error term), reading the SAE's points on the way.
        let orig: Tensor | null = null;
        let input: Tensor | null = null;
        let acts: Tensor | null = null;
        let recons: Tensor | null = null;
        const hooks: ForwardHook[] = [
          { name: out, fn: (x) => void (orig = x) },
          { name: `${out}.hook_sae_input`, fn: (x) => void (input = x) },
          { name: `${out}.hook_sae_acts_post`, fn: (x) => void (acts = x) },
          { name: `${out}.hook_sae_recons`, fn: (x) => void (recons = x) },
          { name: `${out}.hook_sae_output`, fn: (x) => restore(x, orig!) },
        ];
        const spliced = withSAEs(model, sae, () => model.runWithHooks(tokens, { fwd: hooks }));
        const n = B * (P - 1);
        ce.clean += (await loss(clean)) * n;
        ce.spliced += (await loss(spliced)) * n;
        ce.zero += (await loss(zeroed)) * n;
        ce.predictions += n;

        const a = acts! as Tensor;
        const target = isTranscoder(c) ? (orig! as Tensor) : (input! as Tensor);
        const rowsPerPos = a.size / c.dSae / (B * P);
        stats.add(
          await reshape(target, [a.size / c.dSae, c.dOut]).f32(),
          await (recons! as Tensor).f32(),
          await a.f32(),
          (r) => !excluded(Math.floor(r / rowsPerPos)),
        );
        done += B * P;
        opts.onProgress?.(done, total);
      }
    }
    const rowMetrics = stats.finish(opts);
    const clean = ce.clean / ce.predictions;
    const spliced = ce.spliced / ce.predictions;
    const zeroAblated = ce.zero / ce.predictions;
    return {
      hookName: c.hookName,
      hookNameOut: c.hookNameOut,
      tokens: total,
      sequences: seqs.length,
      ctx,
      excludeBos,
      ...rowMetrics,
      ce: {
        clean,
        spliced,
        zeroAblated,
        recovered: (zeroAblated - spliced) / (zeroAblated - clean),
        predictions: ce.predictions,
      },
    };
  } finally {
    if (own) {
      model.resetSAEs();
      for (const s of prior) model.addSAE(s.source, s.options);
    }
  }
}

/**
 * Texts: tokenized with BOS (as the tokenizer does), packed into one stream and cut into sequences of
 * `ctx` tokens, each starting with BOS (prepended where a cut falls inside a document). Token sequences:
 * each split every `ctx` tokens, run as given. At most maxTokens tokens in all; sequences of fewer than two
 * tokens are dropped.
 */
function sequences(
  model: HookedTransformer,
  data: string[] | number[][],
  ctx: number,
  maxTokens: number,
): number[][] {
  const out: number[][] = [];
  let budget = maxTokens;
  const push = (s: number[]) => {
    const t = s.slice(0, Math.min(s.length, budget));
    if (t.length >= 2) {
      out.push(t);
      budget -= t.length;
    }
    return budget >= 2; // whether to go on
  };
  if (data.length === 0) return out;
  if (typeof data[0] === 'string') {
    const bos = model.cfg.bosTokenId;
    const stream: number[] = [];
    for (const text of data as string[]) {
      if (text.trim() === '') continue;
      for (const id of model.encode(text)) stream.push(id);
      if (stream.length >= maxTokens + ctx) break;
    }
    let i = 0;
    while (i < stream.length) {
      const lead = bos !== null && stream[i] !== bos ? [bos] : [];
      const take = ctx - lead.length;
      if (!push([...lead, ...stream.slice(i, i + take)])) break;
      i += take;
    }
    return out;
  }
  for (const seq of data as number[][]) {
    for (const id of seq)
      if (!Number.isInteger(id) || id < 0 || id >= model.cfg.vocabSize)
        throw new SaeError(`token id ${id} is outside the vocabulary [0, ${model.cfg.vocabSize})`);
    for (let i = 0; i < seq.length; i += ctx) if (!push(seq.slice(i, i + ctx))) return out;
  }
  return out;
}
