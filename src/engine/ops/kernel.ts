import { ShapeError } from '../../errors.js';
import type { Attr, Kernel, OnnxNode, RawTensor } from '../backend/backend.js';
import { allocate, type DType } from '../dtype.js';
import { Tensor } from '../tensor.js';

const kernelCache = new Map<string, Kernel>();
const positional = new WeakSet<Kernel>();

/** A single-node kernel x0..x{n-1} -> y0..; cached by op and attributes. */
export function node1(
  op: string,
  nIn: number,
  attrs?: Record<string, Attr>,
  nOut = 1,
  domain?: string,
): Kernel {
  const key = `${op}${domain ? '@' + domain : ''}:${nIn}:${nOut}:${attrs ? JSON.stringify(attrs) : ''}`;
  let k = kernelCache.get(key);
  if (!k) {
    const node: OnnxNode = {
      op,
      inputs: Array.from({ length: nIn }, (_, i) => `x${i}`),
      outputs: Array.from({ length: nOut }, (_, i) => `y${i}`),
      attrs,
      domain,
    };
    k = { key, nodes: [node], nIn, nOut };
    positional.add(k);
    kernelCache.set(key, k);
  }
  return k;
}

const constKernelCache = new Map<string, Kernel>();

/**
 * A kernel with runtime constant inputs (slice bounds, shapes, scalars). For a node1 kernel the last
 * consts.length inputs become c0..; graphKernel nodes name their constants c0.. themselves.
 */
export function withConsts(k: Kernel, consts: RawTensor[]): Kernel {
  if (!positional.has(k) || consts.length === 0) return { ...k, consts };
  const key = `${k.key}#${consts.length}`;
  let mapped = constKernelCache.get(key);
  if (!mapped) {
    const nTensors = k.nIn - consts.length;
    const nodes = k.nodes.map((n) => ({
      ...n,
      inputs: n.inputs.map((name, j) => (j < nTensors ? name : `c${j - nTensors}`)),
    }));
    mapped = { key, nodes, nIn: nTensors, nOut: k.nOut };
    constKernelCache.set(key, mapped);
  }
  return { ...mapped, consts };
}

/** A multi-node kernel built once per key. */
export function graphKernel(key: string, nIn: number, nOut: number, build: () => OnnxNode[]): Kernel {
  let k = kernelCache.get(key);
  if (!k) {
    k = { key, nodes: build(), nIn, nOut };
    kernelCache.set(key, k);
  }
  return k;
}

export function i64(values: readonly number[]): RawTensor {
  return { dtype: 'int64', shape: [values.length], data: BigInt64Array.from(values, (v) => BigInt(v)) };
}

export function scalarRaw(value: number, dtype: DType): RawTensor {
  const data = allocate(dtype, 1);
  if (data instanceof BigInt64Array) data[0] = BigInt(value);
  else data[0] = value;
  return { dtype, shape: [], data };
}

export const int = (i: number): Attr => ({ i });
export const float = (f: number): Attr => ({ f });
export const ints = (v: number[]): Attr => ({ ints: v });

export function normAxis(axis: number, rank: number, what = 'axis'): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= Math.max(rank, 1)) {
    throw new ShapeError(`${what} ${axis} is out of range for a tensor of rank ${rank}`);
  }
  return a;
}

export function broadcastShapes(a: readonly number[], b: readonly number[]): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(
        `shapes [${a}] and [${b}] cannot be broadcast together (dimension ${i}: ${da} vs ${db})`,
      );
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

export function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => d === b[i]);
}

export function asTensor(x: Tensor | number, like: Tensor): Tensor {
  return typeof x === 'number' ? Tensor.scalar(x, like.dtype) : x;
}
