// Activation and attribution patching as long jobs: sweeps over layers × positions (or heads) with
// progress, answered with the matrix every surface shows (tokens on the position axis) and its colour scale.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { ATTRIBUTION_TARGETS, attributionCompared } from '../../methods/attribution.js';
import {
  activationPatching,
  PATCH_TARGETS,
  patchingTable,
  type PatchingGrid,
  type PatchingResult,
  type PatchTarget,
} from '../../methods/patching.js';
import type { HookedTransformer } from '../../hooks/hooked-transformer.js';
import { symmetricDomain } from '../../plot/heatmap.js';
import type { ServerContext } from '../app.js';
import { encodePrompt } from '../input.js';
import { jobKind, type JobContext } from '../jobs/kind.js';
import { modelId, prompt } from '../validate.js';

const token = z.string().min(1).max(100);
const targets = (list: readonly PatchTarget[]) => z.enum(list as [PatchTarget, ...PatchTarget[]]);

/** What both sweeps take: the prompt pair, the logit-difference tokens and the sweep's shape. */
const Sweep = z.object({
  model: modelId,
  clean: prompt,
  corrupt: prompt,
  answer: token,
  wrong: token,
  direction: z.enum(['denoise', 'noise']).default('denoise'),
  /** Default: per position for resid_pre/attn_out/mlp_out, all positions at once for heads. */
  perPosition: z.boolean().optional(),
});

export const PatchingParams = Sweep.extend({ target: targets(PATCH_TARGETS).default('resid_pre') });
export const AttributionParams = Sweep.extend({
  target: targets(ATTRIBUTION_TARGETS).default('resid_pre'),
  /** AtP*'s exact softmax for q and k targets. */
  qkFix: z.boolean().default(true),
  /** Also run activation patching on the same sweep and report the correlation. */
  compare: z.boolean().default(false),
});

/**
 * A sweep's answer: the result, its matrix (position columns labelled by their tokens, both prompts'
 * tokens), and the half-width of the symmetric colour scale of each measure, as `sonde patch --plot`
 * draws it: at least ±1 for the normalised metric (0 = corrupt, 1 = clean), ±max |value| for the raw one.
 */
export function sweepTable(
  model: HookedTransformer,
  r: PatchingGrid & Pick<PatchingResult, 'corruptTokens'>,
) {
  const table = patchingTable(model, r);
  return {
    table,
    scale: { normalised: symmetricDomain(table.values, 1)[1], raw: symmetricDomain(table.raw)[1] },
  };
}

export type PatchingAnswer = Omit<PatchingResult, 'values' | 'raw'> & ReturnType<typeof sweepTable>;
export type AttributionAnswer = PatchingAnswer & {
  qkFixed: boolean;
  /** Activation patching of the same sweep (with `compare`). */
  actual: PatchingAnswer | null;
  correlation: number | null;
};

/** The model and what both sweeps pass to the library: the encoded prompts, the metric's tokens, the shape. */
function sweepInputs(ctx: JobContext, p: z.output<typeof Sweep>, stage: string) {
  const model = ctx.model(p.model);
  return {
    model,
    sweep: {
      clean: encodePrompt(model, p.clean, 'the clean prompt'),
      corrupt: encodePrompt(model, p.corrupt, 'the corrupt prompt'),
      answer: p.answer,
      wrong: p.wrong,
      perPosition: p.perPosition,
      direction: p.direction,
      onProgress: (done: number, total: number) => ctx.progress({ done, total, stage }),
    },
  };
}

/** The answer without the [layer][component][position] grids the table already holds. */
export function patchingAnswer(model: HookedTransformer, r: PatchingResult): PatchingAnswer {
  const { values: _values, raw: _raw, ...rest } = r;
  return { ...rest, ...sweepTable(model, r) };
}

export const patchingJobs = {
  patching: jobKind(PatchingParams, async (ctx, p) => {
    const { model, sweep } = sweepInputs(ctx, p, 'patching');
    const result = await activationPatching(model, { ...sweep, target: p.target });
    return patchingAnswer(model, result);
  }),
  attribution: jobKind(AttributionParams, async (ctx, p): Promise<AttributionAnswer> => {
    const { model, sweep } = sweepInputs(ctx, p, 'activation patching');
    const { result, actual, correlation } = await attributionCompared(model, {
      ...sweep,
      target: p.target,
      qkFix: p.qkFix,
      compare: p.compare,
    });
    const { values: _values, raw: _raw, linear: _linear, gradDrop: _gradDrop, ...rest } = result;
    return {
      ...rest,
      runs: 0,
      ...sweepTable(model, result),
      actual: actual && patchingAnswer(model, actual),
      correlation,
    };
  }),
};

/** What the page offers in its target menus (the library's lists, so the page never lags behind). */
export interface PatchingOptionsAnswer {
  patching: readonly PatchTarget[];
  attribution: readonly PatchTarget[];
}

export function registerPatchingRoutes(app: FastifyInstance, _ctx: ServerContext): void {
  app.get('/api/patching/targets', async (): Promise<PatchingOptionsAnswer> => ({
    patching: PATCH_TARGETS,
    attribution: ATTRIBUTION_TARGETS,
  }));
}
