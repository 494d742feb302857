import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SaeError } from '../../src/sae/config.js';
import { FeatureStore, type FeatureStoreMeta } from '../../src/sae/feature-store.js';

const META: FeatureStoreMeta = {
  sae: '/saes/test',
  saeFingerprint: 'sae-fp',
  hook: 'blocks.0.hook_resid_pre',
  hookOut: null,
  dSae: 4,
  model: '/models/m',
  corpus: 'corpus.txt',
  corpusFingerprint: 'corpus-fp',
  ctx: 8,
  maxTokens: null,
  bosExcluded: true,
  extra: { note: 'by hand' },
};

// Two contexts (BOS = 1); texts by id: 10 'a', 11 'b', 12 'c'.
const SEQS = [
  [1, 10, 11, 12, 10],
  [1, 12, 10, 11],
];
const TEXT: Record<number, string> = { 1: '<s>', 10: ' a', 11: ' b', 12: ' c' };
// [feature, seq, pos, value]: latent 0 fires on ' a', 1 on ' b', 2 once on ' c', 3 never.
const ACTS: [number, number, number, number][] = [
  [0, 0, 1, 1],
  [1, 0, 2, 0.5],
  [2, 0, 3, 4],
  [0, 0, 4, 3],
  [0, 1, 2, 2],
  [1, 1, 3, 0.25],
];

let dir: string;
let store: FeatureStore;

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-store-'));
  const file = path.join(dir, 'f.duckdb');
  const w = await FeatureStore.create(file, META);
  SEQS.forEach((ids, s) =>
    w.appendTokens(
      s,
      ids,
      ids.map((i) => TEXT[i]!),
    ),
  );
  for (const [f, s, p, v] of ACTS) w.appendAct(f, s, p, v);
  expect(fs.existsSync(file)).toBe(false); // nothing at the path until finish
  (await w.finish(7)).close();
  expect(fs.readdirSync(dir)).toEqual(['f.duckdb']); // temp file renamed, no side files
  store = await FeatureStore.open(file);
});

afterAll(() => {
  store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('FeatureStore', () => {
  it('keeps the meta', () => {
    const { created, ...rest } = store.info;
    expect(rest).toEqual({ ...META, sequences: 2, tokensScanned: 7 });
    expect(Date.now() - Date.parse(created)).toBeLessThan(60_000);
  });

  it('computes per-latent statistics, dead latents included', async () => {
    expect(await store.featureStats(0)).toEqual({
      feature: 0,
      nActive: 3,
      density: 3 / 7,
      maxAct: 3,
      meanAct: 2,
    });
    expect(await store.featureStats(3)).toEqual({
      feature: 3,
      nActive: 0,
      density: 0,
      maxAct: 0,
      meanAct: 0,
    });
    const s = await store.featureSummary(0);
    expect(s.tokensScanned).toBe(7);
    expect(s.topTokens).toEqual([{ id: 10, text: ' a', count: 3, maxAct: 3, meanAct: 2 }]);
  });

  it('returns the top contexts with per-token activations, clipped to the context', async () => {
    expect(await store.topContexts(0, 2, 1)).toEqual([
      {
        rank: 1,
        seq: 0,
        pos: 4,
        value: 3,
        center: 1,
        tokens: [
          { pos: 3, id: 12, text: ' c', act: 0 },
          { pos: 4, id: 10, text: ' a', act: 3 },
        ],
      },
      {
        rank: 2,
        seq: 1,
        pos: 2,
        value: 2,
        center: 1,
        tokens: [
          { pos: 1, id: 12, text: ' c', act: 0 },
          { pos: 2, id: 10, text: ' a', act: 2 },
          { pos: 3, id: 11, text: ' b', act: 0 },
        ],
      },
    ]);
    const all = await store.topContexts(0, 10, 8);
    expect(all.map((c) => [c.seq, c.pos, c.value])).toEqual([
      [0, 4, 3],
      [1, 2, 2],
      [0, 1, 1],
    ]);
    expect(all[2]!.tokens.map((t) => t.act)).toEqual([0, 1, 0, 0, 3]); // BOS shown, with 0
    expect(await store.topContexts(3, 5, 2)).toEqual([]);
  });

  it('bins activations and densities', async () => {
    expect(await store.histogram(0, 3)).toEqual({
      feature: 0,
      edges: [0, 1, 2, 3],
      counts: [0, 1, 2],
      nonzero: 3,
      zeros: 4,
    });
    expect(await store.histogram(3, 2)).toEqual({
      feature: 3,
      edges: [0, 0, 0],
      counts: [0, 0],
      nonzero: 0,
      zeros: 7,
    });
    const d = await store.densityHistogram(2);
    expect([d.counts, d.live, d.dead]).toEqual([[1, 2], 3, 1]);
    expect(d.edges[0]).toBeCloseTo(Math.log10(1 / 7), 6);
    expect(d.edges[2]).toBeCloseTo(Math.log10(3 / 7), 6);
  });

  it('lists latents by density or max activation', async () => {
    const byDensity = await store.listFeatures({ orderBy: 'density' });
    expect(byDensity.map((f) => f.feature)).toEqual([0, 1, 2, 3]);
    expect(byDensity[1]!.topTokens.map((t) => t.text)).toEqual([' b']);
    expect(byDensity[3]!.topTokens).toEqual([]);
    const byMax = await store.listFeatures({ orderBy: 'max', limit: 2 });
    expect(byMax.map((f) => [f.feature, f.maxAct])).toEqual([
      [2, 4],
      [0, 3],
    ]);
    expect((await store.listFeatures({ liveOnly: true })).length).toBe(3);
    const rows = await store.sql('SELECT count(*)::INTEGER AS n FROM acts');
    expect(rows).toEqual([{ n: 6 }]);
  });

  it('refuses bad latents and files that are not stores', async () => {
    await expect(store.featureSummary(4)).rejects.toThrow(SaeError);
    await expect(store.topContexts(-1)).rejects.toThrow(/outside this SAE's latents \[0, 4\)/);
    await expect(FeatureStore.open(path.join(dir, 'missing.duckdb'))).rejects.toThrow(/does not exist/);
    const junk = path.join(dir, 'junk.duckdb');
    fs.writeFileSync(junk, 'not a database');
    await expect(FeatureStore.open(junk)).rejects.toThrow(SaeError);
    fs.rmSync(junk);
  });

  it('leaves nothing behind when a write is aborted', async () => {
    const file = path.join(dir, 'aborted.duckdb');
    const w = await FeatureStore.create(file, META);
    w.appendTokens(0, [1, 10], ['<s>', ' a']);
    w.abort();
    expect(fs.readdirSync(dir)).toEqual(['f.duckdb']);
  });
});
