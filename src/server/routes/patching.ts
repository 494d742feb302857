// Activation patching as a long job: a sweep over layers × positions (or heads) with progress.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { activationPatching, PATCH_TARGETS, patchingMatrix } from '../../methods/patching.js';
import type { ServerContext } from '../app.js';
import { encodePrompt } from '../input.js';
import { jobKind } from '../jobs/kind.js';
import { modelId, prompt } from '../validate.js';

const token = z.string().min(1).max(100);

export const PatchingParams = z.object({
  model: modelId,
  clean: prompt,
  corrupt: prompt,
  answer: token,
  wrong: token,
  target: z.enum(PATCH_TARGETS as unknown as [string, ...string[]]).default('resid_pre'),
  direction: z.enum(['denoise', 'noise']).default('denoise'),
});

export const patchingJobs = {
  patching: jobKind(PatchingParams, async (ctx, p) => {
    const model = ctx.model(p.model);
    const result = await activationPatching(model, {
      clean: encodePrompt(model, p.clean, 'the clean prompt'),
      corrupt: encodePrompt(model, p.corrupt, 'the corrupt prompt'),
      answer: p.answer,
      wrong: p.wrong,
      target: p.target as (typeof PATCH_TARGETS)[number],
      direction: p.direction,
      onProgress: (done, total) => ctx.progress({ done, total, stage: 'patching' }),
    });
    return { ...result, matrix: patchingMatrix(result) };
  }),
};

export function registerPatchingRoutes(_app: FastifyInstance, _ctx: ServerContext): void {}
