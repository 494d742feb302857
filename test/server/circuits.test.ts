// The circuit jobs and routes: a job's result is the library's result for the same input.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptGraph } from '../../src/circuits/attribution-prompt.js';
import { discoverCircuit } from '../../src/circuits/discover.js';
import { graphDrawing } from '../../src/circuits/drawing.js';
import { examplePairs, parsePairs } from '../../src/circuits/pairs.js';
import { defaultTranscodersDir, loadTranscoders } from '../../src/circuits/transcoder-set.js';
import { buildServer } from '../../src/server/app.js';
import type { JobManager, JobState } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';

let app: FastifyInstance;
let jobs: JobManager;
let registry: Registry;
beforeAll(async () => {
  registry = await Registry.open([], []);
  ({ app, jobs } = await buildServer({ registry, token: null, webRoot: '' }));
});
afterAll(async () => app?.close());

/** Starts a job and waits for it to end. */
async function runJob(kind: string, params: unknown): Promise<JobState> {
  const res = await app.inject({ method: 'POST', url: '/api/jobs', payload: { kind, params } });
  expect(res.statusCode, res.body).toBe(202);
  const { id } = res.json<JobState>();
  return new Promise((resolve) => {
    jobs.subscribe(id, (e) => {
      if (!['queued', 'running'].includes(e.state.status)) resolve(e.state);
    });
  });
}

const names = () => examplePairs().find((e) => e.name === 'circuit-names')!;

describe('circuit job', () => {
  it('EAP on the names pairs: every edge score, the circuit and its faithfulness are the library’s', async () => {
    const text = names().text.split('\n').slice(0, 2).join('\n');
    const job = await runJob('circuit', { method: 'eap', metric: 'logit-diff', pairs: text, top: 20 });
    expect(job.status, JSON.stringify(job.error)).toBe('done');
    const model = registry.model(undefined).model;
    const want = await discoverCircuit(model, parsePairs(model, text, 'pairs'), {
      method: 'eap',
      metric: 'logit-diff',
      top: 20,
    });
    const got = job.result as typeof want & { drawing: ReturnType<typeof graphDrawing> };
    expect(got.edges.map((e) => e.edge)).toEqual(want.edges.map((e) => e.edge));
    got.edges.forEach((e, i) => expect(e.score!).toBeCloseTo(want.edges[i]!.score!, 5));
    expect(got.circuit.edges).toEqual(want.circuit.edges);
    expect(got.circuit.faithfulness).toBeCloseTo(want.circuit.faithfulness, 5);
    // The drawing places every node of the graph and carries every edge with its score.
    const drawing = graphDrawing(want, model.cfg);
    expect(got.drawing.nodes).toEqual(drawing.nodes);
    expect(got.drawing.edges.map((e) => e.targets)).toEqual(drawing.edges.map((e) => e.targets));
    expect(got.drawing.rows.map((r) => r.label)).toContain('layer 4 MLP');
  });

  it('refuses options the method does not take, and a pair of unequal token counts, with the library’s message', async () => {
    const bad = await app.inject({
      method: 'POST',
      url: '/api/jobs',
      payload: { kind: 'circuit', params: { method: 'acdc', metric: 'kl', pairs: names().text, top: 5 } },
    });
    expect(bad.statusCode).toBe(400);
    expect(bad.json().error.message).toMatch(/--top is for eap and eap-ig, not --method acdc/);
    const job = await runJob('circuit', {
      method: 'eap',
      metric: 'kl',
      top: 5,
      pairs: '{"clean": "Once upon a time", "corrupt": "Once upon a time there"}',
    });
    expect(job.status).toBe('failed');
    expect(job.error!.message).toMatch(/pairs line 1: clean has \d+ tokens and corrupt \d+/);
  });

  it('cancels a running discovery: the job stops at its next progress report and the server keeps working', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/api/jobs',
      payload: {
        kind: 'circuit',
        params: {
          method: 'acdc',
          metric: 'kl',
          threshold: 0,
          pairs: names().text.split('\n').slice(0, 2).join('\n'),
        },
      },
    });
    const { id } = res.json<JobState>();
    await new Promise<void>((resolve) =>
      jobs.subscribe(id, (e) => (e.state.progress !== null ? resolve() : undefined)),
    );
    const del = await app.inject({ method: 'DELETE', url: `/api/jobs/${id}` });
    expect(del.json<JobState>().status).toBe('cancelled');
    const next = await runJob('circuit', {
      method: 'eap',
      metric: 'kl',
      top: 5,
      pairs: names().text.split('\n')[0],
    });
    expect(next.status).toBe('done');
    expect(jobs.get(id).status).toBe('cancelled');
  });

  it('lists the bundled example pairs', async () => {
    const res = await app.inject({ method: 'GET', url: '/api/circuits/examples' });
    expect(res.json().map((e: { name: string }) => e.name)).toEqual(['circuit-names', 'induction-pairs']);
  });
});

describe('attribution-graph job and graph files', () => {
  const prompt = 'Tom and Lily went to the park. Lily';

  it('returns the circuit-tracer graph file the library makes for the prompt', async () => {
    const job = await runJob('attribution-graph', { prompt });
    expect(job.status, JSON.stringify(job.error)).toBe('done');
    const model = registry.model(undefined).model;
    const want = await promptGraph(
      model,
      loadTranscoders(defaultTranscodersDir(), model.cfg),
      model.encode(prompt),
      { slug: 'sonde-explorer', scan: 'stories260K-transcoders', prompt },
    );
    const got = job.result as { file: typeof want.file; scores: typeof want.scores };
    expect(got.file.metadata).toEqual(want.file.metadata);
    expect(got.file.nodes.map((n) => n.node_id)).toEqual(want.file.nodes.map((n) => n.node_id));
    expect(got.file.links.map((l) => `${l.source}->${l.target}`)).toEqual(
      want.file.links.map((l) => `${l.source}->${l.target}`),
    );
    got.file.links.forEach((l, i) => expect(l.weight).toBeCloseTo(want.file.links[i]!.weight, 4));
    expect(got.scores.replacement).toBeCloseTo(want.scores.replacement, 4);

    // The same file uploaded comes back with the same drawing.
    const up = await app.inject({
      method: 'POST',
      url: '/api/attribution-graph/file',
      payload: { file: got.file },
    });
    expect(up.statusCode, up.body).toBe(200);
    expect(up.json().file).toEqual(got.file);
    expect(up.json().drawing).toEqual((job.result as { drawing: unknown }).drawing);
  });

  it('refuses a graph file whose link names a node it does not list', async () => {
    const file = {
      metadata: { prompt_tokens: ['a'], prompt: 'a' },
      nodes: [{ node_id: 'E_1_0', feature: 0, layer: 'E', ctx_idx: 0, feature_type: 'embedding' }],
      links: [{ source: 'E_1_0', target: 'nope', weight: 1 }],
    };
    const up = await app.inject({ method: 'POST', url: '/api/attribution-graph/file', payload: { file } });
    expect(up.statusCode).toBe(400);
    expect(up.json().error.message).toMatch(/^file\.links\.0: links to a node the file does not list/);
  });
});
