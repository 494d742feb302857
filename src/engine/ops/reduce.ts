import { ShapeError } from '../../errors.js';
import { exec, Tensor } from '../tensor.js';
import { add as add_, div, eq, exp, log, mul, sub } from './elementwise.js';
import { i64, int, node1, normAxis, withConsts } from './kernel.js';
import { cast, expand, reshape, scatterAdd } from './shape.js';

function axesOf(x: Tensor, axis?: number | number[]): number[] {
  if (axis === undefined) return x.shape.map((_, i) => i);
  const list = Array.isArray(axis) ? axis : [axis];
  return [...new Set(list.map((a) => normAxis(a, x.rank)))].sort((a, b) => a - b);
}

function keptShape(x: Tensor, axes: number[]): number[] {
  return x.shape.map((d, i) => (axes.includes(i) ? 1 : d));
}

function dropShape(x: Tensor, axes: number[]): number[] {
  return x.shape.filter((_, i) => !axes.includes(i));
}

function reduce(op: string, x: Tensor, axes: number[], keepdim: boolean): Tensor {
  const kernel = withConsts(node1(op, 2, { keepdims: int(1) }), [i64(axes)]);
  const [y] = exec(kernel, [x]);
  return keepdim ? y! : reshape(y!, dropShape(x, axes));
}

/** Sum over the given axes (all when omitted). */
export function sum(x: Tensor, axis?: number | number[], keepdim = false): Tensor {
  const axes = axesOf(x, axis);
  if (axes.length === 0) return x;
  const kernel = withConsts(node1('ReduceSum', 2, { keepdims: int(1) }), [i64(axes)]);
  const [y] = exec(kernel, [x], ([g]) => [expand(reshape(g!, keptShape(x, axes)), x.shape)]);
  return keepdim ? y! : reshape(y!, dropShape(x, axes));
}

export function mean(x: Tensor, axis?: number | number[], keepdim = false): Tensor {
  const axes = axesOf(x, axis);
  const n = axes.reduce((p, a) => p * x.shape[a]!, 1);
  return div(sum(x, axes, keepdim), n);
}

/** Max over axes; the gradient is shared equally among tied maxima. */
export function max(x: Tensor, axis?: number | number[], keepdim = false): Tensor {
  return extremum('ReduceMax', x, axis, keepdim);
}
export function min(x: Tensor, axis?: number | number[], keepdim = false): Tensor {
  return extremum('ReduceMin', x, axis, keepdim);
}

function extremum(op: string, x: Tensor, axis: number | number[] | undefined, keepdim: boolean): Tensor {
  const axes = axesOf(x, axis);
  const kernel = withConsts(node1(op, 2, { keepdims: int(1) }), [i64(axes)]);
  const [y] = exec(kernel, [x], ([g], [out]) => {
    const hit = cast(eq(x, out!), x.dtype);
    const count = reduce('ReduceSum', hit, axes, true);
    return [mul(div(hit, count), reshape(g!, keptShape(x, axes)))];
  });
  return keepdim ? y! : reshape(y!, dropShape(x, axes));
}

/** Index of the maximum along an axis (first one on ties), as int64. */
export function argmax(x: Tensor, axis = -1, keepdim = false): Tensor {
  const a = normAxis(axis, x.rank);
  const [y] = exec(
    node1('ArgMax', 1, { axis: int(a), keepdims: int(keepdim ? 1 : 0), select_last_index: int(0) }),
    [x],
  );
  return y!;
}

/** The k largest values along an axis, sorted descending, and their int64 indices. */
export function topk(x: Tensor, k: number, axis = -1): { values: Tensor; indices: Tensor } {
  const a = normAxis(axis, x.rank);
  if (!Number.isInteger(k) || k < 1 || k > x.shape[a]!) {
    throw new ShapeError(`topk: k=${k} must be between 1 and ${x.shape[a]} (the size of axis ${axis})`);
  }
  const kernel = withConsts(node1('TopK', 2, { axis: int(a), largest: int(1), sorted: int(1) }, 2), [
    i64([k]),
  ]);
  const [values, indices] = exec(kernel, [x], ([g], outs) => [
    scatterAdd(Tensor.zeros(x.shape, g!.dtype), a, outs[1]!, g!),
  ]);
  return { values: values!, indices: indices! };
}

/** log(sum(exp(x))) along an axis, stable. */
export function logsumexp(x: Tensor, axis = -1, keepdim = false): Tensor {
  const a = normAxis(axis, x.rank);
  const m = reduceNoGrad('ReduceMax', x, [a]);
  const s = add_(log(sum(exp(sub(x, m)), a, true)), m);
  return keepdim ? s : reshape(s, dropShape(x, [a]));
}

function reduceNoGrad(op: string, x: Tensor, axes: number[]): Tensor {
  return reduce(op, x.detach(), axes, true);
}

/** Variance (biased unless unbiased=true). */
export function variance(x: Tensor, axis?: number | number[], keepdim = false, unbiased = false): Tensor {
  const axes = axesOf(x, axis);
  const n = axes.reduce((p, a) => p * x.shape[a]!, 1);
  const c = sub(x, mean(x, axes, true));
  return div(sum(mul(c, c), axes, keepdim), unbiased ? n - 1 : n);
}
