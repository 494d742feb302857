import { ShapeError } from '../errors.js';
import type { Attr, Kernel, OnnxNode, RawTensor } from './backend/backend.js';
import type { DType } from './dtype.js';

/** What a lazy tensor knows before it is computed. */
export interface Meta {
  shape: number[];
  dtype: DType;
}

interface Value extends Meta {
  /** Known values (kernel constants: slice bounds, shapes, axes, k). */
  values?: number[];
}

const ONNX_TO_DTYPE: Record<number, DType> = {
  1: 'float32',
  11: 'float64',
  6: 'int32',
  7: 'int64',
  9: 'bool',
};

function broadcast(shapes: number[][], op: string): number[] {
  const n = Math.max(...shapes.map((s) => s.length));
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    let d = 1;
    for (const s of shapes) {
      const x = s[s.length - n + i] ?? 1;
      if (x !== 1 && d !== 1 && x !== d)
        throw new ShapeError(`${op}: shapes ${shapes.map((s) => `[${s}]`).join(' and ')} do not broadcast`);
      if (x !== 1) d = x;
    }
    out.push(d);
  }
  return out;
}

const int = (a: Attr | undefined, dflt: number): number => (a && 'i' in a ? a.i : dflt);
const axisOf = (a: number, rank: number): number => (a < 0 ? a + rank : a);

const UNARY = new Set([
  'Identity',
  'Neg',
  'Exp',
  'Log',
  'Sqrt',
  'Reciprocal',
  'Abs',
  'Sign',
  'Tanh',
  'Sigmoid',
  'Relu',
  'Erf',
  'Gelu',
  'Not',
  'Softmax',
  'LogSoftmax',
]);
const BINARY = new Set(['Add', 'Sub', 'Mul', 'Div', 'Pow']);
const COMPARE = new Set(['Greater', 'Less', 'GreaterOrEqual', 'LessOrEqual', 'Equal', 'And', 'Or']);
const REDUCE = new Set(['ReduceSum', 'ReduceMean', 'ReduceMax', 'ReduceMin']);

function sliceLen(n: number, start: number, end: number, step: number): number {
  const clamp = (v: number, lo: number, hi: number) => Math.min(Math.max(v, lo), hi);
  const s = clamp(start < 0 ? start + n : start, 0, n);
  const e = clamp(end < 0 ? end + n : end, 0, n);
  return Math.max(0, Math.ceil((e - s) / step));
}

/** Output shapes and dtypes of one ONNX node, as the ONNX operator specs define them. */
function inferNode(node: OnnxNode, ins: Value[]): Value[] {
  const [x, y] = ins as [Value, Value | undefined];
  const attrs = node.attrs ?? {};
  const op = node.op;
  if (UNARY.has(op)) return [{ shape: [...x.shape], dtype: x.dtype }];
  if (BINARY.has(op)) return [{ shape: broadcast([x.shape, y!.shape], op), dtype: x.dtype }];
  if (COMPARE.has(op)) return [{ shape: broadcast([x.shape, y!.shape], op), dtype: 'bool' }];
  if (REDUCE.has(op)) {
    const axes = (y?.values ?? x.shape.map((_, i) => i)).map((a) => axisOf(a, x.shape.length));
    const keep = int(attrs.keepdims, 1) === 1;
    const shape = keep
      ? x.shape.map((d, i) => (axes.includes(i) ? 1 : d))
      : x.shape.filter((_, i) => !axes.includes(i));
    return [{ shape, dtype: x.dtype }];
  }
  switch (op) {
    case 'Where':
      return [{ shape: broadcast([x.shape, y!.shape, ins[2]!.shape], op), dtype: y!.dtype }];
    case 'Cast':
      return [{ shape: [...x.shape], dtype: ONNX_TO_DTYPE[int(attrs.to, 1)]! }];
    case 'ArgMax': {
      const a = axisOf(int(attrs.axis, 0), x.shape.length);
      const shape =
        int(attrs.keepdims, 1) === 1
          ? x.shape.map((d, i) => (i === a ? 1 : d))
          : x.shape.filter((_, i) => i !== a);
      return [{ shape, dtype: 'int64' }];
    }
    case 'TopK': {
      const a = axisOf(int(attrs.axis, -1), x.shape.length);
      const shape = x.shape.map((d, i) => (i === a ? y!.values![0]! : d));
      return [
        { shape, dtype: x.dtype },
        { shape: [...shape], dtype: 'int64' },
      ];
    }
    case 'Reshape': {
      const target = y!.values!.map((d, i) => (d === 0 ? x.shape[i]! : d));
      const known = target.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
      const size = x.shape.reduce((p, d) => p * d, 1);
      return [{ shape: target.map((d) => (d === -1 ? size / known : d)), dtype: x.dtype }];
    }
    case 'Transpose': {
      const perm = attrs.perm && 'ints' in attrs.perm ? attrs.perm.ints : x.shape.map((_, i) => i).reverse();
      return [{ shape: perm.map((p) => x.shape[p]!), dtype: x.dtype }];
    }
    case 'Slice': {
      const [, starts, ends, axes, steps] = ins;
      const shape = [...x.shape];
      starts!.values!.forEach((s, j) => {
        const a = axisOf(axes?.values?.[j] ?? j, shape.length);
        shape[a] = sliceLen(x.shape[a]!, s, ends!.values![j]!, steps?.values?.[j] ?? 1);
      });
      return [{ shape, dtype: x.dtype }];
    }
    case 'Pad': {
      const pads = y!.values!;
      const r = x.shape.length;
      return [{ shape: x.shape.map((d, i) => d + pads[i]! + pads[r + i]!), dtype: x.dtype }];
    }
    case 'Concat': {
      const a = axisOf(int(attrs.axis, 0), x.shape.length);
      const shape = [...x.shape];
      shape[a] = ins.reduce((p, v) => p + v.shape[a]!, 0);
      return [{ shape, dtype: x.dtype }];
    }
    case 'Expand':
      return [{ shape: broadcast([x.shape, y!.values!], op), dtype: x.dtype }];
    case 'Gather': {
      const a = axisOf(int(attrs.axis, 0), x.shape.length);
      return [{ shape: [...x.shape.slice(0, a), ...y!.shape, ...x.shape.slice(a + 1)], dtype: x.dtype }];
    }
    case 'GatherElements':
      return [{ shape: [...y!.shape], dtype: x.dtype }];
    case 'ScatterND':
    case 'ScatterElements':
      return [{ shape: [...x.shape], dtype: x.dtype }];
    case 'MatMul':
    case 'FusedMatMul': {
      const ta = int(attrs.transA, 0) === 1;
      const tb = int(attrs.transB, 0) === 1;
      const ra = x.shape.length;
      const rb = y!.shape.length;
      const m = x.shape[ta ? ra - 1 : ra - 2]!;
      const n = y!.shape[tb ? rb - 2 : rb - 1]!;
      const batch = broadcast([x.shape.slice(0, -2), y!.shape.slice(0, -2)], op);
      return [{ shape: [...batch, m, n], dtype: x.dtype }];
    }
    case 'Einsum': {
      const eq = attrs.equation && 's' in attrs.equation ? attrs.equation.s : '';
      const [lhs, out] = eq.split('->') as [string, string];
      const sizes = new Map<string, number>();
      lhs.split(',').forEach((s, i) => [...s].forEach((c, j) => sizes.set(c, ins[i]!.shape[j]!)));
      return [{ shape: [...out].map((c) => sizes.get(c)!), dtype: x.dtype }];
    }
  }
  throw new ShapeError(
    `the lazy engine cannot infer the output shape of ONNX op ${op} (add it to engine/infer.ts)`,
  );
}

function valuesOf(t: RawTensor): number[] | undefined {
  if (t.shape.length > 1 || t.data.length > 64) return undefined;
  return Array.from(t.data as ArrayLike<number | bigint>, Number);
}

/** Output shapes and dtypes of a kernel for inputs of these shapes, without running it. */
export function inferKernel(kernel: Kernel, inputs: Meta[]): Meta[] {
  const env = new Map<string, Value>();
  inputs.forEach((m, i) => env.set(`x${i}`, m));
  (kernel.consts ?? []).forEach((c, i) =>
    env.set(`c${i}`, { shape: c.shape, dtype: c.dtype, values: valuesOf(c) }),
  );
  for (const node of kernel.nodes) {
    const ins = node.inputs.map((n) => {
      const v = env.get(n);
      if (!v) throw new ShapeError(`kernel ${kernel.key}: input '${n}' of ${node.op} is not defined`);
      return v;
    });
    const outs = inferNode(node, ins);
    node.outputs.forEach((n, i) => env.set(n, outs[i]!));
  }
  return Array.from({ length: kernel.nOut }, (_, i) => {
    const v = env.get(`y${i}`)!;
    return { shape: v.shape, dtype: v.dtype };
  });
}
