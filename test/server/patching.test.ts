// The patching, attribution and DLA API: what the jobs and the route answer is the library's result for
// the same input, and bad requests are refused with the library's message.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { attributionPatching, correlation } from '../../src/methods/attribution.js';
import { directLogitAttribution } from '../../src/methods/dla.js';
import { activationPatching, patchingMatrix } from '../../src/methods/patching.js';
import { buildServer } from '../../src/server/app.js';
import type { JobState } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';
import type { AttributionAnswer, PatchingAnswer } from '../../src/server/routes/patching.js';
import type { DlaAnswer } from '../../src/server/routes/dla.js';

const LILY = {
  clean: 'Once upon a time, there was a little girl named Lily. One day,',
  corrupt: 'Once upon a time, there was a little girl named Tim. One day,',
  answer: ' Lily',
  wrong: ' Tim',
};

let app: FastifyInstance;
let registry: Registry;
beforeAll(async () => {
  registry = await Registry.open([], []);
  ({ app } = await buildServer({ registry, token: null, webRoot: undefined }));
});
afterAll(async () => app?.close());

async function runJob(kind: string, params: unknown): Promise<JobState> {
  const start = await app.inject({ method: 'POST', url: '/api/jobs', payload: { kind, params } });
  expect(start.statusCode).toBe(202);
  const { id } = start.json<JobState>();
  for (;;) {
    const s = (await app.inject({ method: 'GET', url: `/api/jobs/${id}` })).json<JobState>();
    if (!['queued', 'running'].includes(s.status)) return s;
    await new Promise((r) => setTimeout(r, 50));
  }
}

const close = (got: number[][], want: number[][]) =>
  got.forEach((row, i) => row.forEach((v, j) => expect(v).toBeCloseTo(want[i]![j]!, 4)));

describe('patching job', () => {
  it('answers activationPatching + patchingMatrix, with token labels and the CLI’s colour scale', async () => {
    const s = await runJob('patching', { ...LILY, target: 'z', direction: 'noise', perPosition: true });
    expect(s.status).toBe('done');
    const got = s.result as PatchingAnswer;
    const model = registry.model(undefined).model;
    const want = await activationPatching(model, {
      ...LILY,
      target: 'z',
      direction: 'noise',
      perPosition: true,
    });
    const m = patchingMatrix(want);
    expect(got.table.rows).toEqual(m.rows);
    expect(got.table.rowAxis).toBe('layer.head');
    close(got.table.values, m.values);
    close(got.table.raw, m.raw);
    expect(got.cleanMetric).toBeCloseTo(want.cleanMetric, 4);
    expect(got.table.columns[14]).toBe('14 " Lily"/" Tim"');
    expect(got.table.cleanStrings[14]).toBe(' Lily');
    expect(got.table.corruptStrings[14]).toBe(' Tim');
    const maxAbs = (g: number[][]) => Math.max(...g.flat().map(Math.abs));
    expect(got.scale.normalised).toBeCloseTo(Math.max(1, maxAbs(m.values)), 6);
    expect(got.scale.raw).toBeCloseTo(maxAbs(m.raw), 4);
  });

  it('fails with the library’s message when the prompts tokenize to different lengths', async () => {
    const s = await runJob('patching', {
      ...LILY,
      corrupt: 'Once upon a time, there was a little girl named Anna. One day,',
    });
    expect(s.status).toBe('failed');
    expect(s.error!.message).toMatch(/same number of tokens: clean has 19/);
  });

  it('refuses a bad target before starting', async () => {
    const r = await app.inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { kind: 'patching', params: { ...LILY, target: 'mlp_in' } },
    });
    expect(r.statusCode).toBe(400);
    expect(r.json().error.message).toMatch(/^target: /);
  });
});

describe('attribution job', () => {
  it('answers attributionPatching, and with compare the correlation with activation patching', async () => {
    const s = await runJob('attribution', { ...LILY, compare: true });
    expect(s.status).toBe('done');
    const got = s.result as AttributionAnswer;
    const model = registry.model(undefined).model;
    const a = await attributionPatching(model, LILY);
    const r = await activationPatching(model, LILY);
    close(got.table.values, patchingMatrix(a).values);
    close(got.actual!.table.values, patchingMatrix(r).values);
    expect(got.correlation).toBeCloseTo(correlation(a.values, r.values), 4);
    expect(got.table.columns[14]).toBe('14 " Lily"/" Tim"');
  });
});

describe('POST /api/dla', () => {
  const prompt = 'Lily and Tim went to the park. Tim gave the ball to';
  it('answers directLogitAttribution', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/dla',
      payload: { prompt, answer: ' Lily', wrong: ' Tim', pos: -1 },
    });
    expect(res.statusCode).toBe(200);
    const got = res.json<DlaAnswer>();
    const model = registry.model(undefined).model;
    const want = await directLogitAttribution(model, model.encode(prompt), {
      answer: ' Lily',
      wrong: ' Tim',
    });
    expect(got.components.map((c) => c.name)).toEqual(want.components.map((c) => c.name));
    got.components.forEach((c, i) => expect(c.contribution).toBeCloseTo(want.components[i]!.contribution, 5));
    expect(got.strings).toEqual(model.tokenStrings(want.tokens));
    expect(got.logitDiff).toBeCloseTo(want.logitDiff, 5);
  });

  it('refuses a position outside the prompt and an answer that is not one token', async () => {
    const far = await app.inject({
      method: 'POST',
      url: '/api/dla',
      payload: { prompt, answer: ' Lily', pos: 99 },
    });
    expect(far.statusCode).toBe(400);
    expect(far.json().error.message).toMatch(/pos 99 is outside the sequence/);
    const two = await app.inject({
      method: 'POST',
      url: '/api/dla',
      payload: { prompt, answer: ' Lily and' },
    });
    expect(two.statusCode).toBe(400);
  });
});
