// Representation similarity across models, seeds and layers: linear CKA (Kornblith et al., 2019), SVCCA
// (Raghu et al., 2017), and matching of dictionary features by maximum cosine similarity.
import { ShapeError } from '../errors.js';
import { concat, reshape, slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';

/** A matrix of n samples (rows) by d features: a float tensor [n, d] (or [.., d], flattened) or rows. */
export type Matrix = Tensor | number[][];

interface Dense {
  n: number;
  d: number;
  data: Float64Array;
}

async function dense(x: Matrix, what: string): Promise<Dense> {
  if (x instanceof Tensor) {
    if (x.rank < 2) throw new ShapeError(`${what} must have rank >= 2, got [${x.shape}]`);
    const d = x.shape[x.rank - 1]!;
    return { n: x.size / d, d, data: Float64Array.from(await x.f32()) };
  }
  const n = x.length;
  const d = x[0]?.length ?? 0;
  const data = new Float64Array(n * d);
  x.forEach((row, i) => {
    if (row.length !== d) throw new ShapeError(`${what}: row ${i} has ${row.length} values, row 0 has ${d}`);
    for (let j = 0; j < d; j++) data[i * d + j] = row[j]!;
  });
  return { n, d, data };
}

function centered(m: Dense): Dense {
  const { n, d } = m;
  const data = Float64Array.from(m.data);
  for (let j = 0; j < d; j++) {
    let s = 0;
    for (let i = 0; i < n; i++) s += data[i * d + j]!;
    s /= n;
    for (let i = 0; i < n; i++) data[i * d + j]! -= s;
  }
  return { n, d, data };
}

/** Xᵀ Y [dx, dy] (row-major). */
function crossProduct(x: Dense, y: Dense): Float64Array {
  const out = new Float64Array(x.d * y.d);
  for (let i = 0; i < x.n; i++) {
    const xo = i * x.d;
    const yo = i * y.d;
    for (let a = 0; a < x.d; a++) {
      const v = x.data[xo + a]!;
      if (v === 0) continue;
      const oo = a * y.d;
      for (let b = 0; b < y.d; b++) out[oo + b]! += v * y.data[yo + b]!;
    }
  }
  return out;
}

function frob2(m: Float64Array): number {
  let s = 0;
  for (const v of m) s += v * v;
  return s;
}

async function pair(X: Matrix, Y: Matrix): Promise<[Dense, Dense]> {
  const [x, y] = await Promise.all([dense(X, 'X'), dense(Y, 'Y')]);
  if (x.n !== y.n) throw new ShapeError(`X has ${x.n} samples, Y has ${y.n}: they must match`);
  if (x.n < 2) throw new ShapeError(`need at least 2 samples, got ${x.n}`);
  return [x, y];
}

/**
 * Linear CKA: HSIC(K, L) / sqrt(HSIC(K, K) HSIC(L, L)) with linear kernels on centered features,
 * = ||YᵀX||²_F / (||XᵀX||_F ||YᵀY||_F). 1 for X vs X, invariant to orthogonal transforms and isotropic
 * scaling of either side. 0 when either side is constant.
 */
export async function linearCKA(X: Matrix, Y: Matrix): Promise<number> {
  return ckaDense(...(await pair(X, Y)));
}

function ckaDense(x0: Dense, y0: Dense): number {
  const x = centered(x0);
  const y = centered(y0);
  const xy = frob2(crossProduct(x, y));
  const den = Math.sqrt(frob2(crossProduct(x, x)) * frob2(crossProduct(y, y)));
  return den > 0 ? xy / den : 0;
}

/**
 * Eigen-decomposition of a symmetric matrix [d, d] by cyclic Jacobi rotations. Returns eigenvalues in
 * descending order and the matching eigenvectors as the columns of `vectors` ([d, d], row-major).
 */
export function symmetricEigen(a: Float64Array, d: number): { values: number[]; vectors: Float64Array } {
  if (a.length !== d * d) throw new ShapeError(`expected ${d * d} values for a ${d}x${d} matrix`);
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    let diag = 0;
    for (let p = 0; p < d; p++) {
      diag += m[p * d + p]! ** 2;
      for (let q = p + 1; q < d; q++) off += m[p * d + q]! ** 2;
    }
    if (off <= 1e-30 * Math.max(diag, 1e-300)) break;
    for (let p = 0; p < d - 1; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q]!;
        if (apq === 0) continue;
        const app = m[p * d + p]!;
        const aqq = m[q * d + q]!;
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p]!;
          const mkq = m[k * d + q]!;
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k]!;
          const mqk = m[q * d + k]!;
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p]!;
          const vkq = v[k * d + q]!;
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const order = Array.from({ length: d }, (_, i) => i).sort((i, j) => m[j * d + j]! - m[i * d + i]!);
  const vectors = new Float64Array(d * d);
  order.forEach((src, dst) => {
    for (let k = 0; k < d; k++) vectors[k * d + dst] = v[k * d + src]!;
  });
  return { values: order.map((i) => m[i * d + i]!), vectors };
}

/**
 * Centered X reduced to the top principal directions that explain `keepVariance` of its variance, and
 * whitened (unit variance per direction): [n, k].
 */
function reduceWhiten(x: Dense, keepVariance: number): Dense {
  const c = centered(x);
  const { values, vectors } = symmetricEigen(crossProduct(c, c), c.d);
  const total = values.reduce((s, v) => s + Math.max(v, 0), 0);
  const max = Math.max(values[0] ?? 0, 0);
  let k = 0;
  let acc = 0;
  while (k < values.length && values[k]! > 1e-10 * max && (k === 0 || acc < keepVariance * total)) {
    acc += values[k]!;
    k++;
  }
  const out = new Float64Array(c.n * k);
  for (let i = 0; i < c.n; i++) {
    for (let j = 0; j < k; j++) {
      let s = 0;
      for (let a = 0; a < c.d; a++) s += c.data[i * c.d + a]! * vectors[a * c.d + j]!;
      out[i * k + j] = s / Math.sqrt(values[j]!);
    }
  }
  return { n: c.n, d: k, data: out };
}

export interface SvccaOptions {
  /** Fraction of each side's variance kept by the SVD step (default 0.99). */
  keepVariance?: number;
}

export interface SvccaResult {
  /** Mean canonical correlation. */
  mean: number;
  /** Canonical correlations, descending (min(kx, ky) of them). */
  correlations: number[];
  /** Directions kept by the SVD step on each side. */
  kx: number;
  ky: number;
}

/**
 * SVCCA: each side reduced by SVD (PCA) to the directions explaining `keepVariance` of its variance,
 * then CCA between the reduced spaces; the canonical correlations are the singular values of the
 * cross-covariance of the whitened reductions.
 */
export async function svccaDetails(X: Matrix, Y: Matrix, opts: SvccaOptions = {}): Promise<SvccaResult> {
  return svccaDense(...(await pair(X, Y)), opts);
}

function svccaDense(x0: Dense, y0: Dense, opts: SvccaOptions): SvccaResult {
  const keep = opts.keepVariance ?? 0.99;
  if (!(keep > 0 && keep <= 1)) throw new ShapeError(`keepVariance must be in (0, 1], got ${keep}`);
  const x = reduceWhiten(x0, keep);
  const y = reduceWhiten(y0, keep);
  if (x.d === 0 || y.d === 0) return { mean: 0, correlations: [], kx: x.d, ky: y.d };
  // M = Xwᵀ Yw (whitened by the eigenvalues of XᵀX, so no 1/(n-1)); singular values from eig(M Mᵀ).
  const [a, b] = x.d <= y.d ? [x, y] : [y, x];
  const m = crossProduct(a, b);
  const mmt = new Float64Array(a.d * a.d);
  for (let i = 0; i < a.d; i++)
    for (let j = i; j < a.d; j++) {
      let s = 0;
      for (let k = 0; k < b.d; k++) s += m[i * b.d + k]! * m[j * b.d + k]!;
      mmt[i * a.d + j] = s;
      mmt[j * a.d + i] = s;
    }
  const correlations = symmetricEigen(mmt, a.d).values.map((v) => Math.min(1, Math.sqrt(Math.max(v, 0))));
  return {
    mean: correlations.reduce((s, v) => s + v, 0) / correlations.length,
    correlations,
    kx: x.d,
    ky: y.d,
  };
}

/** SVCCA similarity: the mean canonical correlation (see svccaDetails). */
export async function svcca(X: Matrix, Y: Matrix, opts: SvccaOptions = {}): Promise<number> {
  return (await svccaDetails(X, Y, opts)).mean;
}

export type SimilarityMethod = 'cka' | 'svcca';

export interface SimilarityMatrixOptions {
  method?: SimilarityMethod;
  keepVariance?: number;
  /** Hooks of model A (rows) and B (columns); default each block's resid_pre, then the last resid_post. */
  hooksA?: string[];
  hooksB?: string[];
  /** Leave out the first position of every text (BOS: a constant vector in every model). Default true. */
  skipFirst?: boolean;
}

export interface SimilarityMatrix {
  method: SimilarityMethod;
  rows: string[];
  columns: string[];
  /** values[i][j]: similarity of model A's hook i and model B's hook j. */
  values: number[][];
  samples: number;
}

/** 'blocks.0.hook_resid_pre' .. 'blocks.{L-1}.hook_resid_pre', then 'blocks.{L-1}.hook_resid_post'. */
export function residualHooks(model: HookedTransformer): string[] {
  const L = model.cfg.nLayers;
  return [
    ...Array.from({ length: L }, (_, l) => `blocks.${l}.hook_resid_pre`),
    `blocks.${L - 1}.hook_resid_post`,
  ];
}

/** Each hook's activations over all texts' positions (the first `skip` left out), [samples, d], read once. */
async function collect(
  model: HookedTransformer,
  texts: number[][],
  hooks: string[],
  skip: number,
): Promise<Dense[]> {
  const parts = hooks.map(() => [] as Tensor[]);
  for (const ids of texts) {
    const { cache } = model.runWithCache([ids], { names: hooks });
    hooks.forEach((h, i) => {
      const t = cache.get(h); // [1, pos, d]
      parts[i]!.push(reshape(slice(t, 1, skip, t.shape[1]!), [-1, t.shape[t.rank - 1]!]));
    });
  }
  return Promise.all(parts.map((p) => dense(concat(p, 0), 'activations')));
}

/**
 * Layer-by-layer similarity of two models' activations on the same tokens (texts are tokenized by
 * model A; both models must share the vocabulary). Positions of all texts are the samples.
 */
export async function similarityMatrix(
  modelA: HookedTransformer,
  modelB: HookedTransformer,
  texts: (string | number[])[],
  opts: SimilarityMatrixOptions = {},
): Promise<SimilarityMatrix> {
  const method = opts.method ?? 'cka';
  if (modelA.cfg.vocabSize !== modelB.cfg.vocabSize)
    throw new ShapeError(
      `the models' vocabularies differ (${modelA.cfg.vocabSize} vs ${modelB.cfg.vocabSize})`,
    );
  if (texts.length === 0) throw new ShapeError('similarityMatrix needs at least one text');
  const ctx = Math.min(modelA.cfg.nCtx, modelB.cfg.nCtx);
  const ids = texts.map((t) => (typeof t === 'string' ? modelA.encode(t) : t).slice(0, ctx));
  const skip = opts.skipFirst === false ? 0 : 1;
  const rows = opts.hooksA ?? residualHooks(modelA);
  const columns = opts.hooksB ?? residualHooks(modelB);
  const [a, b] = await Promise.all([collect(modelA, ids, rows, skip), collect(modelB, ids, columns, skip)]);
  const f = (x: Dense, y: Dense) =>
    method === 'cka' ? ckaDense(x, y) : svccaDense(x, y, { keepVariance: opts.keepVariance }).mean;
  return { method, rows, columns, values: a.map((x) => b.map((y) => f(x, y))), samples: a[0]!.n };
}

export interface FeatureMatch {
  /** For each row of D1: the index of its most similar row of D2 and their cosine similarity. */
  best: { index: number; cosine: number }[];
  /** Mean of the best cosines (the mean max cosine similarity, MMCS). */
  meanMaxCosine: number;
  /** Pairs that are each other's best match. */
  mutual: { i: number; j: number; cosine: number }[];
}

/** Matches two dictionaries' features (rows = directions) by maximum cosine similarity. */
export async function matchFeatures(D1: Matrix, D2: Matrix): Promise<FeatureMatch> {
  const [a, b] = await Promise.all([dense(D1, 'D1'), dense(D2, 'D2')]);
  if (a.d !== b.d) throw new ShapeError(`D1 directions have ${a.d} dimensions, D2's ${b.d}`);
  const norm = (m: Dense) => {
    for (let i = 0; i < m.n; i++) {
      let s = 0;
      for (let k = 0; k < m.d; k++) s += m.data[i * m.d + k]! ** 2;
      const r = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let k = 0; k < m.d; k++) m.data[i * m.d + k]! *= r;
    }
  };
  norm(a);
  norm(b);
  const bestA = Array.from({ length: a.n }, () => ({ index: -1, cosine: -Infinity }));
  const bestB = Array.from({ length: b.n }, () => ({ index: -1, cosine: -Infinity }));
  for (let i = 0; i < a.n; i++)
    for (let j = 0; j < b.n; j++) {
      let s = 0;
      for (let k = 0; k < a.d; k++) s += a.data[i * a.d + k]! * b.data[j * b.d + k]!;
      if (s > bestA[i]!.cosine) bestA[i] = { index: j, cosine: s };
      if (s > bestB[j]!.cosine) bestB[j] = { index: i, cosine: s };
    }
  const mutual = bestA.flatMap((m, i) =>
    m.index >= 0 && bestB[m.index]!.index === i ? [{ i, j: m.index, cosine: m.cosine }] : [],
  );
  return {
    best: bestA,
    meanMaxCosine: bestA.length ? bestA.reduce((s, m) => s + m.cosine, 0) / bestA.length : 0,
    mutual,
  };
}
