// The lens view: logit lens and tuned lens grids (layer × position), and a job that trains a tuned lens
// for an open model and keeps it for the session.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { lensLayerLabels, logitLens, type LogitLensResult } from '../../methods/lens.js';
import { saveTunedLens, trainTunedLensOnText } from '../../methods/tuned-lens.js';
import { defaultCorpus } from '../../organisms/induction.js';
import type { ServerContext } from '../app.js';
import { ApiError } from '../errors.js';
import { encodePrompt } from '../input.js';
import { jobKind } from '../jobs/kind.js';
import type { OpenTunedLens } from '../tuned-lenses.js';
import { LIMITS, modelId, parse, prompt, seed, topK } from '../validate.js';

const lensId = z.string().min(1).max(200);

export const LensRequest = z.object({
  model: modelId,
  prompt,
  kind: z.enum(['logit', 'tuned']).default('logit'),
  /** A tuned lens's id (from /api/info, or the id of the tuned-lens job that trained it). */
  lens: lensId.optional(),
  topK,
});

export const TunedLensParams = z.object({
  model: modelId,
  steps: z.number().int().min(1).max(LIMITS.tunedLensSteps).default(200),
  seed,
});

/** What a finished tuned-lens job leaves: its lens in a temporary folder, taken in by the first lens request. */
export interface TrainedLensResult {
  dir: string;
  steps: number;
  finalTrainLoss: number;
  heldOutKL: { layers: string[]; logit: number[]; tuned: number[] };
}

/** POST /api/lens's answer: the library's lens grid without its logits tensor. */
export interface LensAnswer extends Pick<LogitLensResult, 'tokens' | 'strings' | 'layers' | 'top' | 'next'> {
  model: string;
  kind: 'logit' | 'tuned';
  /** The tuned lens read (null for the logit lens). */
  lens: string | null;
  /** Short layer names, as `sonde lens` prints them ('L0 in' … 'final'). */
  labels: string[];
  topK: number;
}

export const lensJobs = {
  'tuned-lens': jobKind(TunedLensParams, async (ctx, p): Promise<TrainedLensResult> => {
    const model = ctx.model(p.model);
    const { lens, kl, finalTrainLoss } = await trainTunedLensOnText(model, defaultCorpus(), {
      steps: p.steps,
      seed: p.seed,
      onStep: (done) => ctx.progress({ done, total: p.steps, stage: 'training tuned lens' }),
    });
    const dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-serve-lens-')), 'lens');
    await saveTunedLens(lens, dir);
    return {
      dir,
      steps: p.steps,
      finalTrainLoss,
      heldOutKL: { layers: kl.layers, logit: kl.logit, tuned: kl.tuned! },
    };
  }),
};

export function registerLensRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // Lenses trained but never shown leave their temporary folders: they go with the server.
  app.addHook('onClose', async () => {
    for (const j of ctx.jobs.list())
      if (j.kind === 'tuned-lens' && j.status === 'done') {
        const { dir } = ctx.jobs.get(j.id).result as TrainedLensResult;
        fs.rmSync(path.dirname(dir), { recursive: true, force: true });
      }
  });
  app.post('/api/lens', async (req): Promise<LensAnswer> => {
    const p = parse(LensRequest, req.body);
    const open = ctx.registry.model(p.model);
    const tuned = p.kind === 'tuned' ? tunedLensFor(ctx, open.id, p.lens) : null;
    const ids = encodePrompt(open.model, p.prompt);
    const r = await logitLens(open.model, ids, { topK: p.topK, tunedLens: tuned?.lens, nextToken: true });
    return {
      model: open.id,
      kind: p.kind,
      lens: tuned?.id ?? null,
      tokens: r.tokens,
      strings: r.strings,
      layers: r.layers,
      labels: lensLayerLabels(r.layers),
      topK: p.topK,
      top: r.top,
      next: r.next,
    };
  });
}

/**
 * The tuned lens a request names (else the model's first): an open one, or the lens a finished tuned-lens
 * job trained, taken into the registry (under the job's id) on first use.
 */
function tunedLensFor(
  { registry, jobs }: ServerContext,
  modelId: string,
  id: string | undefined,
): OpenTunedLens {
  const lenses = registry.tunedLenses;
  const how = 'train one in the Lens view (Train a tuned lens) or start sonde serve with --tuned-lens DIR';
  if (id === undefined) {
    const first = lenses.forModel(modelId);
    if (!first) throw new ApiError(400, `no tuned lens is open for model '${modelId}': ${how}`);
    return first;
  }
  let open = lenses.byId.get(id);
  if (open === undefined) {
    const job = jobs.list().find((j) => j.id === id && j.kind === 'tuned-lens');
    if (job === undefined) {
      const ids = [...lenses.byId.keys()];
      throw new ApiError(404, `no tuned lens '${id}' (${ids.length ? `open: ${ids.join(', ')}` : how})`);
    }
    if (job.status !== 'done')
      throw new ApiError(409, `tuned lens '${id}' is not trained (its job is ${job.status})`);
    const { dir } = jobs.get(id).result as TrainedLensResult;
    // Paired as --tuned-lens pairs a folder: with the model it was trained on.
    open = lenses.open(dir, [...registry.models.values()], id);
    open.dir = null;
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
  if (open.modelId !== modelId)
    throw new ApiError(400, `tuned lens '${id}' is for model '${open.modelId}', not '${modelId}'`);
  return open;
}
