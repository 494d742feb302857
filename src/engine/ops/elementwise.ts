import { ShapeError } from '../../errors.js';
import type { RawTensor } from '../backend/backend.js';
import { exec, Tensor } from '../tensor.js';
import { asTensor, broadcastShapes, graphKernel, node1, scalarRaw, withConsts } from './kernel.js';
import { sumTo } from './shape.js';

type Operand = Tensor | number;

function checkDtypes(op: string, a: Tensor, b: Tensor): void {
  if (a.dtype !== b.dtype)
    throw new ShapeError(`${op}: dtypes differ (${a.dtype} vs ${b.dtype}); cast one first`);
}

function binary(
  op: string,
  aIn: Operand,
  bIn: Operand,
  grad: (g: Tensor, a: Tensor, b: Tensor, y: Tensor) => [Tensor, Tensor],
): Tensor {
  const like = aIn instanceof Tensor ? aIn : (bIn as Tensor);
  const a = asTensor(aIn, like);
  const b = asTensor(bIn, like);
  checkDtypes(op, a, b);
  broadcastShapes(a.shape, b.shape);
  const [y] = exec(node1(op, 2), [a, b], ([g], [out]) => {
    const [ga, gb] = grad(g!, a, b, out!);
    return [a.requiresGrad ? sumTo(ga, a.shape) : null, b.requiresGrad ? sumTo(gb, b.shape) : null];
  });
  return y!;
}

export const add = (a: Operand, b: Operand): Tensor => binary('Add', a, b, (g) => [g, g]);
export const sub = (a: Operand, b: Operand): Tensor => binary('Sub', a, b, (g) => [g, neg(g)]);
export const mul = (a: Operand, b: Operand): Tensor =>
  binary('Mul', a, b, (g, x, y) => [mul(g, y), mul(g, x)]);
export const div = (a: Operand, b: Operand): Tensor =>
  binary('Div', a, b, (g, x, y, out) => [div(g, y), neg(div(mul(g, out), y))]);

export function neg(x: Tensor): Tensor {
  const [y] = exec(node1('Neg', 1), [x], ([g]) => [neg(g!)]);
  return y!;
}

/** y = f(x) with a fused gradient kernel g * f'(x, y). */
function unary(op: string, x: Tensor, gradKernel?: (g: Tensor, x: Tensor, y: Tensor) => Tensor): Tensor {
  const [y] = exec(node1(op, 1), [x], gradKernel ? ([g], [out]) => [gradKernel(g!, x, out!)] : undefined);
  return y!;
}

/** Runs a small fused graph over (x0, x1, ...) with scalar constants c0, c1, ... of x0's dtype. */
function fused(
  key: string,
  inputs: Tensor[],
  scalars: number[],
  nodes: () => import('../backend/backend.js').OnnxNode[],
): Tensor {
  const consts: RawTensor[] = scalars.map((s) => scalarRaw(s, inputs[0]!.dtype));
  const [y] = exec(withConsts(graphKernel(key, inputs.length, 1, nodes), consts), inputs);
  return y!;
}

export const exp = (x: Tensor): Tensor => unary('Exp', x, (g, _x, y) => mul(g, y));
export const log = (x: Tensor): Tensor => unary('Log', x, (g, xx) => div(g, xx));
export const sqrt = (x: Tensor): Tensor => unary('Sqrt', x, (g, _x, y) => div(mul(g, 0.5), y));
export const reciprocal = (x: Tensor): Tensor => unary('Reciprocal', x, (g, _x, y) => neg(mul(g, mul(y, y))));
export const abs = (x: Tensor): Tensor => unary('Abs', x, (g, xx) => mul(g, sign(xx)));
export const sign = (x: Tensor): Tensor => unary('Sign', x);

export const tanh = (x: Tensor): Tensor =>
  unary('Tanh', x, (g, _x, y) =>
    // g * (1 - y^2)
    fused('tanh_grad', [g, y], [1], () => [
      { op: 'Mul', inputs: ['x1', 'x1'], outputs: ['t0'] },
      { op: 'Sub', inputs: ['c0', 't0'], outputs: ['t1'] },
      { op: 'Mul', inputs: ['x0', 't1'], outputs: ['y0'] },
    ]),
  );

export const sigmoid = (x: Tensor): Tensor =>
  unary('Sigmoid', x, (g, _x, y) =>
    fused('sigmoid_grad', [g, y], [1], () => [
      { op: 'Sub', inputs: ['c0', 'x1'], outputs: ['t0'] },
      { op: 'Mul', inputs: ['x1', 't0'], outputs: ['t1'] },
      { op: 'Mul', inputs: ['x0', 't1'], outputs: ['y0'] },
    ]),
  );

export const relu = (x: Tensor): Tensor =>
  unary('Relu', x, (g, xx) =>
    fused('relu_grad', [g, xx], [0], () => [
      { op: 'Greater', inputs: ['x1', 'c0'], outputs: ['t0'] },
      { op: 'Where', inputs: ['t0', 'x0', 'c0'], outputs: ['y0'] },
    ]),
  );

export const erf = (x: Tensor): Tensor =>
  unary('Erf', x, (g, xx) =>
    // g * 2/sqrt(pi) * exp(-x^2)
    fused('erf_grad', [g, xx], [2 / Math.sqrt(Math.PI)], () => [
      { op: 'Mul', inputs: ['x1', 'x1'], outputs: ['t0'] },
      { op: 'Neg', inputs: ['t0'], outputs: ['t1'] },
      { op: 'Exp', inputs: ['t1'], outputs: ['t2'] },
      { op: 'Mul', inputs: ['t2', 'c0'], outputs: ['t3'] },
      { op: 'Mul', inputs: ['x0', 't3'], outputs: ['y0'] },
    ]),
  );

/** x * sigmoid(x), fused forward and backward. */
export function silu(x: Tensor): Tensor {
  const consts = [scalarRaw(1, x.dtype)];
  const fwd = withConsts(
    graphKernel('silu', 1, 1, () => [
      { op: 'Sigmoid', inputs: ['x0'], outputs: ['t0'] },
      { op: 'Mul', inputs: ['x0', 't0'], outputs: ['y0'] },
    ]),
    [],
  );
  const [y] = exec(fwd, [x], ([g]) => [
    // g * s * (1 + x (1 - s))
    exec(
      withConsts(
        graphKernel('silu_grad', 2, 1, () => [
          { op: 'Sigmoid', inputs: ['x1'], outputs: ['s'] },
          { op: 'Sub', inputs: ['c0', 's'], outputs: ['t0'] },
          { op: 'Mul', inputs: ['x1', 't0'], outputs: ['t1'] },
          { op: 'Add', inputs: ['c0', 't1'], outputs: ['t2'] },
          { op: 'Mul', inputs: ['s', 't2'], outputs: ['t3'] },
          { op: 'Mul', inputs: ['x0', 't3'], outputs: ['y0'] },
        ]),
        consts,
      ),
      [g!, x],
    )[0]!,
  ]);
  return y!;
}

/** GELU: exact (erf) or 'tanh' (GPT-2's gelu_new). */
export function gelu(x: Tensor, approximate: 'none' | 'tanh' = 'none'): Tensor {
  const [y] = exec(node1('Gelu', 1, { approximate: { s: approximate } }), [x], ([g]) => [
    approximate === 'none' ? geluExactGrad(g!, x) : geluTanhGrad(g!, x),
  ]);
  return y!;
}

function geluExactGrad(g: Tensor, x: Tensor): Tensor {
  // d/dx x*Phi(x) = Phi(x) + x*phi(x)
  return fused('gelu_grad', [g, x], [Math.SQRT1_2, 0.5, 1, 1 / Math.sqrt(2 * Math.PI)], () => [
    { op: 'Mul', inputs: ['x1', 'c0'], outputs: ['t0'] },
    { op: 'Erf', inputs: ['t0'], outputs: ['t1'] },
    { op: 'Add', inputs: ['t1', 'c2'], outputs: ['t2'] },
    { op: 'Mul', inputs: ['t2', 'c1'], outputs: ['cdf'] },
    { op: 'Mul', inputs: ['x1', 'x1'], outputs: ['t3'] },
    { op: 'Mul', inputs: ['t3', 'c1'], outputs: ['t4'] },
    { op: 'Neg', inputs: ['t4'], outputs: ['t5'] },
    { op: 'Exp', inputs: ['t5'], outputs: ['t6'] },
    { op: 'Mul', inputs: ['t6', 'c3'], outputs: ['pdf'] },
    { op: 'Mul', inputs: ['x1', 'pdf'], outputs: ['t7'] },
    { op: 'Add', inputs: ['cdf', 't7'], outputs: ['t8'] },
    { op: 'Mul', inputs: ['x0', 't8'], outputs: ['y0'] },
  ]);
}

function geluTanhGrad(g: Tensor, x: Tensor): Tensor {
  // u = k (x + a x^3); y = 0.5 x (1 + tanh u); y' = 0.5 (1 + t) + 0.5 x (1 - t^2) k (1 + 3 a x^2)
  const k = Math.sqrt(2 / Math.PI);
  return fused('gelu_tanh_grad', [g, x], [0.044715, k, 0.5, 1, 3 * 0.044715], () => [
    { op: 'Mul', inputs: ['x1', 'x1'], outputs: ['x2'] },
    { op: 'Mul', inputs: ['x2', 'x1'], outputs: ['x3'] },
    { op: 'Mul', inputs: ['x3', 'c0'], outputs: ['t0'] },
    { op: 'Add', inputs: ['x1', 't0'], outputs: ['t1'] },
    { op: 'Mul', inputs: ['t1', 'c1'], outputs: ['u'] },
    { op: 'Tanh', inputs: ['u'], outputs: ['t'] },
    { op: 'Add', inputs: ['t', 'c3'], outputs: ['t2'] },
    { op: 'Mul', inputs: ['t2', 'c2'], outputs: ['left'] },
    { op: 'Mul', inputs: ['t', 't'], outputs: ['t3'] },
    { op: 'Sub', inputs: ['c3', 't3'], outputs: ['sech2'] },
    { op: 'Mul', inputs: ['x2', 'c4'], outputs: ['t4'] },
    { op: 'Add', inputs: ['t4', 'c3'], outputs: ['t5'] },
    { op: 'Mul', inputs: ['t5', 'c1'], outputs: ['du'] },
    { op: 'Mul', inputs: ['x1', 'c2'], outputs: ['hx'] },
    { op: 'Mul', inputs: ['hx', 'sech2'], outputs: ['t6'] },
    { op: 'Mul', inputs: ['t6', 'du'], outputs: ['right'] },
    { op: 'Add', inputs: ['left', 'right'], outputs: ['dy'] },
    { op: 'Mul', inputs: ['x0', 'dy'], outputs: ['y0'] },
  ]);
}

/** x ** p for a constant exponent. */
export function pow(x: Tensor, p: number): Tensor {
  const [y] = exec(withConsts(node1('Pow', 2), [scalarRaw(p, x.dtype)]), [x], ([g]) => [
    mul(g!, mul(pow(x, p - 1), p)),
  ]);
  return y!;
}

/** where(cond, a, b) with broadcasting; cond is a bool tensor. */
export function where(cond: Tensor, aIn: Operand, bIn: Operand): Tensor {
  if (cond.dtype !== 'bool') throw new ShapeError(`where: condition must be bool, got ${cond.dtype}`);
  const like = aIn instanceof Tensor ? aIn : (bIn as Tensor);
  const a = asTensor(aIn, like);
  const b = asTensor(bIn, like);
  checkDtypes('where', a, b);
  const [y] = exec(node1('Where', 3), [cond, a, b], ([g]) => {
    const zero = Tensor.scalar(0, g!.dtype);
    return [
      null,
      a.requiresGrad ? sumTo(where(cond, g!, zero), a.shape) : null,
      b.requiresGrad ? sumTo(where(cond, zero, g!), b.shape) : null,
    ];
  });
  return y!;
}

/** Replaces entries where mask is true with value (mask broadcasts to x). */
export function maskedFill(x: Tensor, mask: Tensor, value: number): Tensor {
  return where(mask, Tensor.scalar(value, x.dtype), x);
}

function compare(op: string, a: Operand, b: Operand): Tensor {
  const like = a instanceof Tensor ? a : (b as Tensor);
  const [y] = exec(node1(op, 2), [asTensor(a, like), asTensor(b, like)]);
  return y!;
}
export const gt = (a: Operand, b: Operand): Tensor => compare('Greater', a, b);
export const lt = (a: Operand, b: Operand): Tensor => compare('Less', a, b);
export const ge = (a: Operand, b: Operand): Tensor => compare('GreaterOrEqual', a, b);
export const le = (a: Operand, b: Operand): Tensor => compare('LessOrEqual', a, b);
export const eq = (a: Operand, b: Operand): Tensor => compare('Equal', a, b);

export function logicalNot(x: Tensor): Tensor {
  return exec(node1('Not', 1), [x])[0]!;
}

export function maximum(a: Tensor, b: Tensor): Tensor {
  return where(ge(a, b), a, b);
}
export function minimum(a: Tensor, b: Tensor): Tensor {
  return where(le(a, b), a, b);
}
