// What hooks do to activations, as differentiable compositions of engine ops: take values at positions
// (or heads), set them from another tensor, add into them, and blend two tensors under a mask. Positions,
// heads and masks enter as tensors (int64 indices, bool masks), never as constants baked into a kernel, so
// one compiled graph serves a whole sweep; gradients flow to the activation and to the patched-in values.
import { ShapeError } from '../../errors.js';
import { allocate } from '../dtype.js';
import { Tensor } from '../tensor.js';
import { gt, mul, where } from './elementwise.js';
import { normAxis } from './kernel.js';
import { cast, expand, gather, indexAdd, reshape } from './shape.js';

/**
 * x.index_select(axis, index) with a 1-D int64 index [k]: the axis keeps its place with length k,
 * e.g. take(x [batch, pos, d_model], 1, [p]) is [batch, 1, d_model].
 */
export function take(x: Tensor, axis: number, index: Tensor): Tensor {
  checkIndex(index, 'take');
  return gather(x, axis, index);
}

/**
 * x with the slices at `index` along `axis` replaced by `values` (torch's x.index_copy). index: 1-D
 * int64 [k] of distinct positions; values broadcasts to x's shape with k at `axis`, e.g.
 * setAt(x [batch, pos, d_model], 1, [p], v [batch, 1, d_model]) or v [d_model]. The gradient of x is
 * zero at the replaced slices; the values get the gradient there.
 */
export function setAt(x: Tensor, axis: number, index: Tensor, values: Tensor): Tensor {
  const a = checkIndex(index, 'setAt', x, axis);
  const placed = indexAdd(Tensor.zeros(x.shape, x.dtype), a, index, spread(values, x, a, index));
  return where(hitMask(x, a, index), placed, x);
}

/** x with `values` added at the slices `index` along `axis` (duplicates add twice); shapes as setAt. */
export function addAt(x: Tensor, axis: number, index: Tensor, values: Tensor): Tensor {
  const a = checkIndex(index, 'addAt', x, axis);
  return indexAdd(x, a, index, spread(values, x, a, index));
}

/**
 * where(mask, y, x): y where the bool mask is true, x elsewhere; mask, x and y broadcast to x's shape
 * (y may be a cached activation [1, pos, d_model] patched into every row of x [batch, pos, d_model]).
 */
export function blend(x: Tensor, y: Tensor | number, mask: Tensor): Tensor {
  if (mask.dtype !== 'bool') throw new ShapeError(`blend: the mask must be bool, got ${mask.dtype}`);
  const out = where(mask, y, x);
  return out.rank === x.rank && out.shape.every((d, i) => d === x.shape[i]) ? out : expand(out, x.shape);
}

/**
 * x times a 1-D mask [x.shape[axis]] along `axis` (bool: keep where true, zero elsewhere; float: scale),
 * e.g. maskAlong(z [batch, pos, head, d_head], 2, headMask [head]) zero-ablates the heads not kept.
 */
export function maskAlong(x: Tensor, axis: number, mask: Tensor): Tensor {
  const a = normAxis(axis, x.rank);
  if (mask.rank !== 1 || mask.shape[0] !== x.shape[a])
    throw new ShapeError(
      `maskAlong: mask [${mask.shape}] must be [${x.shape[a]}] (axis ${axis} of [${x.shape}])`,
    );
  const m = reshape(mask, alongShape(x.rank, a, x.shape[a]!));
  return mask.dtype === 'bool' ? where(m, x, 0) : mul(x, cast(m, x.dtype));
}

/** Per axis after the batch: the indices chosen on it, or null for all of it. */
export type Selection = (readonly number[] | null)[];

/**
 * A bool mask selecting, per batch row, the cartesian product of chosen indices on some axes: shape
 * [rows, ...dims] where dims[i] is the axis's length where some row restricts it and 1 (broadcast) where
 * none does. `choose[b][i]` is the indices row b takes on axis i+1 (null: all). Built on the host from
 * indices alone (never from activation values) and fed to the graph as a tensor.
 */
export function selectionMask(shape: readonly number[], choose: Selection[]): Tensor {
  const rest = shape.slice(1);
  const dims = rest.map((d, i) => (choose.some((c) => c[i] != null) ? d : 1));
  const n = choose.length;
  const inner = dims.reduce((p, d) => p * d, 1);
  const data = allocate('bool', n * inner) as Uint8Array;
  const strides = dims.map((_, i) => dims.slice(i + 1).reduce((p, d) => p * d, 1));
  choose.forEach((sel, b) => {
    const lists = dims.map((d, i) => {
      const s = sel[i];
      if (s == null) return Array.from({ length: d }, (_, j) => j);
      for (const j of s)
        if (!Number.isInteger(j) || j < 0 || j >= d)
          throw new ShapeError(
            `selectionMask: index ${j} is outside [0, ${d}) on axis ${i + 1} of [${shape}]`,
          );
      return [...s];
    });
    const visit = (i: number, off: number): void => {
      if (i === dims.length) {
        data[b * inner + off] = 1;
        return;
      }
      for (const j of lists[i]!) visit(i + 1, off + j * strides[i]!);
    };
    visit(0, 0);
  });
  return new Tensor(data, [n, ...dims]);
}

/** int64 index tensor [k] from numbers. */
export function indexTensor(ids: readonly number[]): Tensor {
  return Tensor.from([...ids], [ids.length], 'int64');
}

function alongShape(rank: number, axis: number, n: number): number[] {
  return Array.from({ length: rank }, (_, i) => (i === axis ? n : 1));
}

/** values broadcast to x's shape with the index's length at `axis`. */
function spread(values: Tensor, x: Tensor, axis: number, index: Tensor): Tensor {
  const target = x.shape.map((d, i) => (i === axis ? index.shape[0]! : d));
  return expand(values, target);
}

/** bool [1.., n, ..1] along axis: true at the indexed slices. */
function hitMask(x: Tensor, axis: number, index: Tensor): Tensor {
  const n = x.shape[axis]!;
  const k = index.shape[0]!;
  const hits = indexAdd(Tensor.zeros([n]), 0, index, Tensor.full([k], 1));
  return reshape(gt(hits, 0), alongShape(x.rank, axis, n));
}

function checkIndex(index: Tensor, what: string, x?: Tensor, axis?: number): number {
  if (index.dtype !== 'int64' && index.dtype !== 'int32')
    throw new ShapeError(`${what}: the index must be an int64 tensor, got ${index.dtype}`);
  if (index.rank !== 1) throw new ShapeError(`${what}: the index must be 1-D, got [${index.shape}]`);
  return x && axis !== undefined ? normAxis(axis, x.rank) : 0;
}
