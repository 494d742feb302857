// SAE training as a server job: it trains on the model's own activations with progress, the server opens
// the SAE it saved (listed by /api/info, usable by the feature routes at once), and a cancelled run
// leaves nothing behind.
import fs from 'node:fs';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultCorpusPath, readCorpus } from '../../src/sae/corpus.js';
import { HELD_OUT_EVAL_TOKENS } from '../../src/sae/corpus-training.js';
import { evaluateSae } from '../../src/sae/evaluate.js';
import { loadSaeLens } from '../../src/sae/saelens.js';
import { buildServer } from '../../src/server/app.js';
import type { JobManager, JobState } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';
import type { SaeTrainResult } from '../../src/server/routes/sae-train.js';
import { until } from '../helpers/processes.js';

let registry: Registry;
let app: FastifyInstance;
let jobs: JobManager;
const trained: string[] = [];

beforeAll(async () => {
  registry = await Registry.open([], []);
  ({ app, jobs } = await buildServer({ registry, token: null }));
});
afterAll(async () => {
  await app?.close();
  for (const dir of trained) fs.rmSync(dir.replace(/\/[^/]+$/, ''), { recursive: true, force: true });
});

const start = (params: object) =>
  app.inject({ method: 'POST', url: '/api/jobs', payload: { kind: 'sae-train', params } });

/** Every state of the job until it ends. */
function states(id: string): Promise<JobState[]> {
  const seen: JobState[] = [];
  return new Promise((resolve) =>
    jobs.subscribe(id, (e) => {
      seen.push(structuredClone(e.state));
      if (!['queued', 'running'].includes(e.state.status)) resolve(seen);
    }),
  );
}

describe('sae-train job', () => {
  it('harvests and trains with progress, and the server opens the SAE it saved', async () => {
    const res = await start({
      hook: 'blocks.1.hook_resid_post',
      arch: 'topk',
      k: 8,
      width: 128,
      nTokens: 8192,
    });
    expect(res.statusCode).toBe(202);
    const seen = await states(res.json().id);
    const last = seen.at(-1)!;
    expect(last.status, JSON.stringify(last.error)).toBe('done');
    const stages = new Set(seen.map((s) => s.progress?.stage).filter(Boolean));
    expect([...stages]).toEqual(['harvesting activations', 'training']);
    const r = last.result as SaeTrainResult;
    trained.push(r.dir);
    // Opened under the id the answer gives, paired with the model it was trained on.
    const info = (await app.inject({ method: 'GET', url: '/api/info' })).json();
    expect(info.saes).toContainEqual(
      expect.objectContaining({
        id: r.sae,
        modelId: 'stories260K',
        hook: 'blocks.1.hook_resid_post',
        width: 128,
      }),
    );
    // What was saved is a SAELens TopK SAE of that hook, with the model and the held-out split recorded.
    const sae = loadSaeLens(r.dir);
    expect(sae.cfg).toMatchObject({ architecture: 'topk', k: 8, dIn: 64, dSae: 128 });
    expect(sae.cfg.metadata.model_name).toBe('stories260K');
    expect(sae.cfg.metadata.training_split).toMatchObject({ unit: 'documents' });
    // Measured on the documents it never saw, as the library measures them (an untrained, zero SAE
    // explains none of the variance; 8,192 rows already explain about half).
    const split = sae.cfg.metadata.training_split as { train: number };
    const want = await evaluateSae(
      registry.model(undefined).model,
      sae,
      readCorpus(defaultCorpusPath()).slice(split.train),
      {
        ctx: 128,
        maxTokens: HELD_OUT_EVAL_TOKENS,
      },
    );
    expect(r.heldOut!.on).toMatch(/^held-out documents/);
    expect(r.heldOut!.explainedVariance).toBeCloseTo(want.explainedVariance, 5);
    expect(r.heldOut!.ceRecovered).toBeCloseTo(want.ce.recovered, 5);
    expect(r.heldOut!.deadLatents).toBe(want.deadLatents.length);
    expect(r.heldOut!.explainedVariance).toBeGreaterThan(0.3);
    expect(r.heldOut!.l0).toBeLessThanOrEqual(8);
    // The feature routes use it at once (test your own text).
    const acts = await app.inject({
      method: 'POST',
      url: '/api/sae/activations',
      payload: { sae: r.sae, prompt: 'Once upon a time' },
    });
    expect(acts.statusCode).toBe(200);
    // Only the SAE is left in its folder: the harvested store is gone.
    expect(fs.readdirSync(r.dir.replace(/\/[^/]+$/, ''))).toEqual([r.dir.split('/').at(-1)]);
  });

  it('refuses a hook or model that is not there before queuing, and a cancelled run leaves no folder', async () => {
    const before0 = jobs.list().length;
    const bad = await start({ hook: 'blocks.9.hook_resid_post' });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toBe(
      "hook: 'blocks.9.hook_resid_post' is not a hook point of this model (see sonde hooks)",
    );
    const noModel = await start({ model: 'nope', hook: 'blocks.0.hook_resid_post' });
    expect(noModel.statusCode).toBe(404);
    expect(noModel.json().error.message).toBe("no model 'nope' is open (open: stories260K)");
    expect(jobs.list().length).toBe(before0);
    const before = new Set(fs.readdirSync('/tmp').filter((f) => f.startsWith('sonde-serve-sae-')));
    const res = await start({ hook: 'blocks.0.hook_resid_post', nTokens: 1 << 20 });
    const id = res.json().id;
    await until('training to start', () => jobs.get(id).progress?.stage === 'training', 120_000);
    await app.inject({ method: 'DELETE', url: `/api/jobs/${id}` });
    expect(jobs.get(id).status).toBe('cancelled');
    await until(
      'the killed job’s folder to be removed',
      () =>
        fs.readdirSync('/tmp').filter((f) => f.startsWith('sonde-serve-sae-') && !before.has(f)).length === 0,
      10_000,
    );
    expect(registry.saes.size).toBe(1);
  });
});
