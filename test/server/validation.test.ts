// Every API route, found from the app itself (so routes added later are covered too), answers malformed
// requests with a 4xx and {"error": {"type", "message"}}, and the server keeps answering afterwards.
import type { FastifyInstance, LightMyRequestResponse } from 'fastify';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer, NO_WEB_APP, type RouteEntry } from '../../src/server/app.js';
import { JOB_KINDS } from '../../src/server/jobs/kinds.js';
import type { JobManager } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';
import { LIMITS } from '../../src/server/validate.js';

let app: FastifyInstance;
let jobs: JobManager;
let routes: RouteEntry[];
const HOST = { host: '127.0.0.1:7860' };

beforeAll(async () => {
  const registry = await Registry.open([], []);
  ({ app, jobs, routes } = await buildServer({ registry, token: null, webRoot: null }));
  await app.ready();
});
afterAll(async () => app?.close());

const withBody = (r: RouteEntry) => ['POST', 'PUT', 'PATCH'].includes(r.method);
/** The route's path with its parameters filled in. */
const pathOf = (r: RouteEntry, param: string) => r.url.replace(/:[A-Za-z_]+/g, encodeURIComponent(param));

function isErrorBody(res: LightMyRequestResponse): string {
  const body = res.json() as { error?: { type?: unknown; message?: unknown } };
  expect(typeof body.error?.type, res.body).toBe('string');
  expect(typeof body.error?.message, res.body).toBe('string');
  expect((body.error!.message as string).length).toBeGreaterThan(0);
  return body.error!.message as string;
}

/** A refusal: a 4xx with the error body; returns the message. */
function refused(res: LightMyRequestResponse, what: string): string {
  expect(res.statusCode, `${what} → ${res.statusCode} ${res.body.slice(0, 200)}`).toBeGreaterThanOrEqual(400);
  expect(res.statusCode, `${what} → ${res.body.slice(0, 200)}`).toBeLessThan(500);
  return isErrorBody(res);
}

function post(r: RouteEntry, payload: string, param = 'x', type = 'application/json') {
  return app.inject({
    method: r.method as 'POST',
    url: pathOf(r, param),
    headers: { ...HOST, 'content-type': type },
    payload,
  });
}

async function stillAnswers(): Promise<void> {
  const info = await app.inject({ url: '/api/info', headers: HOST });
  expect(info.statusCode).toBe(200);
  expect((info.json() as { models: unknown[] }).models.length).toBeGreaterThan(0);
}

describe('every API route', () => {
  it('is found from the app', () => {
    const names = routes.map((r) => `${r.method} ${r.url}`);
    for (const r of [
      'GET /api/info',
      'POST /api/prompt',
      'POST /api/jobs',
      'GET /api/jobs/:id',
      'DELETE /api/jobs/:id',
    ])
      expect(names).toContain(r);
  });

  it('refuses bodies that are not a JSON object, or not JSON, with a 4xx naming the problem', async () => {
    const malformed: [string, RegExp][] = [
      ['null', /request: .*object/],
      ['[]', /request: .*object/],
      ['[{"prompt":"Once"}]', /request: .*object/],
      ['42', /request: .*object/],
      ['"Once upon a time"', /request: .*object/],
      ['true', /request: .*object/],
      ['{"prompt": ', /not valid JSON/],
      ['not json at all', /not valid JSON/],
      ['{"a":1}{"b":2}', /not valid JSON/],
      ['', /empty/],
    ];
    for (const r of routes.filter(withBody))
      for (const [payload, message] of malformed)
        expect(refused(await post(r, payload), `${r.method} ${r.url} ${payload}`)).toMatch(message);
    await stillAnswers();
  });

  it('refuses wrong types, missing fields and nested junk (fast-check), naming the field', async () => {
    const bodyRoutes = routes.filter(withBody);
    // Objects of any keys and values; objects with the field names routes use, holding junk.
    const fields = [
      'prompt',
      'model',
      'topK',
      'kind',
      'params',
      'clean',
      'corrupt',
      'answer',
      'wrong',
      'target',
      'sae',
      'feature',
      'layer',
    ];
    const junk = fc.oneof(
      fc.jsonValue({ maxDepth: 3 }),
      fc.dictionary(fc.constantFrom(...fields), fc.jsonValue({ maxDepth: 3 }), { maxKeys: 5 }),
      fc.record({ kind: fc.constantFrom(...Object.keys(JOB_KINDS)), params: fc.jsonValue({ maxDepth: 3 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...bodyRoutes), junk, async (r, body) => {
        const res = await post(r, JSON.stringify(body));
        // Junk can be valid by chance (a route with only optional fields): then it is answered, never a 5xx.
        if (res.statusCode === 202 && r.url === '/api/jobs')
          await jobs.cancel((res.json() as { id: string }).id);
        expect(res.statusCode, `${r.url} ${JSON.stringify(body)} → ${res.body.slice(0, 300)}`).toBeLessThan(
          500,
        );
        if (res.statusCode >= 400) isErrorBody(res);
      }),
      { numRuns: 150, seed: 15 },
    );
    await stillAnswers();
  });

  it('names the bad field in the message', async () => {
    const prompt = routes.find((r) => r.url === '/api/prompt')!;
    expect(refused(await post(prompt, '{}'), 'missing')).toMatch(/^prompt: /);
    expect(refused(await post(prompt, '{"prompt": 5}'), 'number')).toMatch(/^prompt: .*string/);
    expect(refused(await post(prompt, '{"prompt": {"a": [1, {"b": null}]}}'), 'nested')).toMatch(/^prompt: /);
    expect(refused(await post(prompt, '{"prompt": "Once", "topK": "5"}'), 'topK')).toMatch(/^topK: /);
    expect(refused(await post(prompt, '{"prompt": "Once", "topK": 1e9}'), 'topK')).toMatch(/^topK: /);
    expect(refused(await post(prompt, '{"prompt": "Once", "model": "nope"}'), 'model')).toMatch(
      /no model 'nope' is open/,
    );
    const start = routes.find((r) => r.url === '/api/jobs' && r.method === 'POST')!;
    expect(refused(await post(start, '{"kind": "nope"}'), 'kind')).toMatch(
      /unknown job kind 'nope' \(known: .*patching/,
    );
    expect(refused(await post(start, '{"kind": "patching", "params": {"clean": "a"}}'), 'params')).toMatch(
      /^corrupt: /,
    );
    // A refused job never started a worker.
    expect(jobs.runningWorkers()).toBe(0);
    expect(jobs.list()).toEqual([]);
  });

  it('refuses huge strings by their limit, and a body over the limit with 413', async () => {
    const big = 'x'.repeat(20_000);
    const fields = ['prompt', 'model', 'clean', 'corrupt', 'answer', 'wrong', 'kind', 'text', 'sae'];
    for (const r of routes.filter(withBody)) {
      const body = JSON.stringify(Object.fromEntries(fields.map((f) => [f, big])));
      refused(await post(r, body), `${r.url} huge strings`);
      const limit = r.bodyLimit ?? LIMITS.bodyBytes;
      const res = await post(r, JSON.stringify({ prompt: 'y'.repeat(limit + 1) }));
      expect(res.statusCode).toBe(413);
      expect(isErrorBody(res)).toBe(`the request body is over the server's limit of ${limit / 1024} KB`);
    }
    const prompt = routes.find((r) => r.url === '/api/prompt')!;
    expect(refused(await post(prompt, JSON.stringify({ prompt: big })), 'prompt')).toBe(
      `prompt: prompt is over ${LIMITS.promptChars} characters`,
    );
    // Past the model's context: the CLI's refusal.
    expect(refused(await post(prompt, JSON.stringify({ prompt: ' a'.repeat(1000) })), 'context')).toMatch(
      /more than the model's context of 512: shorten it/,
    );
    await stillAnswers();
  });

  it('answers junk in paths and queries of every route with a 4xx or an answer, never a 5xx', async () => {
    const params = ['nope', '../../etc/passwd', '%00', 'a'.repeat(500), '<script>'];
    const queries = ['', '?a=1&a=2', '?prompt[]=x', '?x=%ZZ', `?q=${'z'.repeat(5000)}`];
    for (const r of routes.filter((x) => !withBody(x)))
      for (const p of params)
        for (const q of queries) {
          const res = await app.inject({ method: r.method as 'GET', url: pathOf(r, p) + q, headers: HOST });
          expect(res.statusCode, `${r.method} ${pathOf(r, p)}${q}`).toBeLessThan(500);
          // '..' segments can leave the API: then it is the page's answer (here: how to build it).
          if (String(res.headers['content-type']).startsWith('text/plain')) expect(res.body).toBe(NO_WEB_APP);
          else if (res.statusCode >= 400 && r.method !== 'HEAD') isErrorBody(res);
        }
    await stillAnswers();
  });

  it('answers an unknown route, or a known path with another method, with a 404 in JSON', async () => {
    for (const [method, url] of [
      ['GET', '/api/nothing'],
      ['POST', '/api/nothing'],
      ['PUT', '/api/prompt'],
      ['GET', '/api/prompt'],
      ['DELETE', '/api/info'],
    ] as const) {
      const res = await app.inject({
        method,
        url,
        headers: {
          ...HOST,
          ...(method === 'GET' || method === 'DELETE' ? {} : { 'content-type': 'application/json' }),
        },
        payload: method === 'GET' || method === 'DELETE' ? undefined : '{}',
      });
      expect(res.statusCode, `${method} ${url}`).toBe(404);
      expect(isErrorBody(res)).toBe(`no API route ${method} ${url}`);
    }
  });

  it('answers a handler’s own failure (not a user mistake) with a 500 in JSON, and keeps answering', async () => {
    const registry = await Registry.open([], []);
    const own = (await buildServer({ registry, token: null, webRoot: null })).app;
    // A handler that fails the way a bug would, added before the server starts.
    own.get('/api/test-only/throws', async () => {
      throw new TypeError("Cannot read properties of undefined (reading 'x')");
    });
    const res = await own.inject({ url: '/api/test-only/throws', headers: HOST });
    expect(res.statusCode).toBe(500);
    expect(res.json()).toEqual({
      error: { type: 'internal', message: "Cannot read properties of undefined (reading 'x')" },
    });
    expect((await own.inject({ url: '/api/info', headers: HOST })).statusCode).toBe(200);
    const prompt = await own.inject({
      method: 'POST',
      url: '/api/prompt',
      headers: { ...HOST, 'content-type': 'application/json' },
      payload: { prompt: 'Once' },
    });
    expect(prompt.statusCode).toBe(200);
    await own.close();
  });
});
