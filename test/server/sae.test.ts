// The SAE API: feature pages, test-your-text, search and steering answer what the library computes; the
// scan job fills the store with progress and can be cancelled; bad requests are clear 4xx.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureDashboard } from '../../src/sae/dashboard.js';
import { featureStorePath } from '../../src/sae/feature-scan.js';
import { FeatureStore } from '../../src/sae/feature-store.js';
import { featureSteering, searchFeatures, textActivations } from '../../src/sae/text-features.js';
import { buildServer } from '../../src/server/app.js';
import type { JobManager, JobState } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';
import { sonde } from '../helpers/cli.js';
import { copySae } from '../helpers/sae-fixture.js';

const FIXTURE = 'test/fixtures/sae-stories260K';
const TEXT = 'Once upon a time, there was a little girl named Lily. She loved to play with her ball.';

let tmp: string;
let registry: Registry;
let app: FastifyInstance;
let jobs: JobManager;

async function waitFor(id: string, done: (s: JobState) => boolean): Promise<JobState> {
  for (;;) {
    const s = jobs.get(id);
    if (done(s)) return s;
    await new Promise((r) => setTimeout(r, 20));
  }
}

const post = (url: string, payload: unknown) =>
  app.inject({ method: 'POST', url, payload: payload as object });

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-sae-api-'));
  registry = await Registry.open([], [copySae(FIXTURE, tmp)]);
  ({ app, jobs } = await buildServer({ registry, token: null }));
});
afterAll(async () => {
  await app?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('SAE API', () => {
  it('says there is no scan yet, then scans with progress and serves the library’s dashboard', async () => {
    const before = await post('/api/sae/store', { sae: 'sae-stories260K' });
    expect(before.statusCode).toBe(200);
    expect(before.json().info).toBeNull();
    const page = await post('/api/sae/feature', { sae: 'sae-stories260K', feature: 3 });
    expect(page.statusCode).toBe(409);
    expect(page.json().error.message).toContain('no feature scan yet');

    const started = await post('/api/jobs', {
      kind: 'sae-scan',
      params: { sae: 'sae-stories260K', nTokens: 4000, ctx: 64 },
    });
    expect(started.statusCode).toBe(202);
    const progress: number[] = [];
    const end = await waitFor(started.json().id, (s) => {
      if (s.progress) progress.push(s.progress.done);
      return s.status !== 'queued' && s.status !== 'running';
    });
    expect(end.status).toBe('done');
    expect(end.progress!.total).toBe(4000);
    expect(end.progress!.done).toBe(4000);
    expect((end.result as { info: { tokensScanned: number } }).info.tokensScanned).toBe(4000);

    // The same request again reuses the store.
    const again = await post('/api/jobs', {
      kind: 'sae-scan',
      params: { sae: 'sae-stories260K', nTokens: 4000, ctx: 64 },
    });
    const reused = await waitFor(again.json().id, (s) => s.status === 'done' || s.status === 'failed');
    expect((reused.result as { reused: boolean }).reused).toBe(true);

    const res = await app.inject({ method: 'GET', url: '/api/sae/feature?sae=sae-stories260K&feature=3' });
    expect(res.statusCode).toBe(200);
    const got = res.json();
    const s = registry.sae('sae-stories260K');
    const store = await FeatureStore.open(featureStorePath(s.dir));
    const want = await featureDashboard(store, { model: registry.model(undefined).model, sae: s.sae }, 3);
    store.close();
    expect(got.summary).toEqual(want.summary);
    expect(got.contexts).toEqual(want.contexts);
    expect(got.quantiles).toEqual(want.quantiles);
    expect(got.histogram).toEqual(want.histogram);
    expect(got.correlated).toEqual(want.correlated);
    expect(got.logits.top).toEqual(want.logits!.top);
    expect(got.logits.histogram.counts).toEqual(want.logits!.histogram.counts);
    expect(got.logits.histogram.counts.reduce((a: number, b: number) => a + b, 0)).toBe(512);
    expect(got.dSae).toBe(256);
  });

  it('computes correlated features as the Pearson correlation over every scanned token', async () => {
    const s = registry.sae('sae-stories260K');
    const store = await FeatureStore.open(featureStorePath(s.dir));
    const f = (await store.listFeatures({ orderBy: 'density', limit: 1 }))[0]!.feature;
    const [best] = await store.correlatedFeatures(f, 1);
    const N = store.info.tokensScanned;
    const rows = await store.sql(
      `SELECT feature, seq, pos, value FROM acts WHERE feature IN (${f}, ${best!.feature})`,
    );
    store.close();
    const a = new Map<string, number>();
    const b = new Map<string, number>();
    for (const r of rows) ((r.feature as number) === f ? a : b).set(`${r.seq}:${r.pos}`, r.value as number);
    const keys = new Set([...a.keys(), ...b.keys()]);
    const mean = (m: Map<string, number>) => [...m.values()].reduce((x, y) => x + y, 0) / N;
    const ma = mean(a);
    const mb = mean(b);
    // Tokens where neither fires contribute (0 - ma)(0 - mb) each.
    let cov = (N - keys.size) * ma * mb;
    let va = (N - a.size) * ma * ma;
    let vb = (N - b.size) * mb * mb;
    for (const k of keys) cov += ((a.get(k) ?? 0) - ma) * ((b.get(k) ?? 0) - mb);
    for (const v of a.values()) va += (v - ma) ** 2;
    for (const v of b.values()) vb += (v - mb) ** 2;
    expect(best!.correlation).toBeCloseTo(cov / Math.sqrt(va * vb), 5);
  });

  it('picks quantile-group examples spread over each activation interval', async () => {
    const s = registry.sae('sae-stories260K');
    const store = await FeatureStore.open(featureStorePath(s.dir));
    const f = (await store.listFeatures({ orderBy: 'density', limit: 1 }))[0]!.feature;
    const stats = await store.featureStats(f);
    const groups = await store.quantileContexts(f, 4, 3, 2);
    const values = (await store.sql(`SELECT value FROM acts WHERE feature = ${f} ORDER BY value DESC`)).map(
      (r) => r.value as number,
    );
    store.close();
    expect(groups.map((g) => g.hi)).toEqual([4, 3, 2, 1].map((i) => (stats.maxAct * i) / 4));
    expect(groups.reduce((n, g) => n + g.count, 0)).toBe(stats.nActive);
    for (const g of groups) {
      const inside = values.filter((v) => v > g.lo && v <= g.hi);
      expect(inside.length).toBe(g.count);
      expect(g.examples.length).toBe(Math.min(3, g.count));
      // The first example is the interval's largest activation; all are inside it, in order.
      if (g.count > 0) expect(g.examples[0]!.value).toBe(inside[0]);
      g.examples.forEach((c) => expect(c.value > g.lo && c.value <= g.hi).toBe(true));
      expect(g.examples.map((c) => c.rank)).toEqual(g.examples.map((_, i) => i + 1));
      g.examples.forEach((c) => expect(c.tokens[c.center]!.act).toBe(c.value));
    }
  });

  it('answers test-your-text, search and steering with the library’s numbers', async () => {
    const { sae } = registry.sae('sae-stories260K');
    const model = registry.model(undefined).model;
    const acts = await post('/api/sae/activations', { sae: 'sae-stories260K', prompt: TEXT, feature: 5 });
    expect(acts.statusCode).toBe(200);
    const wantActs = await textActivations(model, sae, TEXT, { feature: 5 });
    expect(acts.json().acts).toEqual(wantActs.acts);
    expect(acts.json().top).toEqual(wantActs.top);

    const search = await post('/api/sae/search', { sae: 'sae-stories260K', prompt: TEXT, k: 10 });
    const wantSearch = await searchFeatures(model, sae, TEXT, 10);
    expect(search.json().features).toEqual(wantSearch.features);
    expect(wantSearch.features[0]!.max).toBe(Math.max(...wantSearch.features.map((f) => f.max)));

    const body = {
      sae: 'sae-stories260K',
      feature: 5,
      coefficient: 8,
      prompt: 'Once upon a time',
      maxTokens: 12,
      seed: 3,
    };
    const steer = await post('/api/sae/steer', body);
    expect(steer.statusCode).toBe(200);
    const wantSteer = await featureSteering(model, sae, 5, body.prompt, body);
    expect(steer.json().steered).toBe(wantSteer.steered);
    expect(steer.json().unsteered).toBe(wantSteer.unsteered);
    expect(wantSteer.steered).not.toBe(wantSteer.unsteered);
    // sonde steer --sae/--feature adds the same direction: the CLI, the API and the page agree.
    const cli = await sonde(
      'steer',
      '--prompt',
      body.prompt,
      '--sae',
      FIXTURE,
      '--feature',
      '5',
      '--coefficient',
      '8',
      '--max-tokens',
      '12',
      '--seed',
      '3',
      '--temperature',
      '1',
      '--json',
    );
    expect(cli.stderr).toBe('');
    const printed = JSON.parse(cli.stdout) as { steered: string; unsteered: string };
    expect([printed.unsteered, printed.steered]).toEqual([wantSteer.unsteered, wantSteer.steered]);
  });

  it('refuses bad requests with a clear 400', async () => {
    const out = await post('/api/sae/feature', { sae: 'sae-stories260K', feature: 999 });
    expect(out.statusCode).toBe(400);
    expect(out.json().error.message).toBe(
      "feature 999 is outside SAE 'sae-stories260K''s 256 latents (0..255)",
    );
    expect(
      (await post('/api/sae/activations', { sae: 'sae-stories260K', prompt: '' })).json().error.message,
    ).toBe('prompt: prompt is empty');
    expect((await post('/api/sae/search', { sae: 'nope', prompt: 'x' })).statusCode).toBe(404);
    const steer = await post('/api/sae/steer', {
      sae: 'sae-stories260K',
      feature: 1,
      coefficient: 'big',
      prompt: 'x',
    });
    expect(steer.statusCode).toBe(400);
    expect(steer.json().error.message).toMatch(/^coefficient: /);
    const scan = await post('/api/jobs', {
      kind: 'sae-scan',
      params: { sae: 'sae-stories260K', nTokens: 0 },
    });
    expect(scan.statusCode).toBe(400);
  });

  it('cancels a running scan and leaves the store as it was, with no temp files', async () => {
    const s = registry.sae('sae-stories260K');
    const before = fs.statSync(featureStorePath(s.dir)).mtimeMs;
    const started = await post('/api/jobs', {
      kind: 'sae-scan',
      params: { sae: 'sae-stories260K', nTokens: 200_000, ctx: 64, rescan: true },
    });
    await waitFor(started.json().id, (st) => (st.progress?.done ?? 0) > 0);
    const cancelled = await app.inject({ method: 'DELETE', url: `/api/jobs/${started.json().id}` });
    expect(cancelled.json().status).toBe('cancelled');
    expect(fs.statSync(featureStorePath(s.dir)).mtimeMs).toBe(before);
    // The killed worker's half-written store (and DuckDB's log beside it) are removed once it has exited.
    await expect.poll(() => fs.readdirSync(s.dir).filter((f) => f.includes('.tmp-'))).toEqual([]);
    const page = await post('/api/sae/feature', { sae: 'sae-stories260K', feature: 3 });
    expect(page.statusCode).toBe(200);
  });
});
