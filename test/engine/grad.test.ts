import { afterAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import {
  abs,
  add,
  concat,
  crossEntropy,
  div,
  einsum,
  erf,
  exp,
  expand,
  gather,
  gatherElements,
  gelu,
  index,
  indexAdd,
  layerNorm,
  layerNormParts,
  linear,
  log,
  logSoftmax,
  logsumexp,
  maskedFill,
  matmul,
  max,
  maximum,
  mean,
  min,
  minimum,
  mul,
  neg,
  padAxis,
  permute,
  pow,
  reciprocal,
  relu,
  reshape,
  rmsNorm,
  rmsNormParts,
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
  sumTo,
  tanh,
  Tensor,
  topk,
  transpose,
  unsqueeze,
  variance,
  where,
} from '../../src/engine/index.js';
import {
  awayFromZeroT,
  float32Fallbacks,
  gradcheck,
  randnT,
  uniformT,
  type GradcheckOptions,
} from './gradcheck.js';

const rng = new Rng(20240611);
const rn = (...shape: number[]): Tensor => randnT(shape, rng);
const pos = (...shape: number[]): Tensor => uniformT(shape, rng, 0.3, 2.5);
/** |x| in [0.3, 2): safe for relu/abs kinks and for denominators. */
const nz = (...shape: number[]): Tensor => awayFromZeroT(shape, rng, 0.3, 2);
const i64 = (values: number[], shape: number[]): Tensor => Tensor.from(values, shape, 'int64');
const bools = (values: number[], shape: number[]): Tensor => Tensor.from(values, shape, 'bool');

/** Distinct values, spaced >= 0.1 apart, shuffled (for max/topk, whose gradients need a unique winner). */
function distinct(shape: number[], offset = 0.013): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const vals = Array.from({ length: n }, (_, i) => (i - n / 2) * 0.1 + offset);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [vals[i], vals[j]] = [vals[j]!, vals[i]!];
  }
  return Tensor.from(Float32Array.from(vals), shape);
}

interface Case {
  name: string;
  fn: (...xs: Tensor[]) => Tensor;
  inputs: Tensor[];
  opts?: GradcheckOptions;
  /** Expected to fall back to float32 (ORT's CPU provider has no double kernel). */
  f32?: boolean;
}

function run(c: Case): void {
  const res = gradcheck(c.fn, c.inputs, { name: c.name, ...c.opts });
  expect(res.checked).toBeGreaterThan(0);
  expect(res.dtype).toBe(c.f32 ? 'float32' : 'float64');
}

function suite(title: string, cases: Case[]): void {
  describe(title, () => {
    for (const c of cases) it(c.name, () => run(c));
  });
}

// ---------------------------------------------------------------------------------------------------
// Binary elementwise ops with broadcasting.

const binaries: [string, (a: Tensor | number, b: Tensor | number) => Tensor][] = [
  ['add', add],
  ['sub', sub],
  ['mul', mul],
  ['div', div],
];
for (const [name, op] of binaries) {
  // div needs denominators away from zero; the others take any values.
  const rhs = (...s: number[]) => (name === 'div' ? nz(...s) : rn(...s));
  suite(`${name} (broadcasting)`, [
    { name: `${name} [3,4] vs [3,4]`, fn: (a, b) => op(a, b), inputs: [rn(3, 4), rhs(3, 4)] },
    { name: `${name} [3,4] vs [4]`, fn: (a, b) => op(a, b), inputs: [rn(3, 4), rhs(4)] },
    { name: `${name} [4] vs [3,4]`, fn: (a, b) => op(a, b), inputs: [rn(4), rhs(3, 4)] },
    { name: `${name} [2,1,4] vs [3,1]`, fn: (a, b) => op(a, b), inputs: [rn(2, 1, 4), rhs(3, 1)] },
    { name: `${name} tensor vs number`, fn: (a) => op(a, 1.7), inputs: [rn(3, 4)] },
    { name: `${name} number vs tensor`, fn: (b) => op(-0.8, b), inputs: [rhs(3, 4)] },
    { name: `${name} [3,4] vs 0-d tensor`, fn: (a, b) => op(a, b), inputs: [rn(3, 4), rhs()] },
    { name: `${name} same tensor twice`, fn: (a) => op(a, a), inputs: [nz(2, 3)] },
    {
      name: `${name} permuted [4,2,3]->[3,4,2] vs [4,2]`,
      fn: (a, b) => op(permute(a, [2, 0, 1]), b),
      inputs: [rn(4, 2, 3), rhs(4, 2)],
    },
    {
      name: `${name} both permuted`,
      fn: (a, b) => op(permute(a, [1, 0, 2]), transpose(b, 0, 2)),
      inputs: [rn(3, 2, 4), rhs(4, 3, 2)],
    },
  ]);
}

suite('maximum / minimum', [
  // Offsets keep a and b from ever tying (the gradient is not defined at a tie).
  {
    name: 'maximum [3,4] vs [4]',
    fn: (a, b) => maximum(a, b),
    inputs: [distinct([3, 4]), distinct([4], 0.061)],
  },
  {
    name: 'minimum [3,4] vs [3,4]',
    fn: (a, b) => minimum(a, b),
    inputs: [distinct([3, 4]), distinct([3, 4], 0.061)],
  },
]);

// ---------------------------------------------------------------------------------------------------
// Unary ops.

suite('unary', [
  { name: 'neg', fn: (x) => neg(x), inputs: [rn(3, 4)] },
  { name: 'exp', fn: (x) => exp(x), inputs: [rn(3, 4)] },
  { name: 'log (positive)', fn: (x) => log(x), inputs: [pos(3, 4)] },
  { name: 'sqrt (positive)', fn: (x) => sqrt(x), inputs: [pos(3, 4)] },
  { name: 'reciprocal', fn: (x) => reciprocal(x), inputs: [nz(3, 4)] },
  { name: 'abs (away from 0)', fn: (x) => abs(x), inputs: [nz(3, 4)] },
  { name: 'tanh', fn: (x) => tanh(x), inputs: [rn(3, 4)] },
  { name: 'sigmoid', fn: (x) => sigmoid(x), inputs: [rn(3, 4)] },
  { name: 'relu (away from 0)', fn: (x) => relu(x), inputs: [nz(3, 4)] },
  { name: 'erf', fn: (x) => erf(x), inputs: [rn(3, 4)], f32: true },
  { name: 'silu', fn: (x) => silu(x), inputs: [rn(3, 4)] },
  { name: "gelu 'none'", fn: (x) => gelu(x, 'none'), inputs: [rn(3, 4)], f32: true },
  { name: "gelu 'tanh'", fn: (x) => gelu(x, 'tanh'), inputs: [rn(3, 4)] },
  { name: 'pow 2', fn: (x) => pow(x, 2), inputs: [rn(3, 4)] },
  { name: 'pow 3', fn: (x) => pow(x, 3), inputs: [rn(3, 4)] },
  { name: 'pow 0.5 (positive)', fn: (x) => pow(x, 0.5), inputs: [pos(3, 4)] },
  { name: 'pow -1.5 (positive)', fn: (x) => pow(x, -1.5), inputs: [pos(3, 4)] },
  { name: 'tanh on permuted input', fn: (x) => tanh(permute(x, [2, 0, 1])), inputs: [rn(2, 3, 4)] },
]);

// ---------------------------------------------------------------------------------------------------
// where / maskedFill.

const cond34 = bools([1, 0, 0, 1, 1, 1, 0, 0, 0, 1, 0, 1], [3, 4]);
suite('where / maskedFill', [
  { name: 'where both branches [3,4]', fn: (a, b) => where(cond34, a, b), inputs: [rn(3, 4), rn(3, 4)] },
  { name: 'where broadcast b [4]', fn: (a, b) => where(cond34, a, b), inputs: [rn(3, 4), rn(4)] },
  {
    name: 'where broadcast cond [4] over a [3,4], b [3,1]',
    fn: (a, b) => where(bools([1, 0, 1, 0], [4]), a, b),
    inputs: [rn(3, 4), rn(3, 1)],
  },
  { name: 'where number branch', fn: (a) => where(cond34, a, 0.5), inputs: [rn(3, 4)] },
  { name: 'maskedFill', fn: (x) => maskedFill(x, cond34, -3), inputs: [rn(3, 4)] },
]);

// ---------------------------------------------------------------------------------------------------
// Reductions.

suite('reductions', [
  { name: 'sum all', fn: (x) => sum(x), inputs: [rn(3, 4)] },
  { name: 'sum axis 1', fn: (x) => sum(x, 1), inputs: [rn(2, 3, 4)] },
  { name: 'sum axes [0,2] keepdim', fn: (x) => sum(x, [0, 2], true), inputs: [rn(2, 3, 4)] },
  { name: 'mean axis -1', fn: (x) => mean(x, -1), inputs: [rn(2, 3, 4)] },
  { name: 'mean all', fn: (x) => mean(x), inputs: [rn(2, 3)] },
  { name: 'max axis 1 (unique max)', fn: (x) => max(x, 1), inputs: [distinct([3, 5])] },
  { name: 'max all (unique max)', fn: (x) => max(x), inputs: [distinct([3, 5])] },
  {
    name: 'max axis -1 keepdim on permuted',
    fn: (x) => max(permute(x, [1, 0]), -1, true),
    inputs: [distinct([4, 3])],
  },
  { name: 'min axis 0 keepdim', fn: (x) => min(x, 0, true), inputs: [distinct([3, 5])] },
  { name: 'topk values k=3 axis -1', fn: (x) => topk(x, 3).values, inputs: [distinct([3, 6])] },
  { name: 'topk values k=2 axis 0', fn: (x) => topk(x, 2, 0).values, inputs: [distinct([4, 3])] },
  { name: 'logsumexp axis -1', fn: (x) => logsumexp(x, -1), inputs: [rn(3, 5)] },
  { name: 'logsumexp axis 0 keepdim', fn: (x) => logsumexp(x, 0, true), inputs: [rn(3, 5)] },
  { name: 'variance axis -1', fn: (x) => variance(x, -1), inputs: [rn(3, 5)] },
  { name: 'variance unbiased all', fn: (x) => variance(x, undefined, false, true), inputs: [rn(3, 5)] },
]);

// ---------------------------------------------------------------------------------------------------
// Shape ops.

suite('shape ops', [
  { name: 'reshape', fn: (x, c) => mul(reshape(x, [4, -1]), c), inputs: [rn(2, 6), rn(4, 3)] },
  {
    name: 'unsqueeze / squeeze',
    fn: (x, c) => squeeze(mul(unsqueeze(x, 1), c), 1),
    inputs: [rn(3, 4), rn(3, 1, 4)],
  },
  { name: 'permute [2,0,1]', fn: (x) => permute(x, [2, 0, 1]), inputs: [rn(2, 3, 4)] },
  { name: 'transpose', fn: (x) => transpose(x), inputs: [rn(2, 3, 4)] },
  { name: 'slice negative start', fn: (x) => slice(x, 1, -5), inputs: [rn(4, 7)] },
  { name: 'slice negative end', fn: (x) => slice(x, 0, 1, -1), inputs: [rn(4, 7)] },
  { name: 'slice step 2', fn: (x) => slice(x, 1, 1, undefined, 2), inputs: [rn(4, 7)] },
  { name: 'slice step 3 negative start', fn: (x) => slice(x, -1, -6, 7, 3), inputs: [rn(4, 7)] },
  { name: 'slice of permuted', fn: (x) => slice(permute(x, [1, 0]), 0, 2, 6, 2), inputs: [rn(4, 7)] },
  { name: 'padAxis', fn: (x) => padAxis(x, 1, 2, 1), inputs: [rn(3, 4)] },
  { name: 'index', fn: (x) => index(x, 1, -2), inputs: [rn(3, 4)] },
  {
    name: 'concat axis 1 (3 tensors)',
    fn: (a, b, c) => concat([a, b, c], 1),
    inputs: [rn(2, 1, 3), rn(2, 3, 3), rn(2, 2, 3)],
  },
  { name: 'concat axis -1', fn: (a, b) => concat([a, b], -1), inputs: [rn(2, 3), rn(2, 2)] },
  { name: 'stack axis 0', fn: (a, b) => stack([a, b], 0), inputs: [rn(2, 3), rn(2, 3)] },
  { name: 'stack axis -1', fn: (a, b, c) => stack([a, b, c], -1), inputs: [rn(2, 3), rn(2, 3), rn(2, 3)] },
  { name: 'expand [3,1] -> [2,3,4]', fn: (x) => expand(x, [2, 3, 4]), inputs: [rn(3, 1)] },
  // Regression (fixed in src/engine/ops/shape.ts sumTo): sumTo is exported but runs its ReduceSum through exec() without a
  // backward, so when any axis is summed the result silently drops out of the autodiff graph
  // (requiresGrad false) while the reshape-only path stays differentiable. Repro:
  //   const x = Tensor.zeros([2, 3, 4]).requireGrad(); sumTo(x, [3, 1]).requiresGrad === false
  { name: 'sumTo [2,3,4] -> [3,1]', fn: (x) => sumTo(x, [3, 1]), inputs: [rn(2, 3, 4)] },
]);

// ---------------------------------------------------------------------------------------------------
// Indexing ops (indices have repeats so gradients must accumulate).

const ids = i64([1, 3, 3, 7, 1, 0, 3, 9, 9, 2], [2, 5]);
const ge2 = i64([0, 2, 2, 3, 1, 1, 1, 0, 3, 3, 0, 2, 1, 3, 3], [3, 5]);
suite('indexing', [
  {
    name: 'gather embedding W[10,4] ids[2,5] with repeats',
    fn: (w) => gather(w, 0, ids),
    inputs: [rn(10, 4)],
  },
  { name: 'gather axis 1 with repeats', fn: (x) => gather(x, 1, i64([2, 0, 2], [3])), inputs: [rn(2, 4, 3)] },
  {
    name: 'gather axis -1 2-D indices',
    fn: (x) => gather(x, -1, i64([0, 1, 1, 3], [2, 2])),
    inputs: [rn(2, 3, 4)],
  },
  {
    name: 'indexAdd axis 0 (x and src)',
    fn: (x, s) => indexAdd(x, 0, i64([1, 3, 1, 0], [4]), s),
    inputs: [rn(5, 3), rn(4, 3)],
  },
  // Regression (fixed in src/engine/ops/shape.ts indexAdd): the ScatterND backward returns the src gradient as
  // permute(gather(g, 0, indices), invertPerm(srcPerm)), but that ScatterND input is `sf`, which is already
  // permute(src, srcPerm); the permute op's own backward then applies the inverse a second time. Harmless for
  // axis 0 (srcPerm is the identity), wrong for axis >= 1: wrong values here, a wrong-shaped grad below. Fix:
  // return gather(g, 0, indices) for sf. Repro:
  //   const s = Tensor.zeros([2, 4, 3]).requireGrad();
  //   sum(indexAdd(Tensor.zeros([2, 5, 3]), 1, Tensor.from([0, 1, 1, 4], [4], 'int64'), s)).backward();
  //   s.grad.shape -> [4, 2, 3] (expected [2, 4, 3], all ones)
  {
    name: 'indexAdd axis 1 (x and src)',
    fn: (x, s) => indexAdd(x, 1, i64([0, 1, 1, 4], [4]), s),
    inputs: [rn(2, 5, 3), rn(2, 4, 3)],
  },
  {
    name: 'indexAdd axis 1 2-D indices (x and src)',
    fn: (x, s) => indexAdd(x, 1, i64([4, 0, 4, 2], [2, 2]), s),
    inputs: [rn(2, 5, 3), rn(2, 2, 2, 3)],
  },
  { name: 'gatherElements axis 1', fn: (x) => gatherElements(x, 1, ge2), inputs: [rn(3, 4)] },
  {
    name: 'gatherElements axis 0',
    fn: (x) => gatherElements(x, 0, i64([0, 2, 2, 1, 1, 0], [2, 3])),
    inputs: [rn(3, 3)],
  },
  {
    name: 'scatterAdd axis 1 (x and src)',
    fn: (x, s) => scatterAdd(x, 1, ge2, s),
    inputs: [rn(3, 4), rn(3, 5)],
  },
  {
    name: 'scatterAdd axis 0 (x and src)',
    fn: (x, s) => scatterAdd(x, 0, i64([0, 2, 2, 1, 1, 0], [2, 3]), s),
    inputs: [rn(3, 3), rn(2, 3)],
  },
]);

// ---------------------------------------------------------------------------------------------------
// Neural-network ops.

suite('matmul / linear / einsum', [
  { name: 'matmul [3,4] @ [4,5]', fn: (a, b) => matmul(a, b), inputs: [rn(3, 4), rn(4, 5)] },
  { name: 'matmul [2,3,4,5] @ [5,6]', fn: (a, b) => matmul(a, b), inputs: [rn(2, 3, 4, 5), rn(5, 6)] },
  { name: 'matmul [2,1,4,5] @ [3,5,2]', fn: (a, b) => matmul(a, b), inputs: [rn(2, 1, 4, 5), rn(3, 5, 2)] },
  { name: 'matmul [4,3] @ [2,3,5]', fn: (a, b) => matmul(a, b), inputs: [rn(4, 3), rn(2, 3, 5)] },
  {
    name: 'matmul of transposed/permuted operands',
    fn: (a, b) => matmul(transpose(a), permute(b, [2, 0, 1])),
    inputs: [rn(2, 4, 3), rn(4, 5, 2)],
  },
  { name: 'matmul same operand', fn: (a) => matmul(a, transpose(a)), inputs: [rn(3, 4)] },
  { name: 'linear with bias', fn: (x, w, b) => linear(x, w, b), inputs: [rn(2, 3, 4), rn(5, 4), rn(5)] },
  { name: 'linear without bias', fn: (x, w) => linear(x, w), inputs: [rn(3, 4), rn(5, 4)] },
  {
    name: "einsum 'bij,bjk->bik'",
    fn: (a, b) => einsum('bij,bjk->bik', a, b),
    inputs: [rn(2, 3, 4), rn(2, 4, 2)],
  },
  { name: "einsum 'ij->ji'", fn: (a) => einsum('ij->ji', a), inputs: [rn(3, 4)] },
  { name: "einsum 'ij->i'", fn: (a) => einsum('ij->i', a), inputs: [rn(3, 4)] },
  {
    name: "einsum 'bpd,hd->bph'",
    fn: (x, w) => einsum('bpd,hd->bph', x, w),
    inputs: [rn(2, 3, 4), rn(5, 4)],
  },
  {
    name: "einsum 'ij,jk->k' (i summed out)",
    fn: (a, b) => einsum('ij,jk->k', a, b),
    inputs: [rn(3, 4), rn(4, 2)],
  },
]);

suite('softmax / normalisation / loss', [
  { name: 'softmax axis -1', fn: (x) => softmax(x, -1), inputs: [rn(3, 5)] },
  { name: 'softmax axis 0', fn: (x) => softmax(x, 0), inputs: [rn(3, 5)] },
  { name: 'softmax axis 1 of rank 3', fn: (x) => softmax(x, 1), inputs: [rn(2, 3, 4)] },
  { name: 'softmax on permuted input', fn: (x) => softmax(permute(x, [1, 0]), -1), inputs: [rn(4, 3)] },
  { name: 'logSoftmax axis -1', fn: (x) => logSoftmax(x, -1), inputs: [rn(3, 5)] },
  { name: 'logSoftmax axis 0', fn: (x) => logSoftmax(x, 0), inputs: [rn(3, 5)] },
  {
    name: 'layerNorm with weight and bias (x, w, b)',
    fn: (x, w, b) => layerNorm(x, w, b),
    inputs: [rn(2, 3, 5), rn(5), rn(5)],
  },
  {
    name: 'layerNorm with weight and bias, float32 path',
    fn: (x, w, b) => layerNorm(x, w, b),
    inputs: [rn(2, 5), rn(5), rn(5)],
    opts: { forceFloat32: true },
    f32: true,
  },
  { name: 'layerNorm without affine', fn: (x) => layerNorm(x, null, null), inputs: [rn(3, 5)] },
  {
    name: 'layerNorm on permuted input',
    fn: (x, w, b) => layerNorm(permute(x, [0, 2, 1]), w, b, 1e-3),
    inputs: [rn(2, 4, 3), rn(4), rn(4)],
  },
  { name: 'layerNormParts scale', fn: (x) => layerNormParts(x, 1e-5).scale, inputs: [rn(3, 5)] },
  { name: 'rmsNorm with weight (x, w)', fn: (x, w) => rmsNorm(x, w), inputs: [rn(2, 3, 5), rn(5)] },
  { name: 'rmsNorm without weight', fn: (x) => rmsNorm(x, null), inputs: [rn(3, 5)] },
  { name: 'rmsNormParts scale', fn: (x) => rmsNormParts(x, 1e-6).scale, inputs: [rn(3, 5)] },
  {
    name: 'crossEntropy mean (int64 targets)',
    fn: (l, t) => crossEntropy(l, t),
    inputs: [rn(2, 3, 5), i64([0, 4, 2, 2, 1, 3], [2, 3])],
  },
  {
    name: 'crossEntropy sum',
    fn: (l, t) => crossEntropy(l, t, 'sum'),
    inputs: [rn(4, 6), i64([5, 0, 0, 3], [4])],
  },
  {
    name: 'crossEntropy none',
    fn: (l, t) => crossEntropy(l, t, 'none'),
    inputs: [rn(4, 6), i64([1, 2, 5, 1], [4])],
  },
]);

// ---------------------------------------------------------------------------------------------------
// Composite: a one-layer causal self-attention block with two heads and a residual.

const T = 4;
const D = 6;
const H = 2;
const causal = bools(
  Array.from({ length: T * T }, (_, k) => (k % T > Math.floor(k / T) ? 1 : 0)),
  [T, T],
);

function attention(useWhere: boolean) {
  return (x: Tensor, wq: Tensor, wk: Tensor, wv: Tensor, wo: Tensor, bo: Tensor): Tensor => {
    const [b, t] = x.shape as [number, number, number];
    const heads = (y: Tensor) => permute(reshape(y, [b, t, H, D / H]), [0, 2, 1, 3]);
    const q = heads(linear(x, wq));
    const k = heads(linear(x, wk));
    const v = heads(linear(x, wv));
    let scores = mul(matmul(q, transpose(k)), 1 / Math.sqrt(D / H));
    scores = useWhere
      ? where(causal, Tensor.scalar(-1e9, scores.dtype), scores)
      : maskedFill(scores, causal, -1e9);
    const p = softmax(scores, -1);
    const o = reshape(permute(matmul(p, v), [0, 2, 1, 3]), [b, t, D]);
    return add(x, linear(o, wo, bo));
  };
}
const attnInputs = (): Tensor[] => [
  rn(2, T, D),
  randnT([D, D], rng, 0.5),
  randnT([D, D], rng, 0.5),
  randnT([D, D], rng, 0.5),
  randnT([D, D], rng, 0.5),
  rn(D),
];
suite('composite attention block', [
  { name: 'attention (maskedFill) wrt x and all weights', fn: attention(false), inputs: attnInputs() },
  { name: 'attention (where) wrt x and all weights', fn: attention(true), inputs: attnInputs() },
  {
    name: 'attention + layerNorm + gelu(tanh) MLP, loss = crossEntropy',
    fn: (x, wq, wk, wv, wo, bo, w1, w2, lnw, lnb) => {
      const h = attention(false)(x, wq, wk, wv, wo, bo);
      const n = layerNorm(h, lnw, lnb);
      const logits = linear(gelu(linear(n, w1), 'tanh'), w2);
      return crossEntropy(logits, i64([0, 1, 2, 3, 4, 5, 0, 1], [2, T]));
    },
    inputs: [...attnInputs(), randnT([8, D], rng, 0.5), randnT([D, 8], rng, 0.5), rn(D), rn(D)],
  },
]);

describe('gradcheck itself', () => {
  it('catches a wrong gradient', () => {
    // A deliberately wrong gradient: detaching one factor makes autodiff give x where d/dx (x * x) = 2x.
    const bad = (x: Tensor) => mul(x, x.detach());
    expect(() => gradcheck(bad, [rn(3)], { name: 'deliberately wrong' })).toThrow(/gradients differ/);
  });
  it('checks only the inputs named in wrt', () => {
    const res = gradcheck((a, b) => mul(a, b), [rn(3), rn(3)], { wrt: [1] });
    expect(res.checked).toBe(3);
  });
});

afterAll(() => {
  if (float32Fallbacks.size) {
    const lines = [...float32Fallbacks].map(([k, v]) => `  ${k}: ${v}`).join('\n');
    console.info(`gradcheck fell back to float32 (no double kernel in ORT CPU) for:\n${lines}`);
  }
});
