import { ShapeError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';

/** A token id, or text that is exactly one token: HookedTransformer.toSingleToken. */
export function singleToken(model: HookedTransformer, token: number | string, label = 'token'): number {
  return model.toSingleToken(token, label);
}

/** A prompt (text, BOS as the tokenizer does, or ids) as checked token ids. */
export function toIds(model: HookedTransformer, x: string | number[]): number[] {
  const ids = typeof x === 'string' ? model.encode(x) : [...x];
  if (ids.length === 0) throw new ShapeError('empty prompt: nothing to patch');
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= model.cfg.vocabSize)
      throw new ShapeError(`token id ${id} is outside the vocabulary [0, ${model.cfg.vocabSize})`);
  }
  return ids;
}

/** Rows of equal-length ids as an int64 [rows, pos] tensor. */
export function int64(rows: number[][]): Tensor {
  const P = rows[0]!.length;
  const data = new BigInt64Array(rows.length * P);
  rows.forEach((r, b) => r.forEach((id, i) => (data[b * P + i] = BigInt(id))));
  return new Tensor(data, [rows.length, P]);
}
