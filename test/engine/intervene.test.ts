import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import {
  addAt,
  blend,
  indexTensor,
  maskAlong,
  Rng,
  selectionMask,
  setAt,
  take,
  Tensor,
} from '../../src/engine/index.js';
import { gradcheck, randnT } from './gradcheck.js';

const rng = new Rng(1313);
const rn = (...shape: number[]): Tensor => randnT(shape, rng);
const idx = indexTensor;

describe('intervention ops: values', () => {
  // x [batch 2, pos 3, d 2] = 0..11
  const x = Tensor.from(
    Array.from({ length: 12 }, (_, i) => i),
    [2, 3, 2],
  );
  it('take keeps the axis, with the index length', () => {
    const t = take(x, 1, idx([2, 0]));
    expect(t.shape).toEqual([2, 2, 2]);
    expect(t.toArraySync()).toEqual([4, 5, 0, 1, 10, 11, 6, 7]);
  });
  it('setAt replaces the indexed positions, broadcasting the values', () => {
    const v = Tensor.from([-1, -2], [2]); // [d]
    expect(setAt(x, 1, idx([1]), v).toArraySync()).toEqual([0, 1, -1, -2, 4, 5, 6, 7, -1, -2, 10, 11]);
    const w = Tensor.from([[[-1, -2]], [[-3, -4]]]); // [batch, 1, d]
    expect(setAt(x, 1, idx([2]), w).toArraySync()).toEqual([0, 1, 2, 3, -1, -2, 6, 7, 8, 9, -3, -4]);
  });
  it('addAt adds at the indexed positions', () => {
    const v = Tensor.from([100, 200], [2]);
    expect(addAt(x, 1, idx([0, 2]), v).toArraySync()).toEqual([
      100, 201, 2, 3, 104, 205, 106, 207, 8, 9, 110, 211,
    ]);
  });
  it('maskAlong zeroes (bool) or scales (float) along an axis', () => {
    expect(maskAlong(x, 2, Tensor.from([1, 0], [2], 'bool')).toArraySync()).toEqual([
      0, 0, 2, 0, 4, 0, 6, 0, 8, 0, 10, 0,
    ]);
    expect(maskAlong(x, 0, Tensor.from([2, 0.5])).toArraySync()).toEqual([
      0, 2, 4, 6, 8, 10, 3, 3.5, 4, 4.5, 5, 5.5,
    ]);
  });
  it('selectionMask + blend patch a different position per batch row', () => {
    const src = Tensor.from(
      Array.from({ length: 6 }, (_, i) => -i - 1),
      [1, 3, 2],
    );
    const m = selectionMask(x.shape, [
      [[0], null],
      [[2], null],
    ]);
    expect(m.shape).toEqual([2, 3, 1]);
    expect(blend(x, src, m).toArraySync()).toEqual([-1, -2, 2, 3, 4, 5, 6, 7, 8, 9, -5, -6]);
    // a restriction on the last axis only: index 1 of d at every position, row 0 only
    const m2 = selectionMask(x.shape, [
      [null, [1]],
      [null, []],
    ]);
    expect(m2.shape).toEqual([2, 1, 2]);
    expect(blend(x, 0, m2).toArraySync()).toEqual([0, 0, 2, 0, 4, 0, 6, 7, 8, 9, 10, 11]);
  });
});

describe('intervention ops: gradients (finite differences)', () => {
  it('take', () => {
    gradcheck((a) => take(a, 1, idx([3, 0, 3])), [rn(2, 4, 3)], { name: 'take' });
  });
  it('setAt: to the activation and to the values', () => {
    gradcheck((a, v) => setAt(a, 1, idx([3, 1]), v), [rn(2, 4, 3), rn(2, 2, 3)], { name: 'setAt' });
    gradcheck((a, v) => setAt(a, 2, idx([0]), v), [rn(2, 3, 4, 2), rn(2)], { name: 'setAt broadcast' });
  });
  it('addAt: to the activation and to the values', () => {
    gradcheck((a, v) => addAt(a, -2, idx([2, 0]), v), [rn(2, 3, 4), rn(4)], { name: 'addAt' });
  });
  it('blend: to both tensors', () => {
    const m = selectionMask(
      [2, 3, 4],
      [
        [[1], null],
        [[0, 2], null],
      ],
    );
    gradcheck((a, b) => blend(a, b, m), [rn(2, 3, 4), rn(1, 3, 4)], { name: 'blend' });
  });
  it('maskAlong: bool and float masks', () => {
    gradcheck((a) => maskAlong(a, 1, Tensor.from([1, 0, 1], [3], 'bool')), [rn(2, 3, 2)], {
      name: 'maskAlong bool',
    });
    gradcheck((a, m) => maskAlong(a, 1, m), [rn(2, 3, 2), rn(3)], { name: 'maskAlong float' });
  });
});
