import { UsageError } from '../errors.js';
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
