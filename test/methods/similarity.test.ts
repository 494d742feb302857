import '../../src/engine/node.js';
import { describe, expect, it } from 'vitest';
import { Rng } from '../../src/engine/random.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import {
  linearCKA,
  matchFeatures,
  residualHooks,
  similarityMatrix,
  svcca,
  svccaDetails,
  symmetricEigen,
} from '../../src/methods/similarity.js';

function gaussian(rng: Rng, n: number, d: number): number[][] {
  return Array.from({ length: n }, () => Array.from({ length: d }, () => rng.normal()));
}

function matmul(a: number[][], b: number[][]): number[][] {
  return a.map((row) => b[0]!.map((_, j) => row.reduce((s, v, k) => s + v * b[k]![j]!, 0)));
}

/** A random orthogonal matrix (Gram-Schmidt of a Gaussian one). */
function orthogonal(rng: Rng, d: number): number[][] {
  const q: number[][] = [];
  for (const v of gaussian(rng, d, d)) {
    for (const u of q) {
      const p = v.reduce((s, x, i) => s + x * u[i]!, 0);
      v.forEach((_, i) => (v[i]! -= p * u[i]!));
    }
    const n = Math.hypot(...v);
    q.push(v.map((x) => x / n));
  }
  return q;
}

describe('linear CKA', () => {
  const rng = new Rng(1);
  const X = gaussian(rng, 200, 8);

  it('is 1 for X vs X, and invariant to orthogonal transforms, isotropic scaling and translation', async () => {
    expect(await linearCKA(X, X)).toBeCloseTo(1, 10);
    const XQ = matmul(X, orthogonal(rng, 8));
    expect(await linearCKA(X, XQ)).toBeCloseTo(1, 10);
    expect(
      await linearCKA(
        X,
        XQ.map((r) => r.map((v) => 3.5 * v + 2)),
      ),
    ).toBeCloseTo(1, 10);
  });

  it('is small for independent noise, and not invariant to anisotropic scaling', async () => {
    const noise = gaussian(rng, 200, 8);
    const c = await linearCKA(X, noise);
    expect(c).toBeGreaterThan(0);
    expect(c).toBeLessThan(0.1);
    const stretched = X.map((r) => r.map((v, j) => (j === 0 ? 10 * v : v)));
    expect(await linearCKA(X, stretched)).toBeLessThan(0.5);
  });

  it('matches a hand computation on a tiny matrix', async () => {
    // X = [[0,1],[1,2],[2,0]] -> Xc = [[-1,0],[0,1],[1,-1]]; Y = [[1],[0],[2]] -> Yc = [[0],[-1],[1]].
    // XcᵀXc = [[2,-1],[-1,2]] (||.||² = 10); YcᵀYc = [[2]] (||.||² = 4); YcᵀXc = [1, -2] (||.||² = 5).
    // CKA = 5 / sqrt(10 * 4) = 0.790569...
    expect(
      await linearCKA(
        [
          [0, 1],
          [1, 2],
          [2, 0],
        ],
        [[1], [0], [2]],
      ),
    ).toBeCloseTo(5 / Math.sqrt(40), 12);
    expect(await linearCKA([[1], [1], [1]], [[1], [0], [2]])).toBe(0);
    await expect(linearCKA([[1], [2]], [[1], [2], [3]])).rejects.toThrow(/samples/);
  });
});

describe('SVCCA', () => {
  const rng = new Rng(2);

  it('symmetricEigen recovers A = V diag(λ) Vᵀ', () => {
    const B = gaussian(rng, 6, 6);
    const A = matmul(
      B,
      B[0]!.map((_, j) => B.map((r) => r[j]!)),
    ); // B Bᵀ
    const { values, vectors } = symmetricEigen(Float64Array.from(A.flat()), 6);
    for (let i = 1; i < 6; i++) expect(values[i]!).toBeLessThanOrEqual(values[i - 1]!);
    for (let i = 0; i < 6; i++)
      for (let j = 0; j < 6; j++) {
        let s = 0;
        for (let k = 0; k < 6; k++) s += vectors[i * 6 + k]! * values[k]! * vectors[j * 6 + k]!;
        expect(s).toBeCloseTo(A[i]![j]!, 9);
      }
  });

  it('is 1 for X vs XR with R invertible (all variance kept, or X of low rank)', async () => {
    const X = gaussian(rng, 300, 6);
    const R = gaussian(rng, 6, 6).map((r, i) => r.map((v, j) => v + (i === j ? 3 : 0)));
    expect(await svcca(X, matmul(X, R), { keepVariance: 1 })).toBeCloseTo(1, 8);
    // Rank 3 in 6 dimensions: the 99% cut keeps exactly the 3 real directions on both sides.
    const low = matmul(gaussian(rng, 300, 3), gaussian(rng, 3, 6));
    const d = await svccaDetails(low, matmul(low, R));
    expect([d.kx, d.ky]).toEqual([3, 3]);
    expect(d.mean).toBeCloseTo(1, 8);
  });

  it('matches a hand computation: Y = [x1, noise] against X = [x1, x2] gives correlations {1, ~0}', async () => {
    const X = gaussian(rng, 2000, 2);
    const noise = gaussian(rng, 2000, 1);
    const Y = X.map((r, i) => [r[0]!, noise[i]![0]!]);
    const d = await svccaDetails(X, Y, { keepVariance: 1 });
    expect(d.correlations[0]!).toBeCloseTo(1, 8);
    expect(d.correlations[1]!).toBeLessThan(0.08);
    expect(d.mean).toBeCloseTo((1 + d.correlations[1]!) / 2, 12);
    // Independent noise: small canonical correlations.
    expect(await svcca(X, gaussian(rng, 2000, 2))).toBeLessThan(0.08);
  });
});

describe('matchFeatures', () => {
  it('finds a permuted, rescaled copy of a dictionary with cosine 1', async () => {
    const rng = new Rng(3);
    const D1 = gaussian(rng, 10, 16);
    const perm = [3, 7, 0, 9, 1, 4, 8, 2, 6, 5];
    const D2 = perm.map((p) => D1[p]!.map((v) => 2 * v));
    const m = await matchFeatures(D1, D2);
    m.best.forEach((b, i) => {
      expect(perm[b.index]).toBe(i);
      expect(b.cosine).toBeCloseTo(1, 10);
    });
    expect(m.meanMaxCosine).toBeCloseTo(1, 10);
    expect(m.mutual).toHaveLength(10);
    const r = await matchFeatures(D1, gaussian(rng, 10, 16));
    expect(r.meanMaxCosine).toBeLessThan(0.8);
  });
});

describe('similarityMatrix on stories260K', () => {
  const model = HookedTransformer.load();
  const texts = [
    'Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.',
    'Tom had a big red ball. He wanted to share it with his friend Sam, but Sam was sad.',
    'One day, a bird flew into the garden. The bird was hungry and looked for food.',
  ];

  it('model vs itself: CKA diagonal of 1, neighbouring layers more similar than distant ones', async () => {
    const s = await similarityMatrix(model, model, texts);
    expect(s.rows).toEqual(residualHooks(model));
    expect(s.values).toHaveLength(6);
    s.values.forEach((r, i) => expect(r[i]!).toBeCloseTo(1, 8));
    s.values.forEach((r) =>
      r.forEach((v, j) => expect(v).toBeCloseTo(s.values[j]![s.values.indexOf(r)]!, 8)),
    );
    expect(s.values[1]![2]!).toBeGreaterThan(s.values[1]![5]!);
  });

  it('SVCCA, and hooks of a layer-shuffled order recover the permutation on the argmax', async () => {
    const hooks = residualHooks(model);
    const shuffled = [3, 0, 5, 1, 4, 2].map((i) => hooks[i]!);
    const s = await similarityMatrix(model, model, texts, { method: 'svcca', hooksB: shuffled });
    expect(s.method).toBe('svcca');
    s.values.forEach((r, i) => {
      const j = r.indexOf(Math.max(...r));
      expect(shuffled[j]).toBe(hooks[i]);
      expect(r[j]!).toBeCloseTo(1, 6);
    });
  });
});
