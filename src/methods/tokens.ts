import { ShapeError, UsageError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';

/**
 * A token given as an id or as text that must be exactly one token. Text is encoded as the model's
 * tokenizer does (without BOS); when that is not one token, text equal to one token's own string is
 * accepted too (so " Lily" names the token ' Lily' of a sentencepiece tokenizer, whose dummy prefix would
 * otherwise add a separate ' ' token). Anything else is a UsageError that says how many tokens it became
 * and lists them. `label` names the argument in messages (e.g. '--answer').
 */
export function singleToken(model: HookedTransformer, token: number | string, label = 'token'): number {
  const V = model.cfg.vocabSize;
  if (typeof token === 'number') {
    if (!Number.isInteger(token) || token < 0 || token >= V)
      throw new UsageError(`${label}: token id ${token} is outside the vocabulary [0, ${V})`);
    return token;
  }
  if (!model.tokenizer)
    throw new UsageError(
      `${label}: model ${model.source} has no tokenizer: give the token id instead of text`,
    );
  if (token.length === 0) throw new UsageError(`${label}: empty text is not a token`);
  const ids = model.encode(token, { prependBos: false });
  if (ids.length === 1) return ids[0]!;
  for (let id = 0; id < V; id++) if (model.tokenizer.tokenString(id) === token) return id;
  const strings = model.tokenStrings(ids);
  const listed = ids.map((id, i) => `${JSON.stringify(strings[i])} (${id})`).join(', ');
  throw new UsageError(
    `${label} ${JSON.stringify(token)} is ${ids.length} tokens, not one: ${listed}` +
      ` (give a single token, or its id)`,
  );
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
