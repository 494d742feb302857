// Direct logit attribution (what `sonde dla` prints): each component's direct contribution to a logit
// (difference) at one position. One forward pass: a plain request.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { directLogitAttribution, type DlaResult } from '../../methods/dla.js';
import type { ServerContext } from '../app.js';
import { encodePrompt } from '../input.js';
import { modelId, parse, prompt } from '../validate.js';

/** A token as text that is exactly one token (' Lily'), or its id. */
const tokenOrId = z.union([z.string().min(1).max(100), z.number().int().min(0)]);

export const DlaRequest = z.object({
  model: modelId,
  prompt,
  /** The position whose next-token prediction is explained (negative counts from the end; default the last). */
  pos: z.number().int().optional(),
  answer: tokenOrId,
  /** Attribute logit(answer) - logit(wrong) instead of logit(answer). */
  wrong: tokenOrId.optional(),
});

export type DlaAnswer = DlaResult & { tokens: number[]; strings: string[] };

export function registerDlaRoutes(app: FastifyInstance, { registry }: ServerContext): void {
  app.post('/api/dla', async (req): Promise<DlaAnswer> => {
    const p = parse(DlaRequest, req.body);
    const { model } = registry.model(p.model);
    const ids = encodePrompt(model, p.prompt);
    const r = await directLogitAttribution(model, ids, { answer: p.answer, wrong: p.wrong, pos: p.pos });
    return { ...r, strings: model.tokenStrings(r.tokens) };
  });
}
