import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import {
  abs,
  add,
  argmax,
  cast,
  concat,
  crossEntropy,
  div,
  einsum,
  eq,
  erf,
  exp,
  expand,
  gather,
  gatherElements,
  gelu,
  gt,
  index,
  indexAdd,
  layerNorm,
  linear,
  logSoftmax,
  logsumexp,
  matmul,
  max,
  maximum,
  mean,
  min,
  minimum,
  mul,
  padAxis,
  permute,
  pow,
  relu,
  reshape,
  rmsNorm,
  Rng,
  scatterAdd,
  sigmoid,
  silu,
  slice,
  softmax,
  sqrt,
  squeeze,
  stack,
  sub,
  sum,
  tanh,
  Tensor,
  topk,
  transpose,
  unsqueeze,
  variance,
  where,
} from '../../src/engine/index.js';
import { ShapeError } from '../../src/errors.js';
import { randnT } from './gradcheck.js';

const rng = new Rng(7);
const arange = (n: number, shape: number[]): Tensor =>
  Tensor.from(
    Array.from({ length: n }, (_, i) => i),
    shape,
  );
const i64 = (values: number[], shape: number[]): Tensor => Tensor.from(values, shape, 'int64');

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) {
      expect.fail(`element ${i}: got ${a}, expected ${e} (tol ${tol})`);
    }
  }
}

function stridesOf(shape: number[]): number[] {
  const s = new Array<number>(shape.length).fill(1);
  for (let i = shape.length - 2; i >= 0; i--) s[i] = s[i + 1]! * shape[i + 1]!;
  return s;
}

/** Multi-index of flat offset `k` in a row-major array of `shape`. */
function unravel(k: number, shape: number[]): number[] {
  const idx = new Array<number>(shape.length).fill(0);
  for (let i = shape.length - 1; i >= 0; i--) {
    idx[i] = k % shape[i]!;
    k = Math.floor(k / shape[i]!);
  }
  return idx;
}

/** Naive batched matmul with numpy broadcasting over batch dims. */
function naiveMatmul(
  a: number[],
  as: number[],
  b: number[],
  bs: number[],
): { data: number[]; shape: number[] } {
  const [m, k] = as.slice(-2) as [number, number];
  const n = bs[bs.length - 1]!;
  const ab = as.slice(0, -2);
  const bb = bs.slice(0, -2);
  const rank = Math.max(ab.length, bb.length);
  const pad = (s: number[]) => [...new Array<number>(rank - s.length).fill(1), ...s];
  const pa = pad(ab);
  const pb = pad(bb);
  const batch = pa.map((d, i) => Math.max(d, pb[i]!));
  const nb = batch.reduce((p, d) => p * d, 1);
  const sa = stridesOf(pa);
  const sb = stridesOf(pb);
  const out: number[] = [];
  for (let bi = 0; bi < nb; bi++) {
    const idx = unravel(bi, batch);
    let oa = 0;
    let ob = 0;
    idx.forEach((v, i) => {
      oa += (pa[i] === 1 ? 0 : v) * sa[i]!;
      ob += (pb[i] === 1 ? 0 : v) * sb[i]!;
    });
    for (let i = 0; i < m; i++) {
      for (let j = 0; j < n; j++) {
        let s = 0;
        for (let l = 0; l < k; l++) s += a[oa * m * k + i * k + l]! * b[ob * k * n + l * n + j]!;
        out.push(s);
      }
    }
  }
  return { data: out, shape: [...batch, m, n] };
}

/** Abramowitz-Stegun 7.1.26, |error| <= 1.5e-7. */
function erfAS(x: number): number {
  const s = Math.sign(x);
  const ax = Math.abs(x);
  const t = 1 / (1 + 0.3275911 * ax);
  const poly =
    t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
  return s * (1 - poly * Math.exp(-ax * ax));
}

/** Float32-representable sample points, so references see exactly the values the engine sees. */
const sampleX = [-4, -2.5, -1.3, -1, -0.5, -0.1, 0, 0.1, 0.5, 1, 1.3, 2.5, 4].map(Math.fround);

describe('matmul / linear / einsum forward', () => {
  const cases: [number[], number[]][] = [
    [
      [3, 4],
      [4, 5],
    ],
    [
      [2, 3, 4, 5],
      [5, 6],
    ],
    [
      [2, 1, 4, 5],
      [3, 5, 2],
    ],
    [
      [4, 3],
      [2, 3, 5],
    ],
  ];
  for (const [as, bs] of cases) {
    it(`matmul [${as}] @ [${bs}] matches a naive triple loop`, () => {
      const a = randnT(as, rng);
      const b = randnT(bs, rng);
      const y = matmul(a, b);
      const ref = naiveMatmul(a.toArraySync(), as, b.toArraySync(), bs);
      expect(y.shape).toEqual(ref.shape);
      expectClose(y.toArraySync(), ref.data, 1e-5);
    });
  }

  it('matmul in float64 is exact to double precision', () => {
    const a = Tensor.from(Float64Array.from([1, 2, 3, 4, 5, 6]), [2, 3]);
    const b = Tensor.from(Float64Array.from([0.1, 0.2, 0.3, 0.4, 0.5, 0.6]), [3, 2]);
    const y = matmul(a, b);
    expect(y.dtype).toBe('float64');
    expectClose(y.toArraySync(), naiveMatmul(a.toArraySync(), [2, 3], b.toArraySync(), [3, 2]).data, 1e-14);
  });

  it('linear is x @ W^T + b', () => {
    const x = randnT([2, 3], rng);
    const w = randnT([4, 3], rng);
    const b = randnT([4], rng);
    const y = linear(x, w, b);
    const xs = x.toArraySync();
    const ws = w.toArraySync();
    const bs = b.toArraySync();
    const ref: number[] = [];
    for (let i = 0; i < 2; i++) {
      for (let o = 0; o < 4; o++) {
        let s = bs[o]!;
        for (let k = 0; k < 3; k++) s += xs[i * 3 + k]! * ws[o * 3 + k]!;
        ref.push(s);
      }
    }
    expect(y.shape).toEqual([2, 4]);
    expectClose(y.toArraySync(), ref);
  });

  it('einsum matches matmul, transpose and sum', () => {
    const a = randnT([2, 3, 4], rng);
    const b = randnT([2, 4, 5], rng);
    expectClose(einsum('bij,bjk->bik', a, b).toArraySync(), matmul(a, b).toArraySync());
    const m = randnT([3, 4], rng);
    expectClose(einsum('ij->ji', m).toArraySync(), transpose(m).toArraySync(), 0);
    expectClose(einsum('ij->i', m).toArraySync(), sum(m, 1).toArraySync());
    const w = randnT([6, 4], rng);
    const y = einsum('bpd,hd->bph', a, w);
    expect(y.shape).toEqual([2, 3, 6]);
    expectClose(y.toArraySync(), matmul(a, transpose(w)).toArraySync());
  });
});

describe('softmax / logSoftmax / logsumexp', () => {
  it('softmax over the last axis: rows sum to 1 and match exp(x)/sum(exp(x))', () => {
    const x = randnT([3, 5], rng, 2);
    const y = softmax(x, -1).toArraySync();
    const xs = x.toArraySync();
    for (let r = 0; r < 3; r++) {
      const row = xs.slice(r * 5, r * 5 + 5);
      const z = row.reduce((s, v) => s + Math.exp(v), 0);
      expectClose(
        y.slice(r * 5, r * 5 + 5),
        row.map((v) => Math.exp(v) / z),
      );
      expect(y.slice(r * 5, r * 5 + 5).reduce((s, v) => s + v, 0)).toBeCloseTo(1, 6);
    }
  });

  it('softmax over axis 0: columns sum to 1', () => {
    const x = randnT([4, 3], rng, 2);
    const y = softmax(x, 0);
    expectClose(sum(y, 0).toArraySync(), [1, 1, 1], 1e-6);
    const xs = x.toArraySync();
    const ys = y.toArraySync();
    for (let c = 0; c < 3; c++) {
      const col = [0, 1, 2, 3].map((r) => xs[r * 3 + c]!);
      const z = col.reduce((s, v) => s + Math.exp(v), 0);
      col.forEach((v, r) => expect(ys[r * 3 + c]).toBeCloseTo(Math.exp(v) / z, 6));
    }
  });

  it('softmax is stable for large logits', () => {
    const y = softmax(Tensor.from([[1000, 1001, 1002]]), -1).toArraySync();
    const z = 1 + Math.E + Math.E ** 2;
    expectClose(y, [1 / z, Math.E / z, Math.E ** 2 / z]);
  });

  it('logSoftmax = x - logsumexp(x), and logsumexp matches log(sum(exp))', () => {
    const x = randnT([2, 6], rng, 3);
    const xs = x.toArraySync();
    const lse = [0, 1].map((r) => Math.log(xs.slice(r * 6, r * 6 + 6).reduce((s, v) => s + Math.exp(v), 0)));
    expectClose(logsumexp(x, -1).toArraySync(), lse);
    expectClose(
      logSoftmax(x, -1).toArraySync(),
      xs.map((v, i) => v - lse[Math.floor(i / 6)]!),
    );
    expect(logsumexp(x, -1, true).shape).toEqual([2, 1]);
    expectClose(logsumexp(Tensor.from([1000, 1000]), 0).toArraySync(), [1000 + Math.log(2)]);
  });
});

describe('normalisation', () => {
  it('layerNorm matches a JS implementation (with weight and bias)', () => {
    const x = randnT([2, 3, 5], rng, 3);
    const w = randnT([5], rng);
    const b = randnT([5], rng);
    const eps = 1e-5;
    const y = layerNorm(x, w, b, eps);
    const xs = x.toArraySync();
    const ws = w.toArraySync();
    const bs = b.toArraySync();
    const ref: number[] = [];
    for (let r = 0; r < 6; r++) {
      const row = xs.slice(r * 5, r * 5 + 5);
      const mu = row.reduce((s, v) => s + v, 0) / 5;
      const v = row.reduce((s, t) => s + (t - mu) ** 2, 0) / 5;
      row.forEach((t, i) => ref.push(((t - mu) / Math.sqrt(v + eps)) * ws[i]! + bs[i]!));
    }
    expect(y.shape).toEqual([2, 3, 5]);
    expectClose(y.toArraySync(), ref, 1e-5);
  });

  it('rmsNorm matches a JS implementation', () => {
    const x = randnT([3, 4], rng, 2);
    const w = randnT([4], rng);
    const xs = x.toArraySync();
    const ws = w.toArraySync();
    const ref: number[] = [];
    for (let r = 0; r < 3; r++) {
      const row = xs.slice(r * 4, r * 4 + 4);
      const rms = Math.sqrt(row.reduce((s, v) => s + v * v, 0) / 4 + 1e-6);
      row.forEach((t, i) => ref.push((t / rms) * ws[i]!));
    }
    expectClose(rmsNorm(x, w).toArraySync(), ref, 1e-5);
  });
});

describe('elementwise forward', () => {
  const x = Tensor.from(sampleX);

  it('gelu tanh matches 0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))', () => {
    const k = Math.sqrt(2 / Math.PI);
    const ref = sampleX.map((v) => 0.5 * v * (1 + Math.tanh(k * (v + 0.044715 * v ** 3))));
    expectClose(gelu(x, 'tanh').toArraySync(), ref, 1e-6);
  });

  it('gelu exact matches 0.5x(1+erf(x/sqrt2)) and known values', () => {
    const ref = sampleX.map((v) => 0.5 * v * (1 + erfAS(v / Math.SQRT2)));
    expectClose(gelu(x, 'none').toArraySync(), ref, 1e-6);
    const known = gelu(Tensor.from([1, -1]), 'none').toArraySync();
    expect(known[0]).toBeCloseTo(0.8413447460685429, 6);
    expect(known[1]).toBeCloseTo(-0.15865525393145707, 6);
  });

  it('erf matches Abramowitz-Stegun and known values', () => {
    expectClose(erf(x).toArraySync(), sampleX.map(erfAS), 1e-6);
    expect(erf(Tensor.from([1])).itemSync()).toBeCloseTo(0.8427007929497149, 6);
  });

  it('silu, sigmoid, tanh, relu, exp, sqrt, abs, pow match Math', () => {
    const sig = (v: number) => 1 / (1 + Math.exp(-v));
    expectClose(
      silu(x).toArraySync(),
      sampleX.map((v) => v * sig(v)),
      1e-6,
    );
    expectClose(sigmoid(x).toArraySync(), sampleX.map(sig), 1e-6);
    expectClose(tanh(x).toArraySync(), sampleX.map(Math.tanh), 1e-6);
    expectClose(
      relu(x).toArraySync(),
      sampleX.map((v) => Math.max(v, 0)),
      0,
    );
    expectClose(exp(x).toArraySync(), sampleX.map(Math.exp), 1e-6);
    expectClose(abs(x).toArraySync(), sampleX.map(Math.abs), 0);
    expectClose(
      sqrt(abs(x)).toArraySync(),
      sampleX.map((v) => Math.sqrt(Math.abs(v))),
      1e-6,
    );
    expectClose(
      pow(abs(x), 1.5).toArraySync(),
      sampleX.map((v) => Math.abs(v) ** 1.5),
      1e-6,
    );
  });

  it('binary ops broadcast [2,1,4] with [3,1] and take numbers on either side', () => {
    const a = arange(8, [2, 1, 4]);
    const b = Tensor.from([[10], [20], [30]]);
    const y = add(a, b);
    expect(y.shape).toEqual([2, 3, 4]);
    const ref: number[] = [];
    for (let i = 0; i < 2; i++)
      for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) ref.push(i * 4 + k + (j + 1) * 10);
    expect(y.toArraySync()).toEqual(ref);
    expect(sub(1, Tensor.from([1, 2, 3])).toArraySync()).toEqual([0, -1, -2]);
    expect(div(Tensor.from([1, 2, 3]), 2).toArraySync()).toEqual([0.5, 1, 1.5]);
    expect(mul(3, Tensor.from([1, 2])).toArraySync()).toEqual([3, 6]);
  });

  it('where, maximum and minimum', () => {
    const a = Tensor.from([1, 5, 3]);
    const b = Tensor.from([4, 2, 3]);
    expect(where(gt(a, b), a, b).toArraySync()).toEqual([4, 5, 3]);
    expect(maximum(a, b).toArraySync()).toEqual([4, 5, 3]);
    expect(minimum(a, b).toArraySync()).toEqual([1, 2, 3]);
    expect(where(gt(a, 2), a, -1).toArraySync()).toEqual([-1, 5, 3]);
  });
});

describe('reductions', () => {
  const x = Tensor.from([
    [1, 7, 3],
    [4, 2, 9],
  ]);
  it('sum / mean / max / min / variance with axes and keepdim', () => {
    expect(sum(x).itemSync()).toBe(26);
    expect(sum(x, 0).toArraySync()).toEqual([5, 9, 12]);
    expect(sum(x, -1, true).shape).toEqual([2, 1]);
    expect(mean(x, 1).toArraySync()).toEqual([11 / 3, 5].map(Math.fround));
    expect(max(x, 1).toArraySync()).toEqual([7, 9]);
    expect(min(x, 0).toArraySync()).toEqual([1, 2, 3]);
    expect(max(x).itemSync()).toBe(9);
    expect(sum(arange(24, [2, 3, 4]), [0, 2]).toArraySync()).toEqual([60, 92, 124]);
    expectClose(variance(x, 1).toArraySync(), [56 / 9, 26 / 3]);
    expectClose(variance(x, 1, false, true).toArraySync(), [28 / 3, 13]);
  });

  it('argmax takes the first of tied maxima', () => {
    const t = Tensor.from([
      [1, 3, 3, 2],
      [5, 5, 0, 5],
      [0, 0, 0, 0],
    ]);
    const am = argmax(t, -1);
    expect(am.dtype).toBe('int64');
    expect(am.toArraySync()).toEqual([1, 0, 0]);
    expect(argmax(t, 0).toArraySync()).toEqual([1, 1, 0, 1]);
    expect(argmax(t, 1, true).shape).toEqual([3, 1]);
  });

  it('topk returns sorted values and indices; ties keep the lower index first', () => {
    const { values, indices } = topk(Tensor.from([1, 3, 3, 2, 0.5]), 3);
    expect(values.toArraySync()).toEqual([3, 3, 2]);
    expect(indices.dtype).toBe('int64');
    expect(indices.toArraySync()).toEqual([1, 2, 3]);
    const t = Tensor.from([
      [0.1, 0.9, 0.4],
      [0.8, 0.2, 0.6],
    ]);
    const r = topk(t, 1, 0);
    expect(r.values.toArraySync()).toEqual([0.8, 0.9, 0.6].map(Math.fround));
    expect(r.indices.toArraySync()).toEqual([1, 0, 1]);
  });
});

describe('shape ops: element order', () => {
  const x = arange(12, [3, 4]);

  it('reshape is row-major', () => {
    const y = reshape(x, [2, -1]);
    expect(y.shape).toEqual([2, 6]);
    expect(y.toNestedSync()).toEqual([
      [0, 1, 2, 3, 4, 5],
      [6, 7, 8, 9, 10, 11],
    ]);
    expect(unsqueeze(x, 0).shape).toEqual([1, 3, 4]);
    expect(unsqueeze(x, -1).shape).toEqual([3, 4, 1]);
    expect(squeeze(unsqueeze(x, 1), 1).shape).toEqual([3, 4]);
  });

  it('permute matches a JS index permutation', () => {
    const shape = [2, 3, 4];
    const t = arange(24, shape);
    const perm = [2, 0, 1];
    const y = permute(t, perm);
    const outShape = perm.map((p) => shape[p]!);
    expect(y.shape).toEqual(outShape);
    const st = stridesOf(shape);
    const ref = Array.from({ length: 24 }, (_, k) => {
      const oi = unravel(k, outShape);
      return oi.reduce((s, v, i) => s + v * st[perm[i]!]!, 0);
    });
    expect(y.toArraySync()).toEqual(ref);
    expect(transpose(x).toNestedSync()).toEqual([
      [0, 4, 8],
      [1, 5, 9],
      [2, 6, 10],
      [3, 7, 11],
    ]);
  });

  it('slice with negative start/end and steps', () => {
    expect(slice(x, 1, -3).toNestedSync()).toEqual([
      [1, 2, 3],
      [5, 6, 7],
      [9, 10, 11],
    ]);
    expect(slice(x, 1, 0, -1).toNestedSync()).toEqual([
      [0, 1, 2],
      [4, 5, 6],
      [8, 9, 10],
    ]);
    expect(slice(x, 1, 1, undefined, 2).toNestedSync()).toEqual([
      [1, 3],
      [5, 7],
      [9, 11],
    ]);
    expect(slice(arange(7, [7]), 0, -6, undefined, 2).toArraySync()).toEqual([1, 3, 5]);
    expect(slice(x, 0, 1, 100).shape).toEqual([2, 4]);
    expect(index(x, 0, -1).toArraySync()).toEqual([8, 9, 10, 11]);
    expect(index(x, 1, 2).toArraySync()).toEqual([2, 6, 10]);
  });

  it('concat / stack / expand / padAxis', () => {
    const a = arange(4, [2, 2]);
    const b = add(arange(2, [2, 1]), 10);
    expect(concat([a, b], 1).toNestedSync()).toEqual([
      [0, 1, 10],
      [2, 3, 11],
    ]);
    expect(concat([a, transpose(b)], 0).toNestedSync()).toEqual([
      [0, 1],
      [2, 3],
      [10, 11],
    ]);
    expect(stack([a, a], 0).shape).toEqual([2, 2, 2]);
    expect(stack([Tensor.from([1, 2]), Tensor.from([3, 4])], -1).toNestedSync()).toEqual([
      [1, 3],
      [2, 4],
    ]);
    expect(expand(Tensor.from([[1], [2]]), [2, 2, 3]).toNestedSync()).toEqual([
      [
        [1, 1, 1],
        [2, 2, 2],
      ],
      [
        [1, 1, 1],
        [2, 2, 2],
      ],
    ]);
    expect(padAxis(a, 1, 1, 2).toNestedSync()).toEqual([
      [0, 0, 1, 0, 0],
      [0, 2, 3, 0, 0],
    ]);
    expect(padAxis(a, 0, 0, 1).toNestedSync()).toEqual([
      [0, 1],
      [2, 3],
      [0, 0],
    ]);
  });

  // Regression (fixed in src/engine/ops/shape.ts padAxis): a negative axis is used unnormalised, so `pads[axis] = before`
  // sets a non-index property and `pads[rank + axis] = after` lands in the *before* slot of that axis.
  // Repro: padAxis(Tensor.from([[1, 2, 3], [4, 5, 6]]), -1, 1, 2) gives [[0,0,1,2,3],[0,0,4,5,6]]
  // (shape [2,5]) instead of [[0,1,2,3,0,0],[0,4,5,6,0,0]]. Fix: normalise with normAxis first.
  it('padAxis accepts a negative axis like every other op', () => {
    const a = Tensor.from([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(padAxis(a, -1, 1, 2).toNestedSync()).toEqual(padAxis(a, 1, 1, 2).toNestedSync());
  });

  // Regression (fixed in src/engine/ops/shape.ts permute): the validity check sorts the permutation with the default
  // (lexicographic) sort, so any permutation of 11+ axes is rejected ([0,1,10,2,...] != [0,1,2,...]).
  // Repro: permute(Tensor.zeros(new Array(11).fill(1)), [0,1,2,3,4,5,6,7,8,9,10]) throws ShapeError.
  it('permute accepts a permutation of 11 axes', () => {
    const perm = [10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
    const t = arange(2, [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2]);
    expect(permute(t, perm).shape).toEqual([2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]);
  });
});

describe('indexing ops', () => {
  it('gather (embedding lookup) with repeated ids', () => {
    const w = arange(12, [4, 3]);
    const y = gather(w, 0, i64([3, 0, 3, 1], [2, 2]));
    expect(y.shape).toEqual([2, 2, 3]);
    expect(y.toNestedSync()).toEqual([
      [
        [9, 10, 11],
        [0, 1, 2],
      ],
      [
        [9, 10, 11],
        [3, 4, 5],
      ],
    ]);
    expect(gather(w, 1, i64([2, 2, 0], [3])).toNestedSync()).toEqual([
      [2, 2, 0],
      [5, 5, 3],
      [8, 8, 6],
      [11, 11, 9],
    ]);
  });

  it('indexAdd accumulates duplicates', () => {
    const x = Tensor.zeros([4, 2]);
    const src = Tensor.from([
      [1, 2],
      [10, 20],
      [100, 200],
    ]);
    expect(indexAdd(x, 0, i64([1, 3, 1], [3]), src).toNestedSync()).toEqual([
      [0, 0],
      [101, 202],
      [0, 0],
      [10, 20],
    ]);
    const y = indexAdd(Tensor.zeros([2, 3]), 1, i64([2, 2], [2]), Tensor.from([1, 2, 3, 4], [2, 2]));
    expect(y.toNestedSync()).toEqual([
      [0, 0, 3],
      [0, 0, 7],
    ]);
  });

  it('gatherElements and scatterAdd (with duplicates)', () => {
    const x = arange(6, [2, 3]);
    const idx = i64([2, 2, 0, 1, 0, 1], [2, 3]);
    expect(gatherElements(x, 1, idx).toNestedSync()).toEqual([
      [2, 2, 0],
      [4, 3, 4],
    ]);
    const s = scatterAdd(Tensor.zeros([2, 3]), 1, idx, Tensor.from([1, 2, 4, 8, 16, 32], [2, 3]));
    expect(s.toNestedSync()).toEqual([
      [4, 0, 3],
      [16, 40, 0],
    ]);
  });
});

describe('crossEntropy', () => {
  it('matches -log softmax at the target (mean / sum / none)', () => {
    const logits = randnT([2, 3, 5], rng, 2);
    const targets = i64([0, 4, 2, 2, 1, 3], [2, 3]);
    const ls = logits.toArraySync();
    const ts = targets.toArraySync();
    const nll = ts.map((t, r) => {
      const row = ls.slice(r * 5, r * 5 + 5);
      return Math.log(row.reduce((s, v) => s + Math.exp(v), 0)) - row[t]!;
    });
    const none = crossEntropy(logits, targets, 'none');
    expect(none.shape).toEqual([2, 3]);
    expectClose(none.toArraySync(), nll);
    expectClose([crossEntropy(logits, targets, 'sum').itemSync()], [nll.reduce((s, v) => s + v, 0)]);
    expectClose([crossEntropy(logits, targets).itemSync()], [nll.reduce((s, v) => s + v, 0) / 6]);
  });

  it('uniform logits give log(vocab)', () => {
    expect(crossEntropy(Tensor.zeros([3, 7]), i64([0, 3, 6], [3])).itemSync()).toBeCloseTo(Math.log(7), 6);
  });
});

describe('dtypes', () => {
  it('int64 tensors: BigInt64Array storage, exact arithmetic, numbers out', () => {
    const a = Tensor.from([1, 2, 3], [3], 'int64');
    expect(a.dtype).toBe('int64');
    expect(a.dataSync()).toBeInstanceOf(BigInt64Array);
    const big = Tensor.from(BigInt64Array.from([2n ** 40n + 1n, -5n]), [2]);
    const y = add(big, Tensor.from([1, 1], [2], 'int64'));
    expect(y.dtype).toBe('int64');
    expect(Array.from(y.dataSync() as BigInt64Array)).toEqual([2n ** 40n + 2n, -4n]);
    expect(mul(a, 2).toArraySync()).toEqual([2, 4, 6]);
    expect(sum(a).itemSync()).toBe(6);
    expect(cast(a, 'float32').toArraySync()).toEqual([1, 2, 3]);
    expect(Tensor.full([2], 7, 'int64').toArraySync()).toEqual([7, 7]);
    expect(Tensor.scalar(-3, 'int64').itemSync()).toBe(-3);
    expect(argmax(a, 0).itemSync()).toBe(2);
  });

  it('int32 tensors', () => {
    const a = Tensor.from([5, -2, 9], [3], 'int32');
    expect(a.dataSync()).toBeInstanceOf(Int32Array);
    expect(add(a, a).toArraySync()).toEqual([10, -4, 18]);
    expect(gather(arange(4, [4]), 0, Tensor.from([3, 0], [2], 'int32')).toArraySync()).toEqual([3, 0]);
    expect(argmax(a, 0).itemSync()).toBe(2);
  });

  it('bool tensors from comparisons, casts and where', () => {
    const a = Tensor.from([1, 5, 3]);
    const c = gt(a, 2);
    expect(c.dtype).toBe('bool');
    expect(c.dataSync()).toBeInstanceOf(Uint8Array);
    expect(c.toArraySync()).toEqual([0, 1, 1]);
    expect(eq(a, Tensor.from([1, 0, 3])).toArraySync()).toEqual([1, 0, 1]);
    expect(eq(Tensor.from([4, 2], [2], 'int64'), Tensor.from([4, 3], [2], 'int64')).toArraySync()).toEqual([
      1, 0,
    ]);
    expect(cast(c, 'float32').toArraySync()).toEqual([0, 1, 1]);
    expect(cast(Tensor.from([0, 2, -1]), 'bool').toArraySync()).toEqual([0, 1, 1]);
    const m = Tensor.from([1, 0, 1], [3], 'bool');
    expect(where(m, a, Tensor.zeros([3])).toArraySync()).toEqual([1, 0, 3]);
  });

  it('float64 tensors stay float64', () => {
    const a = Tensor.from(Float64Array.from([0.1, 0.2]), [2]);
    const y = add(a, 0.1);
    expect(y.dtype).toBe('float64');
    expect(y.toArraySync()).toEqual([0.1 + 0.1, 0.2 + 0.1]);
    expect(Tensor.zeros([2], 'float64').dataSync()).toBeInstanceOf(Float64Array);
  });
});

describe('errors', () => {
  const a = Tensor.zeros([2, 3]);

  it('matmul with mismatched inner dimensions: ShapeError naming both shapes', () => {
    expect(() => matmul(a, Tensor.zeros([4, 5]))).toThrow(ShapeError);
    expect(() => matmul(a, Tensor.zeros([4, 5]))).toThrow(/\[2,3\].*\[4,5\]/);
  });

  it('matmul with unbroadcastable batch dims or rank 1 operands', () => {
    expect(() => matmul(Tensor.zeros([2, 3, 4]), Tensor.zeros([3, 4, 5]))).toThrow(ShapeError);
    expect(() => matmul(Tensor.zeros([3]), Tensor.zeros([3, 2]))).toThrow(ShapeError);
  });

  it('broadcasting mismatch: ShapeError naming both shapes', () => {
    for (const op of [add, sub, mul, div]) {
      expect(() => op(a, Tensor.zeros([4]))).toThrow(ShapeError);
      expect(() => op(a, Tensor.zeros([4]))).toThrow(/\[2,3\].*\[4\]/);
    }
    expect(() => add(Tensor.zeros([2, 1, 4]), Tensor.zeros([3, 2]))).toThrow(/\[2,1,4\].*\[3,2\]/);
  });

  it('dtype mismatch, bad shapes and bad axes throw ShapeError', () => {
    expect(() => add(a, Tensor.zeros([2, 3], 'float64'))).toThrow(ShapeError);
    expect(() => reshape(a, [4, 2])).toThrow(ShapeError);
    expect(() => permute(a, [0, 0])).toThrow(ShapeError);
    expect(() => squeeze(a, 0)).toThrow(ShapeError);
    expect(() => sum(a, 2)).toThrow(ShapeError);
    expect(() => topk(a, 4)).toThrow(ShapeError);
    expect(() => index(a, 1, 3)).toThrow(ShapeError);
    expect(() => concat([a, Tensor.zeros([3, 3])], 1)).toThrow(ShapeError);
    expect(() => where(a, a, a)).toThrow(ShapeError);
    expect(() => gather(a, 0, Tensor.from([0]))).toThrow(ShapeError);
    expect(() => crossEntropy(a, i64([0, 1, 2], [3]))).toThrow(ShapeError);
    expect(() => einsum('ij,jk->ik', a, Tensor.zeros([2, 2]))).toThrow(ShapeError);
    expect(() => Tensor.from([1, 2, 3], [2, 2])).toThrow(ShapeError);
    expect(() => a.itemSync()).toThrow(ShapeError);
    expect(() => Tensor.zeros([2], 'int64').requireGrad()).toThrow(ShapeError);
  });

  it('backward on a non-scalar without a gradient argument throws', () => {
    const x = Tensor.from([1, 2, 3]).requireGrad();
    const y = mul(x, 2);
    expect(() => y.backward()).toThrow(ShapeError);
    expect(() => y.backward()).toThrow(/\[3\]/);
  });

  it('backward on a tensor that needs no grad throws', () => {
    expect(() => sum(Tensor.from([1, 2])).backward()).toThrow(ShapeError);
  });
});

describe('misc forward values', () => {
  it('logsumexp, mean on float64 are exact', () => {
    const x = Tensor.from(Float64Array.from([0.5, 1.5, -2]), [3]);
    expect(mean(x).itemSync()).toBeCloseTo(0, 15);
    expect(logsumexp(x, 0).itemSync()).toBeCloseTo(
      Math.log(Math.exp(0.5) + Math.exp(1.5) + Math.exp(-2)),
      14,
    );
  });
});
