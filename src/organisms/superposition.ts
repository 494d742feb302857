// Toy Models of Superposition (Elhage et al., 2022, https://transformer-circuits.pub/2022/toy_model/):
// the ReLU output model x' = ReLU(W^T W x + b), trained on synthetic sparse features, and the paper's
// measures of how its features are packed into fewer dimensions than there are features.
//
// Training follows the paper's notebook: x_i ~ U[0, 1] with probability 1 - S, else 0; loss
// sum_i I_i (x_i - x'_i)^2 averaged over the batch; Xavier-normal W, zero b; AdamW (lr 1e-3, PyTorch's
// default weight decay 0.01, as the notebook's torch.optim.AdamW(params, lr=lr)); batch 1024; 10,000
// steps. Many instances (sparsities x importance decays x restarts) are trained side by side as one
// batched model [instances, m, n], in one compiled ONNX graph (forward and backward).
//
// Deviations from the notebook, none of which changes what the model learns:
// - the notebook averages the error over features as well ('b i f -> i' mean); we sum over features
//   as the paper's loss is written. Adam is invariant to that constant factor (up to its eps).
// - Xavier-normal std is that of one [m, n] matrix, sqrt(2 / (m + n)); the notebook's xavier_normal_
//   on the whole [instances, n, m] tensor uses sqrt(2 / (m (n + instances))), which depends on how
//   many instances are batched.
import { SondeError } from '../errors.js';
import { add, mul, relu, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { transpose, unsqueeze } from '../engine/ops/shape.js';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import { TracedFunction } from '../engine/trace.js';
import { AdamW } from '../train/optimizers.js';

/** Invalid hyper-parameters of a toy model (printed as one line by the CLI). */
export class ToyModelError extends SondeError {}

/** The notebook's training set-up. */
export const PAPER_DEFAULTS = {
  steps: 10_000,
  batch: 1024,
  lr: 1e-3,
  weightDecay: 0.01,
  importanceDecay: 0.9,
} as const;

export interface SuperpositionOptions {
  /** n: number of features. */
  features: number;
  /** m: hidden dimensions (1 <= m <= n). */
  hidden: number;
  /** Feature sparsities S in [0, 1): each feature is 0 with probability S. One setting per value. */
  sparsities: number[];
  /**
   * Importance decay R: feature i (0-based) has importance R^i (1 = uniform). One or more values;
   * the settings are every (sparsity, decay) pair, sparsity-major. Default 0.9, as in the paper's introduction.
   */
  importanceDecay?: number | number[];
  /** Independently initialised copies of each setting; `best` keeps the lowest loss. Default 1. */
  restarts?: number;
  /** Optimiser steps (default 10,000). */
  steps?: number;
  /** Batch size per instance (default 1024). */
  batch?: number;
  /** AdamW learning rate (default 1e-3). */
  lr?: number;
  /** AdamW decoupled weight decay (default 0.01, PyTorch's default, which the notebook uses). */
  weightDecay?: number;
  /** Seed of the initialisation and of the data (default 0). */
  seed?: number;
  /** Batches (of `batch` samples) of fresh data on which the final losses are measured (default 16). */
  evalBatches?: number;
  /** Called every `progressEvery` steps and after the last one. */
  onProgress?: (step: number, total: number) => void;
  progressEvery?: number;
}

/** The paper's measures of one W [m, n] (columns W_i are the feature directions). */
export interface SuperpositionStats {
  /** ||W_i||: about 1 for a represented feature, 0 for a dropped one. */
  norms: number[];
  /** D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2: 1 own dimension, 1/2 antipodal pair, 2/5 pentagon. */
  dimensionality: number[];
  /** sum_{j != i} (W_i_hat . W_j)^2: how much other features interfere with feature i. */
  superposition: number[];
  /** m / ||W||_F^2: hidden dimensions per (embedded) feature. */
  dimsPerFeature: number;
  /** W^T W [n, n]. */
  gram: number[][];
  /** Groups (size >= 2) of represented features whose directions have |cos| > `cosine`. */
  sharing: number[][];
  /** Features with ||W_i|| < `represented`. */
  dropped: number[];
}

export interface SuperpositionInstance extends SuperpositionStats {
  /** Position among the batched instances. */
  index: number;
  /** Index of its (sparsity, importance decay) setting. */
  setting: number;
  restart: number;
  sparsity: number;
  importanceDecay: number;
  importance: number[];
  /** W [m][n]. */
  W: number[][];
  b: number[];
  /** Loss (mean over samples of sum_i I_i (x_i - x'_i)^2) on fresh data after training. */
  loss: number;
}

export interface SuperpositionResult {
  features: number;
  hidden: number;
  steps: number;
  batch: number;
  lr: number;
  weightDecay: number;
  seed: number;
  restarts: number;
  instances: SuperpositionInstance[];
  /** For each setting, its restart with the lowest loss. */
  best: SuperpositionInstance[];
  timing: { compileSeconds: number; trainSeconds: number; stepsPerSecond: number; samplesPerSecond: number };
}

/** Options of superpositionStats. */
export interface StatsOptions {
  /** |cos| above which two features count as sharing a direction (default 0.5). */
  cosine?: number;
  /** ||W_i|| below which a feature counts as not represented (default 0.5). */
  represented?: number;
}

/** The paper's measures of W [m][n] (m hidden dimensions, n features; column i is W_i). Pure. */
export function superpositionStats(W: number[][], opts: StatsOptions = {}): SuperpositionStats {
  const m = W.length;
  const n = W[0]?.length ?? 0;
  if (m === 0 || n === 0 || W.some((row) => row.length !== n)) {
    throw new ToyModelError(`superpositionStats: W must be a non-empty m x n matrix (rows of equal length)`);
  }
  const cosine = opts.cosine ?? 0.5;
  const represented = opts.represented ?? 0.5;
  const gram = Array.from({ length: n }, (_, i) =>
    Array.from({ length: n }, (_, j) => {
      let s = 0;
      for (let r = 0; r < m; r++) s += W[r]![i]! * W[r]![j]!;
      return s;
    }),
  );
  const norms = gram.map((row, i) => Math.sqrt(row[i]!));
  const frob2 = gram.reduce((s, row, i) => s + row[i]!, 0);
  const dimensionality: number[] = [];
  const superposition: number[] = [];
  for (let i = 0; i < n; i++) {
    const ni = norms[i]!;
    if (!(ni > 1e-12)) {
      dimensionality.push(0);
      superposition.push(0);
      continue;
    }
    // (W_i_hat . W_j)^2 = (W_i . W_j)^2 / ||W_i||^2; the j = i term is ||W_i||^2.
    let others = 0;
    for (let j = 0; j < n; j++) if (j !== i) others += gram[i]![j]! ** 2 / (ni * ni);
    dimensionality.push((ni * ni) / (ni * ni + others));
    superposition.push(others);
  }
  const dropped = norms.flatMap((v, i) => (v < represented ? [i] : []));
  // Connected components of the |cos| > threshold graph over represented features.
  const parent = Array.from({ length: n }, (_, i) => i);
  const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i]!)));
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      if (norms[i]! < represented || norms[j]! < represented) continue;
      if (Math.abs(gram[i]![j]!) / (norms[i]! * norms[j]!) > cosine) parent[find(j)] = find(i);
    }
  }
  const groups = new Map<number, number[]>();
  for (let i = 0; i < n; i++) {
    if (norms[i]! < represented) continue;
    const r = find(i);
    groups.set(r, [...(groups.get(r) ?? []), i]);
  }
  const sharing = [...groups.values()].filter((g) => g.length > 1).sort((a, b) => a[0]! - b[0]!);
  return {
    norms,
    dimensionality,
    superposition,
    dimsPerFeature: frob2 > 0 ? m / frob2 : Infinity,
    gram,
    sharing,
    dropped,
  };
}

/** Cosine between features i and j of a stats' Gram matrix. */
export function featureCosine(
  stats: Pick<SuperpositionStats, 'gram' | 'norms'>,
  i: number,
  j: number,
): number {
  const d = stats.norms[i]! * stats.norms[j]!;
  return d > 0 ? stats.gram[i]![j]! / d : 0;
}

function check(ok: boolean, message: string): void {
  if (!ok) throw new ToyModelError(message);
}

const isInt = (v: number, min: number) => Number.isSafeInteger(v) && v >= min;

/** Throws ToyModelError on invalid hyper-parameters. */
export function validateSuperpositionOptions(o: SuperpositionOptions): void {
  check(isInt(o.features, 1), `the number of features must be an integer >= 1, got ${o.features}`);
  check(isInt(o.hidden, 1), `the number of hidden dimensions must be an integer >= 1, got ${o.hidden}`);
  check(
    o.hidden <= o.features,
    `hidden dimensions (m = ${o.hidden}) must not exceed features (n = ${o.features}): ` +
      `superposition needs fewer dimensions than features`,
  );
  check(Array.isArray(o.sparsities) && o.sparsities.length > 0, 'give at least one sparsity');
  for (const s of o.sparsities) {
    check(
      Number.isFinite(s) && s >= 0 && s < 1,
      `sparsity must be in [0, 1) (the probability that a feature is zero), got ${s}`,
    );
  }
  const decays = [o.importanceDecay ?? PAPER_DEFAULTS.importanceDecay].flat();
  check(decays.length > 0, 'give at least one importance decay');
  for (const r of decays) {
    check(Number.isFinite(r) && r > 0, `importance decay must be a finite number > 0, got ${r}`);
  }
  if (o.steps !== undefined) check(isInt(o.steps, 1), `steps must be an integer >= 1, got ${o.steps}`);
  if (o.batch !== undefined) check(isInt(o.batch, 1), `batch must be an integer >= 1, got ${o.batch}`);
  if (o.restarts !== undefined)
    check(isInt(o.restarts, 1), `restarts must be an integer >= 1, got ${o.restarts}`);
  if (o.evalBatches !== undefined)
    check(isInt(o.evalBatches, 1), `evalBatches must be an integer >= 1, got ${o.evalBatches}`);
  if (o.lr !== undefined)
    check(Number.isFinite(o.lr) && o.lr > 0, `learning rate must be a finite number > 0, got ${o.lr}`);
  if (o.weightDecay !== undefined)
    check(
      Number.isFinite(o.weightDecay) && o.weightDecay >= 0,
      `weight decay must be a finite number >= 0, got ${o.weightDecay}`,
    );
  if (o.seed !== undefined)
    check(isInt(o.seed, 0) && o.seed < 2 ** 32, `seed must be an integer in [0, 2^32), got ${o.seed}`);
}

/**
 * Fills x [instances, batch, n] with fresh features: U[0, 1) with probability p[k], else 0. One uniform
 * u per entry (u < p, then u / p is uniform on [0, 1)), from a mulberry32 stream (as Rng) seeded from
 * `rng` and inlined here (2x faster than two Rng.next() calls per entry; measured 0.8 ms for 16
 * instances x 1024 x 5, against about 2.5 ms for the compiled step itself).
 */
function sampleBatch(x: Float32Array, probs: number[], perInstance: number, rng: Rng): void {
  let state = Math.floor(rng.next() * 4294967296) | 0;
  for (let k = 0; k < probs.length; k++) {
    const p = probs[k]!;
    const base = k * perInstance;
    for (let j = 0; j < perInstance; j++) {
      state = (state + 0x6d2b79f5) | 0;
      let z = Math.imul(state ^ (state >>> 15), state | 1);
      z ^= z + Math.imul(z ^ (z >>> 7), z | 61);
      const u = ((z ^ (z >>> 14)) >>> 0) / 4294967296;
      x[base + j] = u < p ? u / p : 0;
    }
  }
}

/**
 * Trains the toy ReLU output model for every (sparsity, importance decay) setting, `restarts` times
 * each, batched as one model, and returns each instance's W, b, loss and superposition measures.
 */
export async function trainSuperposition(opts: SuperpositionOptions): Promise<SuperpositionResult> {
  validateSuperpositionOptions(opts);
  const n = opts.features;
  const m = opts.hidden;
  const steps = opts.steps ?? PAPER_DEFAULTS.steps;
  const B = opts.batch ?? PAPER_DEFAULTS.batch;
  const lr = opts.lr ?? PAPER_DEFAULTS.lr;
  const weightDecay = opts.weightDecay ?? PAPER_DEFAULTS.weightDecay;
  const seed = opts.seed ?? 0;
  const restarts = opts.restarts ?? 1;
  const evalBatches = opts.evalBatches ?? 16;
  const decays = [opts.importanceDecay ?? PAPER_DEFAULTS.importanceDecay].flat();

  const settings = opts.sparsities.flatMap((sparsity) =>
    decays.map((importanceDecay) => ({ sparsity, importanceDecay })),
  );
  const I = settings.length * restarts;
  const inst = Array.from({ length: I }, (_, k) => ({
    ...settings[Math.floor(k / restarts)]!,
    setting: Math.floor(k / restarts),
    restart: k % restarts,
  }));

  // Parameters: W [I, m, n] Xavier-normal per instance, b [I, n] zero.
  const initRng = new Rng(seed);
  const std = Math.sqrt(2 / (m + n));
  const W = new Tensor(
    Float32Array.from({ length: I * m * n }, () => initRng.normal() * std),
    [I, m, n],
  );
  const b = Tensor.zeros([I, n]);
  const importance = inst.map((s) => Array.from({ length: n }, (_, i) => s.importanceDecay ** i));
  const imp = Tensor.from(Float32Array.from(importance.flat()), [I, 1, n]);
  const probs = inst.map((s) => 1 - s.sparsity);
  // Each batch is a fresh host array (an input tensor is never rewritten: a backend may still hold it).
  const batch = (fill: (xd: Float32Array) => void): Tensor => {
    const xd = new Float32Array(I * B * n);
    fill(xd);
    return new Tensor(xd, [I, B, n]);
  };
  const dataRng = new Rng((seed ^ 0x5bd1e995) >>> 0);

  // One compiled graph: per-instance losses and the gradients of their sum.
  const t0 = performance.now();
  const lossAndGrads = (inputs: Tensor[]): Tensor[] => {
    const [w, bias, xs, im] = inputs as [Tensor, Tensor, Tensor, Tensor];
    const h = matmul(xs, transpose(w)); // [I, B, m]
    const out = relu(add(matmul(h, w), unsqueeze(bias, 1))); // [I, B, n]
    const d = sub(xs, out);
    const losses = mul(sum(mul(mul(d, d), im), [1, 2]), 1 / B); // [I]
    sum(losses).backward();
    return [losses, w.grad!, bias.grad!];
  };
  let x = batch((xd) => sampleBatch(xd, probs, B * n, dataRng));
  const wEx = W.detach().requireGrad();
  const bEx = b.detach().requireGrad();
  const { fn } = TracedFunction.trace(lossAndGrads, [wEx, bEx, x, imp], { inlineLimit: 0 });

  const opt = new AdamW([W, b], { lr, weightDecay });
  // Training: loss, gradients and the AdamW update in one graph per step.
  const trainStep = opt.compileStep(
    ([xs, im], [w, bias]) => {
      const [, gW, gb] = lossAndGrads([w!, bias!, xs!, im!]);
      return { outputs: [], grads: [gW!, gb!] };
    },
    [x, imp],
  );
  const compileSeconds = (performance.now() - t0) / 1000;
  const every = Math.max(1, opts.progressEvery ?? 100);
  const t1 = performance.now();
  try {
    for (let step = 0; step < steps; step++) {
      if (step > 0) x = batch((xd) => sampleBatch(xd, probs, B * n, dataRng));
      trainStep.run([x, imp]);
      if (opts.onProgress && ((step + 1) % every === 0 || step + 1 === steps))
        opts.onProgress(step + 1, steps);
    }
    const trainSeconds = (performance.now() - t1) / 1000;

    // Final losses on fresh data from a separate stream (so they do not depend on the number of
    // steps), the same samples for every restart of a setting, so that `best` compares like with like.
    const evalRng = new Rng((seed ^ 0x27d4eb2f) >>> 0);
    const loss = new Float64Array(I);
    const per = B * n;
    for (let e = 0; e < evalBatches; e++) {
      const xe = batch((xd) => {
        for (let si = 0; si < settings.length; si++) {
          const first = si * restarts;
          sampleBatch(xd.subarray(first * per, (first + 1) * per), [probs[first]!], per, evalRng);
          for (let r = 1; r < restarts; r++) xd.copyWithin((first + r) * per, first * per, (first + 1) * per);
        }
      });
      const l = await fn.run([...opt.params, xe, imp])[0]!.f32();
      for (let k = 0; k < I; k++) loss[k] += l[k]! / evalBatches;
    }

    const [wd, bd] = [await opt.params[0]!.f32(), await opt.params[1]!.f32()];
    const instances: SuperpositionInstance[] = inst.map((s, k) => {
      const Wk = Array.from({ length: m }, (_, r) =>
        Array.from(wd.subarray((k * m + r) * n, (k * m + r + 1) * n)),
      );
      const bk = Array.from(bd.subarray(k * n, (k + 1) * n));
      return {
        index: k,
        ...s,
        importance: importance[k]!,
        W: Wk,
        b: bk,
        loss: loss[k]!,
        ...superpositionStats(Wk),
      };
    });
    const best = settings.map((_, si) =>
      instances.filter((r) => r.setting === si).reduce((a, c) => (c.loss < a.loss ? c : a)),
    );
    return {
      features: n,
      hidden: m,
      steps,
      batch: B,
      lr,
      weightDecay,
      seed,
      restarts,
      instances,
      best,
      timing: {
        compileSeconds,
        trainSeconds,
        stepsPerSecond: steps / trainSeconds,
        samplesPerSecond: (steps * B * I) / trainSeconds,
      },
    };
  } finally {
    fn.dispose();
    trainStep.dispose();
    opt.dispose();
  }
}

export interface SweepOptions extends Omit<SuperpositionOptions, 'sparsities' | 'importanceDecay'> {
  /**
   * Sparsities to train; default: `points` values with 1/(1-S) log-spaced from 1 to 1/(1-maxSparsity),
   * which with the defaults are the notebook's feature probabilities 20^-linspace(0, 1, 10).
   */
  sparsities?: number[];
  /** Number of sparsities (default 10). */
  points?: number;
  /** Largest sparsity (default 0.95). */
  maxSparsity?: number;
  /** One importance decay for the whole sweep (default 0.9, as the notebook's introduction). */
  importanceDecay?: number;
}

export interface SweepPoint {
  sparsity: number;
  /** 1 / (1 - S): the x axis of the paper's dimensionality plot. */
  inverseDensity: number;
  loss: number;
  dimsPerFeature: number;
  dimensionality: number[];
  norms: number[];
  sharing: number[][];
}

export interface SweepResult {
  points: SweepPoint[];
  run: SuperpositionResult;
}

/** Sparsities with 1/(1-S) log-spaced from 1 (dense) to 1/(1-maxSparsity). */
export function sweepSparsities(points: number, maxSparsity: number): number[] {
  check(isInt(points, 2), `a sweep needs at least 2 points, got ${points}`);
  check(
    Number.isFinite(maxSparsity) && maxSparsity > 0 && maxSparsity < 1,
    `the largest sparsity of a sweep must be in (0, 1), got ${maxSparsity}`,
  );
  const top = Math.log(1 / (1 - maxSparsity));
  return Array.from({ length: points }, (_, k) => 1 - Math.exp((-top * k) / (points - 1)));
}

/**
 * The paper's sparsity sweep: one batched run over many sparsities (best of `restarts` each), with
 * dimensions per feature and each feature's dimensionality against 1/(1-S) (the "sticky" plot).
 */
export async function sweepSparsity(opts: SweepOptions): Promise<SweepResult> {
  const sparsities = opts.sparsities ?? sweepSparsities(opts.points ?? 10, opts.maxSparsity ?? 0.95);
  const run = await trainSuperposition({
    ...opts,
    sparsities,
    importanceDecay: opts.importanceDecay ?? PAPER_DEFAULTS.importanceDecay,
  });
  const points = run.best.map((r) => ({
    sparsity: r.sparsity,
    inverseDensity: 1 / (1 - r.sparsity),
    loss: r.loss,
    dimsPerFeature: r.dimsPerFeature,
    dimensionality: r.dimensionality,
    norms: r.norms,
    sharing: r.sharing,
  }));
  return { points, run };
}
