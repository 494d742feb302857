import { ShapeError } from '../../errors.js';
import { sizeOf, type DType } from '../dtype.js';
import { getBackend } from '../backend/backend.js';
import { engineState } from '../context.js';
import { attachGrad, exec, recordView, Tensor } from '../tensor.js';
import { i64, int, ints, node1, normAxis, sameShape, withConsts } from './kernel.js';

/** Same data, new shape (one dimension may be -1). Zero-copy in eager mode. */
export function reshape(x: Tensor, shape: readonly number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const inferIdx = shape.indexOf(-1);
  const target = [...shape];
  if (inferIdx >= 0) {
    const rest = sizeOf(known);
    if (rest === 0 || x.size % rest !== 0) throw new ShapeError(`cannot reshape [${x.shape}] to [${shape}]`);
    target[inferIdx] = x.size / rest;
  }
  if (sizeOf(target) !== x.size)
    throw new ShapeError(`cannot reshape [${x.shape}] (${x.size} elements) to [${shape}]`);
  if (sameShape(target, x.shape)) return x;
  const kernel = withConsts(node1('Reshape', 2), [i64(target)]);
  const back = ([g]: Tensor[]) => [reshape(g!, x.shape)];
  // A lazy tensor (or a lazy scope) reshapes in the graph; a computed one shares its data.
  if (!x.isReady || engineState().lazy || !getBackend().synchronous) return exec(kernel, [x], back)[0]!;
  const out = new Tensor(x.dataSync(), target);
  recordView(kernel, [x], [out]);
  attachGrad('Reshape', [x], [out], back);
  return out;
}

export function unsqueeze(x: Tensor, axis: number): Tensor {
  const a = axis < 0 ? axis + x.rank + 1 : axis;
  const shape = [...x.shape];
  shape.splice(a, 0, 1);
  return reshape(x, shape);
}

export function squeeze(x: Tensor, axis: number): Tensor {
  const a = normAxis(axis, x.rank);
  if (x.shape[a] !== 1) throw new ShapeError(`cannot squeeze axis ${axis} of size ${x.shape[a]}`);
  return reshape(
    x,
    x.shape.filter((_, i) => i !== a),
  );
}

/** Reorders axes (torch.permute). */
export function permute(x: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== x.rank || [...perm].sort((a, b) => a - b).some((p, i) => p !== i)) {
    throw new ShapeError(`permute([${perm}]) is not a permutation of the ${x.rank} axes of [${x.shape}]`);
  }
  if (perm.every((p, i) => p === i)) return x;
  const inverse = perm.map((_, i) => perm.indexOf(i));
  const [y] = exec(node1('Transpose', 1, { perm: ints([...perm]) }), [x], ([g]) => [permute(g!, inverse)]);
  return y!;
}

export function transpose(x: Tensor, a = -2, b = -1): Tensor {
  const perm = x.shape.map((_, i) => i);
  const i = normAxis(a, x.rank);
  const j = normAxis(b, x.rank);
  [perm[i], perm[j]] = [perm[j]!, perm[i]!];
  return permute(x, perm);
}

/** x[start:end:step] along one axis; negative indices count from the end. */
export function slice(x: Tensor, axis: number, start: number, end?: number, step = 1): Tensor {
  const a = normAxis(axis, x.rank);
  const n = x.shape[a]!;
  const clamp = (v: number) => Math.min(Math.max(v < 0 ? v + n : v, 0), n);
  const s = clamp(start);
  const e = Math.max(s, end === undefined ? n : clamp(end));
  if (step !== 1) {
    if (step < 1) throw new ShapeError(`slice step must be positive, got ${step}`);
  }
  if (s === 0 && e === n && step === 1) return x;
  const len = Math.max(0, Math.ceil((e - s) / step));
  const kernel = withConsts(node1('Slice', 5), [i64([s]), i64([e]), i64([a]), i64([step])]);
  const [y] = exec(kernel, [x], ([g]) => {
    if (step === 1) return [padAxis(g!, a, s, n - e)];
    return [sliceGradStrided(g!, x.shape, a, s, step, len)];
  });
  return y!;
}

function sliceGradStrided(
  g: Tensor,
  shape: number[],
  axis: number,
  s: number,
  step: number,
  len: number,
): Tensor {
  const idx = Array.from({ length: len }, (_, i) => s + i * step);
  return indexAdd(Tensor.zeros(shape, g.dtype), axis, Tensor.from(idx, [len], 'int64'), g);
}

/** Zero padding before/after along one axis. */
export function padAxis(x: Tensor, axisIn: number, before: number, after: number): Tensor {
  if (before === 0 && after === 0) return x;
  const axis = normAxis(axisIn, x.rank);
  const pads = new Array<number>(2 * x.rank).fill(0);
  pads[axis] = before;
  pads[x.rank + axis] = after;
  const [y] = exec(withConsts(node1('Pad', 2), [i64(pads)]), [x], ([g]) => [
    slice(g!, axis, before, before + x.shape[axis]!),
  ]);
  return y!;
}

export function concat(xs: Tensor[], axis: number): Tensor {
  if (xs.length === 0) throw new ShapeError('concat needs at least one tensor');
  if (xs.length === 1) return xs[0]!;
  const a = normAxis(axis, xs[0]!.rank);
  for (const t of xs) {
    if (t.rank !== xs[0]!.rank || t.shape.some((d, i) => i !== a && d !== xs[0]!.shape[i])) {
      throw new ShapeError(
        `concat along axis ${axis}: shapes [${xs[0]!.shape}] and [${t.shape}] differ elsewhere`,
      );
    }
  }
  const [y] = exec(node1('Concat', xs.length, { axis: int(a) }), xs, ([g]) => {
    let off = 0;
    return xs.map((t) => {
      const part = slice(g!, a, off, off + t.shape[a]!);
      off += t.shape[a]!;
      return part;
    });
  });
  return y!;
}

export function stack(xs: Tensor[], axis = 0): Tensor {
  return concat(
    xs.map((t) => unsqueeze(t, axis)),
    axis,
  );
}

export function expand(x: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(x.shape, shape)) return x;
  const [y] = exec(withConsts(node1('Expand', 2), [i64(shape)]), [x], ([g]) => [sumTo(g!, x.shape)]);
  return y!;
}

/** Sums a broadcast gradient back down to `shape`. */
export function sumTo(g: Tensor, shape: readonly number[]): Tensor {
  if (sameShape(g.shape, shape)) return g;
  const lead = g.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < g.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && g.shape[i] !== 1)) axes.push(i);
  }
  if (axes.length === 0) return reshape(g, shape);
  const [s] = exec(withConsts(node1('ReduceSum', 2, { keepdims: int(1) }), [i64(axes)]), [g], ([gs]) => [
    expand(gs!, g.shape),
  ]);
  return reshape(s!, shape);
}

export function cast(x: Tensor, dtype: DType): Tensor {
  if (x.dtype === dtype) return x;
  const codes = { float32: 1, float64: 11, int32: 6, int64: 7, bool: 9 } as const;
  const [y] = exec(node1('Cast', 1, { to: int(codes[dtype]) }), [x], ([g]) => [cast(g!, x.dtype)]);
  return y!;
}

function checkIndices(indices: Tensor, what: string): void {
  if (indices.dtype !== 'int32' && indices.dtype !== 'int64') {
    throw new ShapeError(`${what}: indices must be int32 or int64, got ${indices.dtype}`);
  }
}

/** x.index_select(axis, indices), with indices of any shape (embedding lookup is gather(W, 0, ids)). */
export function gather(x: Tensor, axis: number, indices: Tensor): Tensor {
  checkIndices(indices, 'gather');
  const a = normAxis(axis, x.rank);
  const [y] = exec(node1('Gather', 2, { axis: int(a) }), [x, indices], ([g]) => [
    x.requiresGrad ? indexAdd(Tensor.zeros(x.shape, g!.dtype), a, indices, g!) : null,
    null,
  ]);
  return y!;
}

/** Adds `src` rows into x at `indices` along axis (duplicates accumulate), the adjoint of gather. */
export function indexAdd(x: Tensor, axis: number, indices: Tensor, src: Tensor): Tensor {
  checkIndices(indices, 'indexAdd');
  const a = normAxis(axis, x.rank);
  const toFront = [a, ...x.shape.map((_, i) => i).filter((i) => i !== a)];
  const xf = permute(x, toFront);
  // src has indices' dims in place of `axis`; move them to the front.
  const ir = indices.rank;
  const srcPerm = [
    ...Array.from({ length: ir }, (_, i) => a + i),
    ...Array.from({ length: a }, (_, i) => i),
    ...Array.from({ length: src.rank - a - ir }, (_, i) => a + ir + i),
  ];
  const sf = permute(src, srcPerm);
  const idx = reshape(cast(indices, 'int64'), [...indices.shape, 1]);
  const [y] = exec(node1('ScatterND', 3, { reduction: { s: 'add' } }), [xf, idx, sf], ([g]) => [
    g!,
    null,
    gather(g!, 0, indices), // permute's own backward restores src's layout
  ]);
  return permute(y!, invertPerm(toFront));
}

function invertPerm(p: number[]): number[] {
  return p.map((_, i) => p.indexOf(i));
}

/** torch.gather: out[i][j] = x[i][indices[i][j]] along axis. */
export function gatherElements(x: Tensor, axis: number, indices: Tensor): Tensor {
  checkIndices(indices, 'gatherElements');
  const a = normAxis(axis, x.rank);
  const [y] = exec(node1('GatherElements', 2, { axis: int(a) }), [x, indices], ([g]) => [
    scatterAdd(Tensor.zeros(x.shape, g!.dtype), a, indices, g!),
    null,
  ]);
  return y!;
}

/** torch.scatter_add: x[i][indices[i][j]] += src[i][j] along axis. */
export function scatterAdd(x: Tensor, axis: number, indices: Tensor, src: Tensor): Tensor {
  checkIndices(indices, 'scatterAdd');
  const a = normAxis(axis, x.rank);
  const [y] = exec(
    node1('ScatterElements', 3, { axis: int(a), reduction: { s: 'add' } }),
    [x, indices, src],
    ([g]) => [g!, null, gatherElements(g!, a, indices)],
  );
  return y!;
}

/** Selects along axis 0..k with integer indices, like x[i] (drops the axis). */
export function index(x: Tensor, axis: number, i: number): Tensor {
  const a = normAxis(axis, x.rank);
  const n = x.shape[a]!;
  const j = i < 0 ? i + n : i;
  if (j < 0 || j >= n) throw new ShapeError(`index ${i} is out of range for axis ${axis} of size ${n}`);
  return squeeze(slice(x, a, j, j + 1), a);
}
