// Long jobs on a real listening server: progress over server-sent events, the library's result at the
// end, cancel, the queue, failures, shutdown, and the server answering small requests while a sweep runs.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { activationPatching } from '../../src/methods/patching.js';
import { patchingAnswer } from '../../src/server/routes/patching.js';
import { buildServer } from '../../src/server/app.js';
import type { JobManager, JobState } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';
import { until } from '../helpers/processes.js';

let registry: Registry;
let app: FastifyInstance;
let jobs: JobManager;
let base: string;

beforeAll(async () => {
  registry = await Registry.open([], []);
  ({ app, jobs } = await buildServer({ registry, token: null, webRoot: null, concurrency: 1, keepJobs: 3 }));
  base = await app.listen({ port: 0, host: '127.0.0.1' });
});
afterAll(async () => app?.close());

const SHORT = {
  clean: 'Once upon a time, there was a little girl named Lily',
  corrupt: 'Once upon a time, there was a little girl named Tim',
  answer: ' Lily',
  wrong: ' Tim',
};
/** A sweep of about a minute on 2 cores: every layer × position of a 158-token prompt (790 patched runs). */
const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside. ';
const LONG = { ...SHORT, clean: story.repeat(6), corrupt: story.replace('Lily', 'Tim').repeat(6) };

async function call<T>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await fetch(base + path, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as T };
}

async function startJob(params: object, kind = 'patching'): Promise<JobState> {
  const r = await call<JobState>('POST', '/api/jobs', { kind, params });
  expect(r.status).toBe(202);
  return r.body;
}

/** Every state event of a job's SSE stream, until the server ends the stream. */
async function events(id: string): Promise<JobState[]> {
  const res = await fetch(`${base}/api/jobs/${id}/events`);
  expect(res.headers.get('content-type')).toBe('text/event-stream');
  const states: JobState[] = [];
  let text = '';
  const decoder = new TextDecoder();
  for await (const chunk of res.body!) {
    text += decoder.decode(chunk as Uint8Array, { stream: true });
    let end: number;
    while ((end = text.indexOf('\n\n')) >= 0) {
      const block = text.slice(0, end);
      text = text.slice(end + 2);
      expect(block).toMatch(/^event: state\ndata: /);
      states.push(JSON.parse(block.slice(block.indexOf('data: ') + 6)) as JobState);
    }
  }
  return states;
}

/** Numbers equal to 6 digits, everything else exactly (JSON turns NaN into null). */
function expectSame(got: unknown, want: unknown, where = 'result'): void {
  if (typeof want === 'number' && typeof got === 'number') expect(got, where).toBeCloseTo(want, 6);
  else if (Array.isArray(want)) {
    expect(Array.isArray(got), where).toBe(true);
    expect((got as unknown[]).length, where).toBe(want.length);
    want.forEach((w, i) => expectSame((got as unknown[])[i], w, `${where}[${i}]`));
  } else if (want !== null && typeof want === 'object') {
    expect(Object.keys(got as object).sort(), where).toEqual(Object.keys(want).sort());
    for (const [k, w] of Object.entries(want))
      expectSame((got as Record<string, unknown>)[k], w, `${where}.${k}`);
  } else expect(got, where).toEqual(want);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

describe('jobs', () => {
  it('streams progress over SSE and ends with done and the library’s result', async () => {
    const job = await startJob(SHORT);
    expect(job.status).toMatch(/queued|running/);
    const states = await events(job.id);
    const progress = states.filter((s) => s.status === 'running' && s.progress !== null);
    expect(progress.length).toBeGreaterThanOrEqual(2);
    const dones = progress.map((s) => s.progress!.done);
    expect(dones).toEqual([...dones].sort((a, b) => a - b));
    const last = states.at(-1)!;
    expect(last.status).toBe('done');
    expect(last.progress!.done).toBe(last.progress!.total);

    const { model } = registry.model(undefined);
    const want = await activationPatching(model, {
      ...SHORT,
      clean: model.encode(SHORT.clean),
      corrupt: model.encode(SHORT.corrupt),
    });
    expectSame(last.result, JSON.parse(JSON.stringify(patchingAnswer(model, want))));
    // The same result afterwards by GET; the list leaves results out.
    expect((await call<JobState>('GET', `/api/jobs/${job.id}`)).body.result).toEqual(last.result);
    const list = (await call<JobState[]>('GET', '/api/jobs')).body;
    expect(list.find((j) => j.id === job.id)).toMatchObject({ status: 'done', kind: 'patching' });
    expect(list.every((j) => j.result === undefined)).toBe(true);
  });

  it('refuses bad params with a 400 before any worker starts', async () => {
    const before = jobs.list().length;
    const r = await call<{ error: { message: string } }>('POST', '/api/jobs', {
      kind: 'patching',
      params: { ...SHORT, target: 'nowhere' },
    });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(/^target: /);
    const r2 = await call<{ error: { message: string } }>('POST', '/api/jobs', {
      kind: 'patching',
      params: { ...SHORT, clean: 5 },
    });
    expect(r2.body.error.message).toMatch(/^clean: .*string/);
    expect(jobs.list().length).toBe(before);
    expect(jobs.runningWorkers()).toBe(0);
  });

  it('reports a job that throws as failed, with the library’s message', async () => {
    const job = await startJob({ ...SHORT, corrupt: 'Once upon a time' });
    const last = (await events(job.id)).at(-1)!;
    expect(last.status).toBe('failed');
    expect(last.error).toEqual({
      type: 'ShapeError',
      message: expect.stringMatching(/same number of tokens/),
    });
    await until('the worker to exit', () => jobs.runningWorkers() === 0, 5000);
  });

  let long: JobState;
  it('answers small requests in under 100 ms while a long sweep runs', async () => {
    long = await startJob(LONG);
    await until('the sweep to report progress', () => jobs.get(long.id).progress !== null);
    const info: number[] = [];
    const prompt: number[] = [];
    for (let i = 0; i < 7; i++) {
      let t = performance.now();
      expect((await call('GET', '/api/info')).status).toBe(200);
      info.push(performance.now() - t);
      t = performance.now();
      expect((await call('POST', '/api/prompt', { prompt: 'Once upon a time' })).status).toBe(200);
      prompt.push(performance.now() - t);
    }
    // The sweep was running the whole time (and is far from done).
    const now = jobs.get(long.id);
    expect(now.status).toBe('running');
    expect(now.progress!.done).toBeLessThan(now.progress!.total);
    expect(median(info)).toBeLessThan(100);
    expect(median(prompt)).toBeLessThan(100);
  });

  let queued: JobState;
  it('queues jobs past the concurrency, and lists them', async () => {
    queued = await startJob(LONG);
    expect(queued.status).toBe('queued');
    const list = (await call<JobState[]>('GET', '/api/jobs')).body;
    expect(list.find((j) => j.id === long.id)?.status).toBe('running');
    expect(list.find((j) => j.id === queued.id)?.status).toBe('queued');
    expect(jobs.runningWorkers()).toBe(1);
  });

  it('cancels a running job within 1 s: its worker is gone, its stream ends cancelled, the next one starts', async () => {
    const stream = events(long.id);
    const [pid] = jobs.workerPids();
    const t0 = performance.now();
    const r = await call<JobState>('DELETE', `/api/jobs/${long.id}`);
    const elapsed = performance.now() - t0;
    expect(r.body.status).toBe('cancelled');
    expect(elapsed).toBeLessThan(1000);
    expect(alive(pid!)).toBe(false);
    expect((await stream).at(-1)!.status).toBe('cancelled');
    // The queued job took its place: one worker, its own.
    await until('the queued job to start', () => jobs.get(queued.id).status === 'running', 5000);
    expect(jobs.runningWorkers()).toBe(1);
    // Cancelling a finished job leaves it as it was.
    expect((await call<JobState>('DELETE', `/api/jobs/${long.id}`)).body.status).toBe('cancelled');
  });

  it('forgets finished jobs past `keep`, oldest first', async () => {
    const extra = [await startJob(LONG), await startJob(LONG), await startJob(LONG)];
    for (const j of extra)
      expect((await call<JobState>('DELETE', `/api/jobs/${j.id}`)).body.status).toBe('cancelled');
    const ids = (await call<JobState[]>('GET', '/api/jobs')).body.map((j) => j.id);
    // keep 3: the three just cancelled; the earlier finished ones are gone; the running one stays.
    expect(ids.sort()).toEqual([queued.id, ...extra.map((j) => j.id)].sort());
    expect((await call('GET', `/api/jobs/${long.id}`)).status).toBe(404);
  });

  it('terminates running workers when the server closes', async () => {
    await until('the job to run', () => jobs.get(queued.id).status === 'running');
    expect(jobs.runningWorkers()).toBe(1);
    const pids = jobs.workerPids();
    await app.close();
    expect(jobs.runningWorkers()).toBe(0);
    for (const pid of pids) expect(alive(pid)).toBe(false);
    expect(jobs.get(queued.id).status).toBe('cancelled');
  });
});
