// The attention view: every head's pattern of one layer (or of all layers, when small) on a prompt.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { attentionPatterns } from '../../methods/attention.js';
import type { ServerContext } from '../app.js';
import { ApiError } from '../errors.js';
import { encodePrompt } from '../input.js';
import { LIMITS, modelId, parse, prompt } from '../validate.js';

export const AttentionRequest = z.object({
  model: modelId,
  prompt,
  /** One layer; all layers when left out (refused when that answer would be too large). */
  layer: z.number().int().min(0).max(10_000).optional(),
});

export function registerAttentionRoutes(app: FastifyInstance, { registry }: ServerContext): void {
  app.post('/api/attention', async (req) => {
    const p = parse(AttentionRequest, req.body);
    const { model } = registry.model(p.model);
    const { nLayers: L, nHeads: H } = model.cfg;
    if (p.layer !== undefined && p.layer >= L)
      throw new ApiError(400, `layer: ${p.layer} is not in [0, ${L}): the model has ${L} layers`);
    const ids = encodePrompt(model, p.prompt);
    const layers = p.layer === undefined ? L : 1;
    if (layers * H * ids.length ** 2 > LIMITS.attentionWeights)
      throw new ApiError(
        400,
        `${layers} layers × ${H} heads over ${ids.length} tokens is over ${LIMITS.attentionWeights} attention weights: ` +
          (p.layer === undefined ? 'ask for one layer at a time (layer)' : 'shorten the prompt'),
      );
    return attentionPatterns(model, ids, p.layer === undefined ? undefined : [p.layer]);
  });
}
