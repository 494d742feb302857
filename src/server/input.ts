// A prompt from a request to token ids, refused (400) past the model's context as the CLI refuses it.
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { ApiError } from './errors.js';

export function encodePrompt(model: HookedTransformer, text: string, what = 'the prompt'): number[] {
  const ids = model.encode(text);
  const nCtx = model.cfg.nCtx;
  if (ids.length > nCtx)
    throw new ApiError(
      400,
      `${what} has ${ids.length} tokens, more than the model's context of ${nCtx}: shorten it`,
    );
  return ids;
}
