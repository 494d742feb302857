// SAE training as a job: harvest the model's activations over the built-in corpus (sampled from
// stories260K itself), train, save in SAELens's layout, evaluate on the held-out documents; the server
// then opens the SAE (what `sonde sae train --hook … --out DIR` followed by `sonde serve --sae DIR` does).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { trackLeftover } from '../../io/leftovers.js';
import { SAE_ARCHITECTURES } from '../../sae/config.js';
import { defaultCorpusPath } from '../../sae/corpus.js';
import { corpusTrainingData } from '../../sae/corpus-training.js';
import { SPLIT_KEY, DEFAULT_HOLDOUT } from '../../sae/provenance.js';
import { saveSaeLens } from '../../sae/saelens.js';
import { trainSae } from '../../sae/train.js';
import { ApiError } from '../errors.js';
import { jobKind } from '../jobs/kind.js';
import { LIMITS, modelId, seed } from '../validate.js';

export const SaeTrainParams = z.object({
  model: modelId,
  hook: z.string().min(1).max(200),
  arch: z.enum(SAE_ARCHITECTURES).default('topk'),
  /** Latents (default 8 × d_in). */
  width: z.number().int().min(1).max(LIMITS.saeTrainWidth).optional(),
  /** Active latents per row, for topk / batchtopk. */
  k: z.number().int().min(1).max(512).default(32),
  /** Training rows (tokens). */
  nTokens: z
    .number()
    .int()
    .min(1024)
    .max(LIMITS.saeTrainTokens)
    .default(1 << 17),
  ctx: z.number().int().min(2).max(4096).default(128),
  seed,
});

/** What a finished job answers (with `sae`, the id it is open under, once the server has opened it). */
export interface SaeTrainResult {
  dir: string;
  sae?: string;
  hook: string;
  arch: string;
  width: number;
  /** Training rows. */
  rows: number;
  seconds: number;
  /** Held-out evaluation: what it was measured on and its numbers. */
  heldOut: {
    on: string;
    l0: number;
    explainedVariance: number;
    ceRecovered: number;
    deadLatents: number;
  } | null;
}

export const saeTrainJobs = {
  'sae-train': jobKind(
    SaeTrainParams,
    async (ctx, p): Promise<SaeTrainResult> => {
      const model = ctx.model(p.model);
      const t0 = performance.now();
      const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-serve-sae-'));
      // A cancelled (killed) job leaves nothing: the manager removes what this journal names.
      const keep = trackLeftover(root);
      try {
        const name = `${p.hook.replace(/[^\w.]+/g, '_')}-${p.arch}`;
        const storeDir = path.join(root, `${name}.activations`);
        const t = await corpusTrainingData(model, {
          hook: p.hook,
          corpus: defaultCorpusPath(),
          ctx: p.ctx,
          testFraction: DEFAULT_HOLDOUT,
          maxRows: p.nTokens,
          storeDir,
          onHarvest: (_hook, done) =>
            ctx.progress({ done, total: p.nTokens, stage: 'harvesting activations' }),
        });
        const topk = p.arch === 'topk' || p.arch === 'batchtopk';
        const result = await trainSae(t.data, {
          architecture: p.arch,
          width: p.width ?? 8 * t.data.dIn,
          k: topk ? p.k : undefined,
          hookName: p.hook,
          totalRows: p.nTokens,
          seed: p.seed,
          metadata: { ...t.metadata, [SPLIT_KEY]: t.split },
          onStep: (s) => ctx.progress({ done: s.step, total: s.steps, stage: 'training' }),
        });
        const dir = path.join(root, name);
        await saveSaeLens(result.sae, dir, { sparsity: result.logDensity });
        fs.rmSync(storeDir, { recursive: true, force: true });
        keep();
        const ev = t.evaluate ? await t.evaluate(result.sae) : null;
        return {
          dir,
          hook: p.hook,
          arch: p.arch,
          width: result.sae.cfg.dSae,
          rows: p.nTokens,
          seconds: (performance.now() - t0) / 1000,
          heldOut: ev && {
            on: ev.on,
            l0: ev.l0,
            explainedVariance: ev.explainedVariance,
            ceRecovered: ev.ce.recovered,
            deadLatents: ev.deadLatents.length,
          },
        };
      } catch (e) {
        fs.rmSync(root, { recursive: true, force: true });
        throw e;
      }
    },
    {
      check: (p, registry) => {
        if (!registry.model(p.model).model.hookNames().includes(p.hook))
          throw new ApiError(400, `hook: '${p.hook}' is not a hook point of this model (see sonde hooks)`);
      },
      adopt: (result, registry) => {
        const r = result as SaeTrainResult;
        return { ...r, sae: registry.addSae(r.dir).id };
      },
    },
  ),
};
