// Ground truth for SAEs (after Sharkey et al. 2022, "Taking features out of superposition with sparse
// autoencoders"): known unit feature directions in superposition (more features than dimensions), each
// active rarely, with frequencies decaying geometrically, optionally correlated. An SAE that works
// recovers the directions; mean max cosine similarity (MMCS) measures how well.
import { Rng } from '../engine/random.js';
import { SaeTrainError, type BatchStream, type TrainingData } from './train.js';

export interface SyntheticOptions {
  features?: number; // 512
  dim?: number; // 256
  /** Expected number of active features per row. */
  meanActive?: number; // 5
  /** p_i = c * decay^i. */
  decay?: number; // 0.99
  /**
   * Correlation strength in [0, 1): activations are thresholded Gaussians z_i = a_i·h + sqrt(1-|a_i|²)·ε_i
   * with r shared factors h (a Gaussian copula with a low-rank correlation), so features co-occur.
   */
  correlation?: number; // 0
  factors?: number; // 8
  seed?: number;
}

export class SyntheticFeatures {
  readonly features: number;
  readonly dim: number;
  /** Unit feature directions [features, dim]. */
  readonly directions: Float32Array;
  /** Activation probability of each feature. */
  readonly probabilities: Float64Array;
  private readonly thresholds: Float64Array; // Φ^-1(p_i), for the correlated path
  private readonly loadings: Float64Array | null; // [features, factors]
  private readonly factors: number;
  private readonly seed: number;

  constructor(o: SyntheticOptions = {}) {
    this.features = o.features ?? 512;
    this.dim = o.dim ?? 256;
    const meanActive = o.meanActive ?? 5;
    const decay = o.decay ?? 0.99;
    this.seed = o.seed ?? 0;
    const rng = new Rng(this.seed * 7919 + 1);
    this.directions = new Float32Array(this.features * this.dim);
    for (let i = 0; i < this.features; i++) {
      const row = this.directions.subarray(i * this.dim, (i + 1) * this.dim);
      let ss = 0;
      for (let j = 0; j < this.dim; j++) ss += (row[j] = rng.normal()) ** 2;
      const s = 1 / Math.sqrt(ss);
      for (let j = 0; j < this.dim; j++) row[j]! *= s;
    }
    let total = 0;
    for (let i = 0; i < this.features; i++) total += decay ** i;
    const c = meanActive / total;
    if (c > 1) throw new SaeTrainError(`meanActive ${meanActive} is too large for ${this.features} features`);
    this.probabilities = Float64Array.from({ length: this.features }, (_, i) => c * decay ** i);
    this.thresholds = this.probabilities.map((p) => normalQuantile(p));
    const rho = o.correlation ?? 0;
    if (!(rho >= 0 && rho < 1)) throw new SaeTrainError(`correlation must be in [0, 1), got ${rho}`);
    this.factors = o.factors ?? 8;
    if (rho > 0) {
      // Each feature loads on the shared factors with total variance rho.
      this.loadings = new Float64Array(this.features * this.factors);
      for (let i = 0; i < this.features; i++) {
        let ss = 0;
        for (let f = 0; f < this.factors; f++)
          ss += (this.loadings[i * this.factors + f] = rng.normal()) ** 2;
        const s = Math.sqrt(rho / ss);
        for (let f = 0; f < this.factors; f++) this.loadings[i * this.factors + f]! *= s;
      }
    } else this.loadings = null;
  }

  /**
   * Rows [n, dim] of block `block` (deterministic in seed and block, so any block can be regenerated).
   * Active features get magnitudes Uniform(0, 1); a row is the sum of its active features' directions
   * times their magnitudes. Returns the rows and, if asked, the activations [n, features].
   */
  rows(n: number, block: number, withActivations = false): { x: Float32Array; acts?: Float32Array } {
    const rng = new Rng((this.seed * 1_000_003 + block * 2_654_435_761) >>> 0);
    const x = new Float32Array(n * this.dim);
    const acts = withActivations ? new Float32Array(n * this.features) : undefined;
    const F = this.features;
    const D = this.dim;
    const add = (r: number, i: number, m: number) => {
      if (acts) acts[r * F + i] = m;
      const dir = i * D;
      const out = r * D;
      for (let j = 0; j < D; j++) x[out + j]! += m * this.directions[dir + j]!;
    };
    if (!this.loadings) {
      // Independent features: jump between a feature's active rows with geometric gaps, so the cost
      // is one draw per activation rather than one per (row, feature).
      for (let i = 0; i < F; i++) {
        const logq = Math.log1p(-this.probabilities[i]!);
        for (
          let r = Math.floor(Math.log(1 - rng.next()) / logq);
          r < n;
          r += 1 + Math.floor(Math.log(1 - rng.next()) / logq)
        )
          add(r, i, rng.next());
      }
      return { x, acts };
    }
    const h = new Float64Array(this.factors);
    for (let r = 0; r < n; r++) {
      for (let f = 0; f < this.factors; f++) h[f] = rng.normal();
      for (let i = 0; i < F; i++) {
        let shared = 0;
        let var_ = 0;
        for (let f = 0; f < this.factors; f++) {
          const a = this.loadings[i * this.factors + f]!;
          shared += a * h[f]!;
          var_ += a * a;
        }
        if (shared + Math.sqrt(1 - var_) * rng.normal() < this.thresholds[i]!) add(r, i, rng.next());
      }
    }
    return { x, acts };
  }

  /** Fresh rows for training: batch b of a stream is block b (so a saved {block} resumes exactly). */
  trainingData(): TrainingData {
    const stream = (batchSize: number, _seed: number, state?: unknown): BatchStream => {
      let block = (state as { block?: number } | undefined)?.block ?? 0;
      return {
        next: () => this.rows(batchSize, 1 + block++).x,
        state: () => ({ block }),
      };
    };
    return {
      dIn: this.dim,
      dOut: this.dim,
      input: stream,
      // Statistics come from block 0, which training never uses.
      sample: (n) => ({ input: this.rows(n, 0).x }),
    };
  }
}

/**
 * Mean over true features of the max cosine similarity with any learned decoder row (W_dec [d_sae, dim]).
 * Also returns each feature's best similarity.
 */
export function meanMaxCosine(
  trueDirections: Float32Array,
  decoder: Float32Array,
  dim: number,
): { mmcs: number; perFeature: Float32Array } {
  const F = trueDirections.length / dim;
  const S = decoder.length / dim;
  const norms = new Float64Array(S);
  for (let s = 0; s < S; s++) {
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += decoder[s * dim + j]! ** 2;
    norms[s] = Math.sqrt(ss) || 1;
  }
  const perFeature = new Float32Array(F);
  let total = 0;
  for (let f = 0; f < F; f++) {
    let tn = 0;
    for (let j = 0; j < dim; j++) tn += trueDirections[f * dim + j]! ** 2;
    tn = Math.sqrt(tn) || 1;
    let best = -1;
    for (let s = 0; s < S; s++) {
      let dot = 0;
      for (let j = 0; j < dim; j++) dot += trueDirections[f * dim + j]! * decoder[s * dim + j]!;
      const c = dot / (tn * norms[s]!);
      if (c > best) best = c;
    }
    perFeature[f] = best;
    total += best;
  }
  return { mmcs: total / F, perFeature };
}

/** Φ^-1(p) (Acklam's rational approximation, |error| < 1.2e-9). */
export function normalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new SaeTrainError(`probability must be in (0, 1), got ${p}`);
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const lo = 0.02425;
  if (p < lo) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0]! * q + c[1]!) * q + c[2]!) * q + c[3]!) * q + c[4]!) * q + c[5]!) /
      ((((d[0]! * q + d[1]!) * q + d[2]!) * q + d[3]!) * q + 1)
    );
  }
  if (p > 1 - lo) return -normalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0]! * r + a[1]!) * r + a[2]!) * r + a[3]!) * r + a[4]!) * r + a[5]!) * q) /
    (((((b[0]! * r + b[1]!) * r + b[2]!) * r + b[3]!) * r + b[4]!) * r + 1)
  );
}
