// Causal scrubbing (Chan et al. 2022): a hypothesis claims which senders each receiver reads and which
// feature of the input they carry; scrubbing recomputes every claimed input on another example that agrees
// on that feature, at each position, recursively, and everything unclaimed on an unrelated example. The
// loss it keeps, against the clean model and a named baseline, is the hypothesis's loss recovered.
//
// Choices where the method leaves room:
// - A claimed sender that is not listed is its output in a plain forward on the drawn example: claiming a
//   node without listing it claims everything it reads (nothing below it is scrubbed). The alternative,
//   resampling its inputs at random, would assert that none of them matter, a claim the hypothesis never
//   made. A listed head's q, k or v left out claims nothing: that input is resampled entirely.
// - Draws are per receiver and per position, from the examples of the same length (a receiver at position
//   p reads position p of its example), the current one included: agreeing examples are drawn from the
//   dataset's distribution conditioned on the feature, as the method defines. So `position` and `none`
//   draw alike here.
// - The logits' claimed listed heads are evaluated once per sample and read at every position: each
//   position's loss reads only its own position, so the expected loss is that of fresh draws per position.
//   Below the logits every (row, receiver, position) gets its own row: a head's output mixes positions.
//
// Treeified evaluation as one forward pass: every evaluation of a listed head on some example is a row of
// one batch (the rows of a "tree"), and a replaced receiver's input at (row, position) is assembled from the
// sender outputs of other rows of the same pass: senders are always in earlier layers than their
// receivers, so they are computed before the receiver reads them. Rows of plain forwards on the dataset's
// examples give the exact outputs that unlisted and unclaimed senders take.
import { UsageError } from '../errors.js';
import { add, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { concat, gather, permute, reshape, slice } from '../engine/ops/shape.js';
import { Rng } from '../engine/random.js';
import { Tensor, noGrad } from '../engine/tensor.js';
import { lazily } from '../engine/lazy.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { int64 } from '../methods/tokens.js';
import { edgeRun, type ReceiverGroup } from './edge-run.js';
import { circuitGraph, type CircuitGraph } from './graph.js';
import {
  compileHypothesis,
  type Feature,
  type FeatureFn,
  type Hypothesis,
  type ReceiverClaim,
} from './hypothesis.js';
import { rowMetric, scoredPositions } from './metric.js';
import { pairBatches, type CircuitPair } from './pairs.js';

/** What loss recovered is measured against (its 0). */
export type ScrubBaseline = 'random' | 'listed-inputs';

export const SCRUB_BASELINES: Record<ScrubBaseline, string> = {
  random: 'every input resampled: the logits read all senders on a random example, a fresh one per position',
  'listed-inputs':
    "the output's claims kept, every listed head's q, k and v inputs resampled from random examples",
};

export interface ScrubOptions {
  /** Scrubbed (and baseline) evaluations per example, each with fresh draws (default 4). */
  samples?: number;
  seed?: number;
  baseline?: ScrubBaseline;
  /** An example is far from the mean when its loss recovered differs from the mean by more (default 0.5). */
  far?: number;
  /** Bytes one forward pass may hold, roughly (default 512 MiB); examples are split across passes. */
  budget?: number;
  /** Rows one example's treeified evaluation may take (default 200,000). */
  maxRows?: number;
  /** Names the hypothesis in errors (its file). */
  where?: string;
}

export interface ScrubExample {
  /** Index of the example in the data. */
  index: number;
  /** Losses (next-token cross-entropy, mean over the scored positions); scrubbed and baseline over samples. */
  clean: number;
  scrubbed: number;
  baseline: number;
  /** (scrubbed − baseline) / (clean − baseline) on this example; null where clean = baseline. */
  lossRecovered: number | null;
}

export interface Distribution {
  /** Examples with a defined loss recovered. */
  count: number;
  mean: number;
  std: number;
  quantiles: { q05: number; q25: number; q50: number; q75: number; q95: number };
  min: number;
  max: number;
  /** The fraction of examples whose loss recovered is more than `threshold` from the mean. */
  farFromMean: { threshold: number; fraction: number };
  /** 20 equal bins from min to max. */
  histogram: { edges: number[]; counts: number[] };
}

export interface ScrubResult {
  /** (scrubbed − baseline) / (clean − baseline) of the losses averaged over the examples. */
  lossRecovered: number;
  baseline: ScrubBaseline;
  baselineDescription: string;
  cleanLoss: number;
  scrubbedLoss: number;
  baselineLoss: number;
  examples: ScrubExample[];
  /** Of the per-example loss recovered (Scheurer et al. 2023: a mean near 1 can hide cancelling errors). */
  distribution: Distribution;
  samples: number;
  seed: number;
  /** Forward rows run: the size of the treeified hypothesis over every example and sample. */
  rows: number;
  forwardPasses: number;
}

/** Where a replaced receiver reads its senders at one position: rows of the pass (-1: the row itself). */
export interface Sources {
  claim: ReceiverClaim;
  /** Per position, [row evaluating the listed claimed senders, example for the other claimed ones, example
   * for the unclaimed ones]; -1 = the row itself (a position past what is needed: nothing replaced). */
  src: Int32Array;
}

/** One row of an example's tree: a forward on `example` in which the receivers in `sources` are replaced. */
export interface TreeRow {
  example: number;
  sources: Map<number, Sources>;
}

export interface Forest {
  rows: TreeRow[];
  /** Rows whose logits are scored: the hypothesis's samples, then the baseline's. */
  scrubbed: number[];
  baseline: number[];
}

/** Draws the examples of a length group that agree with one at a position, per feature (cached). */
class Pool {
  /** Per feature function and position: the examples by their key. */
  private readonly groups = new Map<FeatureFn, Map<number, Map<string | number, number[]>>>();
  constructor(
    readonly tokens: number[][],
    readonly rng: Rng,
  ) {}
  get size(): number {
    return this.tokens.length;
  }
  any(): number {
    return this.rng.int(this.tokens.length);
  }
  agreeing(feature: Feature, example: number, p: number): number {
    if (feature.kind === 'all') return example;
    let byPos = this.groups.get(feature.key);
    if (!byPos) this.groups.set(feature.key, (byPos = new Map()));
    let byKey = byPos.get(p);
    if (!byKey) {
      byKey = new Map();
      byPos.set(p, byKey);
      this.tokens.forEach((t, i) => {
        const key = feature.key(t, p);
        byKey!.set(key, [...(byKey!.get(key) ?? []), i]);
      });
    }
    const same = byKey.get(feature.key(this.tokens[example]!, p))!;
    return same[this.rng.int(same.length)]!;
  }
}

/** Samples the treeified hypothesis for one example: every draw, at every position, fixed here. */
class TreeSampler {
  rows: TreeRow[] = [];
  constructor(
    private readonly hyp: Hypothesis,
    private readonly pool: Pool,
    private readonly P: number,
    private readonly maxRows: number,
  ) {}

  private newRow(example: number): [number, TreeRow] {
    if (this.rows.length >= this.maxRows)
      throw new UsageError(
        `the treeified hypothesis needs more than ${this.maxRows} forward rows per example ` +
          `(listed heads nested over ${this.P} positions multiply): list fewer nested heads or use shorter examples`,
      );
    const row: TreeRow = { example, sources: new Map() };
    this.rows.push(row);
    return [this.rows.length - 1, row];
  }

  /**
   * Draws for one receiver of a row up to position upTo. `shared`: one child row serves every position
   * (the logits: each position's loss reads only that position, so sharing changes no expectation).
   */
  private receive(row: TreeRow, example: number, claim: ReceiverClaim, upTo: number, shared: boolean): void {
    const src = new Int32Array(3 * this.P).fill(-1);
    const child = shared && claim.listed.length ? this.evaluate(example, claim.listed, upTo) : -1;
    for (let p = 0; p <= upTo; p++) {
      const y = this.pool.agreeing(claim.feature, example, p);
      const z = this.pool.any();
      src[3 * p] = shared ? child : claim.listed.length ? this.evaluate(y, claim.listed, p) : -1;
      src[3 * p + 1] = y;
      src[3 * p + 2] = z;
    }
    row.sources.set(claim.receiver, { claim, src });
  }

  /** A row computing the listed heads on `example`, their inputs scrubbed; what matters is up to upTo. */
  evaluate(example: number, heads: number[], upTo: number): number {
    const [index, row] = this.newRow(example);
    for (const h of heads)
      for (const claim of this.hyp.heads.get(h)!)
        if (!row.sources.has(claim.receiver)) this.receive(row, example, claim, upTo, false);
    return index;
  }

  /** A row whose logits read the output's claims on `example`. */
  root(example: number, upTo: number): number {
    const [index, row] = this.newRow(example);
    this.receive(row, example, this.hyp.output, upTo, true);
    return index;
  }
}

/** The hypothesis the baseline evaluates. */
export function baselineHypothesis(hyp: Hypothesis, baseline: ScrubBaseline, logits: number): Hypothesis {
  const nothing = (receiver: number): ReceiverClaim => ({
    receiver,
    claimed: [],
    listed: [],
    feature: { kind: 'key', name: 'none', key: () => 0 },
  });
  if (baseline === 'random')
    return { output: { ...nothing(logits), feature: { kind: 'all' } }, heads: new Map() };
  const heads = new Map(
    [...hyp.heads].map(([h, claims]) => [h, claims.map((c) => nothing(c.receiver))] as const),
  );
  return { output: hyp.output, heads };
}

/**
 * Scrubs a hypothesis (JSON as parsed, a HypothesisSpec, or compiled) over a dataset: each pair's clean
 * tokens are an example; the loss is scored at its scored positions. Examples are resampled among those of
 * the same length. Deterministic for a seed.
 */
export async function scrub(
  model: HookedTransformer,
  examples: CircuitPair[],
  hypothesis: unknown,
  opts: ScrubOptions = {},
): Promise<ScrubResult> {
  const graph = circuitGraph(model.cfg);
  const hyp = isCompiled(hypothesis) ? hypothesis : compileHypothesis(graph, hypothesis, opts.where);
  const samples = opts.samples ?? 4;
  const seed = opts.seed ?? 0;
  const baselineName = opts.baseline ?? 'random';
  if (!(baselineName in SCRUB_BASELINES))
    throw new UsageError(
      `unknown baseline '${baselineName}': use ${Object.keys(SCRUB_BASELINES).join(' or ')}`,
    );
  if (!(Number.isInteger(samples) && samples >= 1))
    throw new UsageError(`samples must be a positive integer`);
  const logitsReceiver = graph.receivers.length - 1;
  const base = baselineHypothesis(hyp, baselineName, logitsReceiver);
  const rng = new Rng(seed);

  const clean = new Array<number>(examples.length).fill(0);
  const scrubbed = new Array<number>(examples.length).fill(0);
  const baseline = new Array<number>(examples.length).fill(0);
  let rows = 0;
  let forwardPasses = 0;
  for (const group of pairBatches(examples, Number.MAX_SAFE_INTEGER)) {
    const P = group.pairs[0]!.clean.length;
    if (group.pairs.length < 2)
      throw new UsageError(
        `scrubbing resamples among examples of the same length: example ${group.indices[0]} is the only one of ${P} tokens`,
      );
    const forests = sampleForests(hyp, base, group.pairs, samples, rng, opts.maxRows ?? 200_000);
    for (const chunk of chunks(forests, bytesPerRow(model, graph, P), opts.budget ?? 512 * 2 ** 20)) {
      const losses = await runChunk(model, graph, group.pairs, chunk, forests);
      forwardPasses++;
      rows += losses.rows;
      chunk.forEach((e, k) => {
        const i = group.indices[e]!;
        clean[i] = losses.clean[k]!;
        scrubbed[i] = mean(losses.scrubbed[k]!);
        baseline[i] = mean(losses.baseline[k]!);
      });
    }
  }
  const perExample = examples.map((_, i): ScrubExample => {
    const gap = clean[i]! - baseline[i]!;
    return {
      index: i,
      clean: clean[i]!,
      scrubbed: scrubbed[i]!,
      baseline: baseline[i]!,
      lossRecovered: Math.abs(gap) > 1e-9 ? (scrubbed[i]! - baseline[i]!) / gap : null,
    };
  });
  const cleanLoss = mean(clean);
  const scrubbedLoss = mean(scrubbed);
  const baselineLoss = mean(baseline);
  return {
    lossRecovered: (scrubbedLoss - baselineLoss) / (cleanLoss - baselineLoss),
    baseline: baselineName,
    baselineDescription: SCRUB_BASELINES[baselineName],
    cleanLoss,
    scrubbedLoss,
    baselineLoss,
    examples: perExample,
    distribution: distribution(
      perExample.flatMap((e) => (e.lossRecovered === null ? [] : [e.lossRecovered])),
      opts.far ?? 0.5,
    ),
    samples,
    seed,
    rows,
    forwardPasses,
  };
}

/**
 * The treeified hypothesis (and baseline) of every example of one length group, `samples` roots each: every
 * draw at every position, made in example order from `rng`.
 */
export function sampleForests(
  hyp: Hypothesis,
  base: Hypothesis,
  pairs: CircuitPair[],
  samples: number,
  rng: Rng,
  maxRows: number,
): Forest[] {
  const P = pairs[0]!.clean.length;
  const pool = new Pool(
    pairs.map((p) => p.clean),
    rng,
  );
  return pairs.map((pair, e): Forest => {
    const upTo = Math.max(...scoredPositions('loss', pair));
    const s = new TreeSampler(hyp, pool, P, maxRows);
    const scrubbedRoots = Array.from({ length: samples }, () => s.root(e, upTo));
    const b = new TreeSampler(base, pool, P, maxRows);
    const baselineRoots = Array.from({ length: samples }, () => b.root(e, upTo));
    const offset = s.rows.length;
    return {
      rows: [...s.rows, ...b.rows.map((r) => shiftRow(r, offset))],
      scrubbed: scrubbedRoots,
      baseline: baselineRoots.map((r) => r + offset),
    };
  });
}

function isCompiled(h: unknown): h is Hypothesis {
  return typeof h === 'object' && h !== null && (h as Hypothesis).heads instanceof Map;
}

function shiftRow(r: TreeRow, offset: number): TreeRow {
  const sources = new Map<number, Sources>();
  for (const [k, s] of r.sources) {
    const src = s.src.slice();
    for (let i = 0; i < src.length; i += 3) if (src[i]! >= 0) src[i]! += offset;
    sources.set(k, { claim: s.claim, src });
  }
  return { example: r.example, sources };
}

/** Rough bytes a row of the pass holds at once: a layer's activations, the sender sums, attention, logits. */
function bytesPerRow(model: HookedTransformer, graph: CircuitGraph, P: number): number {
  const { dModel: D, nHeads: H, vocabSize } = model.cfg;
  const S = graph.senders.length;
  return 4 * P * (D * (3 * H + S + 16) + 2 * H * P + 2 * vocabSize);
}

/**
 * Examples grouped so that a pass holds about `budget` bytes: their tree rows, and the plain rows of the
 * examples they read (at most all of the group's). An example's tree is never split.
 */
function chunks(forests: Forest[], perRow: number, budget: number): number[][] {
  const out: number[][] = [];
  let cur: number[] = [];
  let rows = 0;
  const exactRows = (k: number) => Math.min(forests.length, k);
  forests.forEach((f, e) => {
    const treeRows = rows + f.rows.length;
    if (cur.length && (treeRows + exactRows(treeRows)) * perRow > budget) {
      out.push(cur);
      cur = [];
      rows = 0;
    }
    cur.push(e);
    rows += f.rows.length;
  });
  if (cur.length) out.push(cur);
  return out;
}

interface ChunkLosses {
  clean: number[];
  scrubbed: number[][];
  baseline: number[][];
  rows: number;
}

/**
 * One forward over a chunk's rows: first a plain row per example the chunk reads exact senders from, then
 * every tree row. Returns the losses of the chunk's examples (clean) and of their roots.
 */
async function runChunk(
  model: HookedTransformer,
  graph: CircuitGraph,
  pairs: CircuitPair[],
  chunk: number[],
  forests: Forest[],
): Promise<ChunkLosses> {
  const P = pairs[0]!.clean.length;
  // Exact rows: the chunk's examples (for their clean loss) and every example a source names.
  const exactRow = new Map<number, number>();
  const exact = (e: number) => {
    if (!exactRow.has(e)) exactRow.set(e, exactRow.size);
    return exactRow.get(e)!;
  };
  chunk.forEach(exact);
  for (const e of chunk)
    for (const r of forests[e]!.rows)
      for (const { src } of r.sources.values())
        for (let i = 0; i < src.length; i += 3) {
          if (src[i + 1]! >= 0) exact(src[i + 1]!);
          if (src[i + 2]! >= 0) exact(src[i + 2]!);
        }
  const offsets: number[] = [];
  let B = exactRow.size;
  for (const e of chunk) {
    offsets.push(B);
    B += forests[e]!.rows.length;
  }
  const rowTokens: number[][] = new Array<number[]>(B);
  for (const [e, i] of exactRow) rowTokens[i] = pairs[e]!.clean;
  chunk.forEach((e, k) =>
    forests[e]!.rows.forEach((r, j) => (rowTokens[offsets[k]! + j] = pairs[r.example]!.clean)),
  );

  const rowExample: number[] = new Array<number>(B);
  for (const [e, i] of exactRow) rowExample[i] = e;
  chunk.forEach((e, k) => forests[e]!.rows.forEach((r, j) => (rowExample[offsets[k]! + j] = r.example)));
  // Where each row's replaced receivers read their senders, as rows of this pass.
  const rowOf = (k: number, row: number, v: number, cls: number): number =>
    v < 0 ? row : cls === 0 ? offsets[k]! + v : exactRow.get(v)!;
  const replaced = new Map<number, { row: number; k: number; s: Sources }[]>();
  chunk.forEach((e, k) =>
    forests[e]!.rows.forEach((r, j) => {
      for (const [receiver, s] of r.sources)
        replaced.set(receiver, [...(replaced.get(receiver) ?? []), { row: offsets[k]! + j, k, s }]);
    }),
  );

  const receive = (g: ReceiverGroup, x: Tensor, senders: readonly Tensor[]): Tensor => {
    const js = Array.from({ length: g.count }, (_, j) => j).filter((j) => replaced.has(g.first + j));
    if (!js.length) return x;
    // Mask columns, 3 per claim: its listed senders, its other claimed senders, the unclaimed ones. Claim 0
    // is "nothing replaced": every upstream sender in the third column, read at the row itself.
    const claims: ReceiverClaim[] = [];
    const claimIndex = new Map<ReceiverClaim, number>();
    for (const j of js)
      for (const { s } of replaced.get(g.first + j)!)
        if (!claimIndex.has(s.claim)) {
          claims.push(s.claim);
          claimIndex.set(s.claim, claims.length);
        }
    const U = g.upstream;
    const K = 1 + claims.length;
    const masks = new Float32Array(U * 3 * K);
    for (let u = 0; u < U; u++) masks[u * 3 * K + 2] = 1;
    claims.forEach((c, i) => {
      const listed = new Set(c.listed);
      const claimed = new Set(c.claimed);
      for (let u = 0; u < U; u++) {
        const cls = listed.has(u) ? 0 : claimed.has(u) ? 1 : 2;
        masks[u * 3 * K + 3 * (i + 1) + cls] = 1;
      }
    });
    // Source indices into the sums [B*pos*3K, d_model]: [B, pos, js, 3]; by default the row itself, claim 0.
    const n = js.length;
    const idx = new BigInt64Array(B * P * n * 3);
    for (let i = 0; i < B; i++)
      for (let p = 0; p < P; p++)
        for (let a = 0; a < n; a++)
          for (let cls = 0; cls < 3; cls++)
            idx[((i * P + p) * n + a) * 3 + cls] = BigInt((i * P + p) * 3 * K + cls);
    js.forEach((j, a) => {
      for (const { row, k, s } of replaced.get(g.first + j)!) {
        const c = claimIndex.get(s.claim)!;
        for (let p = 0; p < P; p++)
          for (let cls = 0; cls < 3; cls++) {
            const src = rowOf(k, row, s.src[3 * p + cls]!, cls);
            idx[((row * P + p) * n + a) * 3 + cls] = BigInt((src * P + p) * 3 * K + 3 * c + cls);
          }
      }
    });
    return assemble(x, senders, U, js, new Tensor(masks, [U, 3 * K]), new Tensor(idx, [B, P, n, 3]));
  };

  const evalRows = [
    ...chunk.map((e) => exactRow.get(e)!),
    ...chunk.flatMap((e, k) => forests[e]!.scrubbed.map((r) => offsets[k]! + r)),
    ...chunk.flatMap((e, k) => forests[e]!.baseline.map((r) => offsets[k]! + r)),
  ];
  const evalPairs = evalRows.map((i) => pairs[rowExample[i]!]!);
  const tokens = int64(rowTokens);
  const picked = noGrad(() =>
    lazily(() => {
      const { logits } = edgeRun(model, tokens, { graph, corrupt: null, receive });
      const rowsLogits = gather(logits, 0, indices(evalRows));
      const batch = { pairs: evalPairs, indices: evalRows, clean: tokens, corrupt: tokens };
      return rowMetric('loss', batch, null)(rowsLogits);
    }),
  );
  const values = await picked.toArray();
  const n = chunk.length;
  const S = forests[chunk[0]!]!.scrubbed.length;
  const at = (from: number, k: number) => values.slice(from + k * S, from + (k + 1) * S);
  return {
    clean: values.slice(0, n),
    scrubbed: chunk.map((_, k) => at(n, k)),
    baseline: chunk.map((_, k) => at(n + n * S, k)),
    rows: B,
  };
}

/**
 * A receiver group's input with receivers `js` rebuilt: x + (Σ over the three classes of the masked sender
 * sums at each class's source row − the sum of every upstream sender at the row itself). Rows that replace
 * nothing read claim 0 at themselves, so for them the difference is exactly 0.
 */
function assemble(
  x: Tensor,
  senders: readonly Tensor[],
  U: number,
  js: number[],
  masks: Tensor,
  idx: Tensor,
): Tensor {
  const [B, P, c, D] = x.shape as [number, number, number, number];
  const parts: Tensor[] = [];
  let width = 0;
  for (const s of senders) {
    if (width >= U) break;
    parts.push(s);
    width += s.shape[2]!;
  }
  const stack = parts.length === 1 ? parts[0]! : concat(parts, 2); // [B, pos, U, d_model]
  const K3 = masks.shape[1]!;
  const sums = matmul(reshape(permute(stack, [0, 1, 3, 2]), [B * P, D, U]), masks); // [B*pos, d_model, 3K]
  const flat = permute(sums, [0, 2, 1]); // [B*pos, 3K, d_model]
  // The sum of every upstream sender at the row itself: claim 0's third column.
  const self = reshape(slice(flat, 1, 2, 3), [B, P, 1, D]);
  const n = js.length;
  const gathered = gather(reshape(flat, [B * P * K3, D]), 0, idx); // [B, pos, js, 3, d_model]
  const delta = sub(sum(gathered, 3), self); // [B, pos, js, d_model]
  if (n === c) return add(x, delta);
  const cols = Array.from({ length: c }, (_, j) => {
    const a = js.indexOf(j);
    const xj = slice(x, 2, j, j + 1);
    return a < 0 ? xj : add(xj, slice(delta, 2, a, a + 1));
  });
  return concat(cols, 2);
}

function indices(ids: number[]): Tensor {
  return new Tensor(
    BigInt64Array.from(ids, (i) => BigInt(i)),
    [ids.length],
  );
}

function mean(xs: number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}

/** The per-example loss recovered, summarised. */
export function distribution(values: number[], far: number): Distribution {
  const n = values.length;
  const sorted = [...values].sort((a, b) => a - b);
  const m = n ? mean(values) : NaN;
  const std = n ? Math.sqrt(values.reduce((a, v) => a + (v - m) ** 2, 0) / n) : NaN;
  // Linear interpolation between order statistics (numpy's default).
  const q = (f: number) => {
    if (!n) return NaN;
    const x = f * (n - 1);
    const lo = Math.floor(x);
    const hi = Math.min(n - 1, lo + 1);
    return sorted[lo]! + (sorted[hi]! - sorted[lo]!) * (x - lo);
  };
  const min = n ? sorted[0]! : NaN;
  const max = n ? sorted[n - 1]! : NaN;
  const bins = 20;
  const width = max > min ? (max - min) / bins : 1;
  const edges = Array.from({ length: bins + 1 }, (_, i) =>
    max > min ? min + i * width : min - 0.5 + i / bins,
  );
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor((v - edges[0]!) / width)))]!++;
  return {
    count: n,
    mean: m,
    std,
    quantiles: { q05: q(0.05), q25: q(0.25), q50: q(0.5), q75: q(0.75), q95: q(0.95) },
    min,
    max,
    farFromMean: {
      threshold: far,
      fraction: n ? values.filter((v) => Math.abs(v - m) > far).length / n : NaN,
    },
    histogram: { edges, counts: n ? counts : [] },
  };
}
