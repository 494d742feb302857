// POST /api/lens and the tuned-lens job: the grids are the library's logit and tuned lenses.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { logitLens, lensLayerLabels } from '../../src/methods/lens.js';
import { promptPredictions } from '../../src/methods/predictions.js';
import { createTunedLens, saveTunedLens, type TunedLens } from '../../src/methods/tuned-lens.js';
import { Tensor } from '../../src/engine/tensor.js';
import { buildServer } from '../../src/server/app.js';
import { Registry } from '../../src/server/registry.js';
import type { JobState } from '../../src/server/jobs/manager.js';

let app: FastifyInstance;
let registry: Registry;
let tmp: string;
const prompt = 'Once upon a time, there was a little girl named Lily.';

/** A tuned lens with small random translators (a real lens differs from the logit lens). */
function randomLens(r: Registry, id: string): TunedLens {
  const lens = createTunedLens(r.model(id).model);
  const [L, d] = [lens.A.shape[0]!, lens.A.shape[1]!];
  let s = 1;
  const rnd = () => ((s = (s * 16807) % 2147483647) / 2147483647 - 0.5) * 0.2;
  lens.A = new Tensor(Float32Array.from({ length: L * d * d }, rnd), [L, d, d]);
  lens.b = new Tensor(Float32Array.from({ length: L * d }, rnd), [L, 1, d]);
  return lens;
}

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-lens-test-'));
  const models = ['assets/stories260K', 'test/fixtures/induction-2l'];
  const plain = await Registry.open(models, []);
  await saveTunedLens(randomLens(plain, 'induction-2l'), path.join(tmp, 'organism-lens'));
  registry = await Registry.open(models, [], [path.join(tmp, 'organism-lens')]);
  ({ app } = await buildServer({ registry, token: null, webRoot: '' }));
});
afterAll(async () => {
  await app?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

const post = (body: unknown) => app.inject({ method: 'POST', url: '/api/lens', payload: body as object });

describe('POST /api/lens', () => {
  it('answers the logit lens of stories260K: top tokens and the next token’s rank and probability', async () => {
    const res = await post({ prompt, topK: 3 });
    expect(res.statusCode).toBe(200);
    const got = res.json();
    const model = registry.model('stories260K').model;
    const { logits: _l, ...want } = await logitLens(model, model.encode(prompt), {
      topK: 3,
      nextToken: true,
    });
    void _l;
    expect(got).toMatchObject({ model: 'stories260K', kind: 'logit', lens: null, topK: 3 });
    expect(got.labels).toEqual(lensLayerLabels(want.layers));
    expect(got.labels).toEqual(['L0 in', 'L1 in', 'L2 in', 'L3 in', 'L4 in', 'final']);
    for (const k of ['tokens', 'strings', 'layers', 'top', 'next'] as const) expect(got[k]).toEqual(want[k]);
    // The final layer is the model's own prediction; next[l][p] is tokens[p + 1]'s.
    expect(got.next[5][0].id).toBe(want.tokens[1]);
    expect(got.next[0]).toHaveLength(want.tokens.length - 1);
    // Cross-check of the final layer's next-token numbers with the model's own per-token losses.
    const own = await promptPredictions(model, want.tokens, 1);
    got.next[5].forEach((n: { prob: number; rank: number; id: number }, p: number) => {
      expect(Math.log(n.prob)).toBeCloseTo(-own.losses[p]!, 4);
      expect(n.rank === 1).toBe(own.predictions[p]![0]!.id === n.id);
    });
  });

  it('answers the tuned lens opened with --tuned-lens, paired with the model it fits', async () => {
    expect(registry.info().tunedLenses).toMatchObject([{ id: 'organism-lens', modelId: 'induction-2l' }]);
    const text = ' cat dog tree cat dog tree';
    const res = await post({ model: 'induction-2l', prompt: text, kind: 'tuned' });
    expect(res.statusCode).toBe(200);
    const got = res.json();
    expect(got.lens).toBe('organism-lens');
    const model = registry.model('induction-2l').model;
    const tunedLens = registry.tunedLenses.byId.get('organism-lens')!.lens;
    const want = await logitLens(model, model.encode(text), { topK: 5, tunedLens, nextToken: true });
    expect(got.top).toEqual(want.top);
    expect(got.next).toEqual(want.next);
    const logit = await logitLens(model, model.encode(text), { topK: 5 });
    expect(got.top[0]).not.toEqual(logit.top[0]);
  });

  it('trains a tuned lens as a job and shows it by the job’s id', async () => {
    const start = await app.inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { kind: 'tuned-lens', params: { steps: 3 } },
    });
    expect(start.statusCode).toBe(202);
    const id = start.json<JobState>().id;
    let state: JobState;
    do {
      await new Promise((r) => setTimeout(r, 200));
      state = (await app.inject({ method: 'GET', url: `/api/jobs/${id}` })).json<JobState>();
    } while (state.status === 'queued' || state.status === 'running');
    expect(state.status).toBe('done');
    expect(state.result).toMatchObject({ steps: 3 });
    const res = await post({ prompt, kind: 'tuned', lens: id });
    expect(res.statusCode).toBe(200);
    const kept = registry.tunedLenses.byId.get(id)!;
    expect(kept.modelId).toBe('stories260K');
    expect(kept.lens.meta.steps).toBe(3);
    const model = registry.model(undefined).model;
    const want = await logitLens(model, model.encode(prompt), {
      topK: 5,
      tunedLens: kept.lens,
      nextToken: true,
    });
    expect(res.json().top).toEqual(want.top);
    // Its temporary folder is gone once the lens is in the registry; it is listed by /api/info.
    expect(fs.existsSync((state.result as { dir: string }).dir)).toBe(false);
    const info = (await app.inject({ method: 'GET', url: '/api/info' })).json();
    expect(info.tunedLenses.map((l: { id: string }) => l.id)).toContain(id);
  });

  it('refuses a missing lens, a lens of another model and bad fields with a clear 4xx', async () => {
    // stories260K has no tuned lens until one is trained (the test above ran first).
    const wrongModel = await post({ model: 'induction-2l', prompt, kind: 'tuned', lens: 'nope' });
    expect(wrongModel.statusCode).toBe(404);
    expect(wrongModel.json().error.message).toMatch(/no tuned lens 'nope' \(open: organism-lens/);
    const other = await post({ prompt, kind: 'tuned', lens: 'organism-lens' });
    expect(other.statusCode).toBe(400);
    expect(other.json().error.message).toMatch(/is for model 'induction-2l', not 'stories260K'/);
    expect((await post({ prompt, kind: 'tuned-ish' })).json().error.message).toMatch(/^kind:/);
    expect((await post({ prompt, topK: 500 })).json().error.message).toMatch(/^topK:/);
    const job = await app.inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { kind: 'tuned-lens', params: { steps: 100000 } },
    });
    expect(job.statusCode).toBe(400);
    expect(job.json().error.message).toMatch(/^steps:/);
  });

  it('refuses a --tuned-lens folder that is no lens or fits no open model, naming it', async () => {
    await expect(Registry.open([], [], [path.join(tmp, 'missing')])).rejects.toThrow(
      /'.*missing' is not a tuned lens/,
    );
    await expect(Registry.open([], [], [path.join(tmp, 'organism-lens')])).rejects.toThrow(
      /tuned lens '.*organism-lens' fits none of the open models \(stories260K: tuned lens is for a model with 2 layers/,
    );
  });

  it('says how to get a tuned lens when the model has none', async () => {
    const fresh = await Registry.open([], []);
    const { app: bare } = await buildServer({ registry: fresh, token: null, webRoot: '' });
    const res = await bare.inject({ method: 'POST', url: '/api/lens', payload: { prompt, kind: 'tuned' } });
    expect(res.statusCode).toBe(400);
    expect(res.json().error.message).toMatch(
      /no tuned lens is open for model 'stories260K'.*--tuned-lens DIR/,
    );
    await bare.close();
  });
});
