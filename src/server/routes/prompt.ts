// The prompt view: tokens, top predictions and per-token loss (what `sonde run` prints).
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { promptPredictions } from '../../methods/predictions.js';
import type { ServerContext } from '../app.js';
import { encodePrompt } from '../input.js';
import { modelId, parse, prompt, topK } from '../validate.js';

export const PromptRequest = z.object({ model: modelId, prompt, topK });

export function registerPromptRoutes(app: FastifyInstance, { registry }: ServerContext): void {
  app.post('/api/prompt', async (req) => {
    const p = parse(PromptRequest, req.body);
    const { model } = registry.model(p.model);
    return promptPredictions(model, encodePrompt(model, p.prompt), p.topK);
  });
}
