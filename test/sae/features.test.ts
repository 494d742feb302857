import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { saeConfig, SaeError } from '../../src/sae/config.js';
import type { FeatureStore } from '../../src/sae/feature-store.js';
import {
  featureLogits,
  featureLogitsUnavailable,
  scanFeatures,
  splitCorpus,
  type ScanProgress,
} from '../../src/sae/features.js';
import { SparseAutoencoder } from '../../src/sae/sae.js';
import { Tensor } from '../../src/engine/tensor.js';
import { saveSaeLens } from '../../src/sae/saelens.js';
import { ROOT, sonde } from '../helpers/cli.js';

const model = HookedTransformer.load();
const D = model.cfg.dModel;
const V = model.cfg.vocabSize;
const LITTLE = model.encode(' little', { prependBos: false });
const TEXTS = splitCorpus(
  fs.readFileSync(path.join(ROOT, 'assets/corpus/stories260K-samples.txt'), 'utf8'),
).slice(0, 40);

/**
 * At blocks.0.hook_resid_pre (the token embedding: this Llama has no positional embedding), latent 0 reads
 * the normalised embedding of ' little' with a threshold halfway between its own projection and the
 * largest other token's, so it fires exactly on ' little'. Latent 1's decoder row is the unembedding column
 * of the token with the largest one (divided by ln_final.w), latent 2 never fires.
 */
async function knownSae(): Promise<{ sae: SparseAutoencoder; little: number; loudest: number }> {
  const init = SparseAutoencoder.init(
    saeConfig({ architecture: 'standard', dIn: D, dSae: 16, hookName: 'blocks.0.hook_resid_pre' }),
    { seed: 3 },
  );
  const WE = await model.weights.get('embed.W_E')!.f32();
  const WU = await model.weights.get('unembed.W_U')!.f32();
  const lnW = await model.weights.get('ln_final.w')!.f32();
  const little = LITTLE[0]!;
  const e = WE.slice(little * D, (little + 1) * D);
  const n = Math.hypot(...e);
  const proj = (t: number) => {
    let s = 0;
    for (let j = 0; j < D; j++) s += (WE[t * D + j]! * e[j]!) / n;
    return s;
  };
  let other = -Infinity;
  for (let t = 0; t < V; t++) if (t !== little) other = Math.max(other, proj(t));
  expect(proj(little)).toBeGreaterThan(other);
  // Parameters are edited as host copies, then made a new SAE (tensors are immutable).
  const enc = Float32Array.from(await init.param('W_enc').f32());
  const bEnc = Float32Array.from(await init.param('b_enc').f32());
  for (let j = 0; j < D; j++) enc[j * 16 + 0] = e[j]! / n;
  bEnc[0] = -(proj(little) + other) / 2;
  for (let j = 0; j < D; j++) enc[j * 16 + 2] = 0;
  bEnc[2] = -1;
  let loudest = 0;
  let best = -1;
  for (let t = 0; t < V; t++) {
    let s = 0;
    for (let j = 0; j < D; j++) s += WU[j * V + t]! ** 2;
    if (s > best) [best, loudest] = [s, t];
  }
  const dec = Float32Array.from(await init.param('W_dec').f32());
  for (let j = 0; j < D; j++) dec[1 * D + j] = WU[j * V + loudest]! / lnW[j]!;
  const sae = withParams(init, { W_enc: enc, b_enc: bEnc, W_dec: dec });
  return { sae, little, loudest };
}

/** `sae` with some parameters replaced by these values (same shapes). */
function withParams(sae: SparseAutoencoder, values: Record<string, Float32Array>): SparseAutoencoder {
  const params = new Map(sae.params);
  for (const [n, v] of Object.entries(values)) params.set(n, new Tensor(v, sae.param(n).shape));
  return new SparseAutoencoder(sae.cfg, params);
}

let dir: string;
let store: FeatureStore;
const progress: ScanProgress[] = [];
const { sae, little, loudest } = await knownSae();

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-features-'));
  store = await scanFeatures(model, sae, TEXTS, {
    dbPath: path.join(dir, 'features.duckdb'),
    ctx: 64,
    maxTokens: 3000,
    batchSize: 8,
    onProgress: (p) => progress.push(p),
  });
});

afterAll(() => {
  store?.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('scanFeatures', () => {
  it('scans the corpus in contexts that start with BOS, BOS left out of the statistics', async () => {
    expect(store.info.tokensScanned).toBe(3000);
    expect(progress.at(-1)).toMatchObject({ tokens: 3000, totalTokens: 3000 });
    const [r] = await store.sql(
      `SELECT count(*)::INTEGER AS n, count(*) FILTER (WHERE pos = 0)::INTEGER AS starts,
         count(*) FILTER (WHERE pos = 0 AND token = ${model.cfg.bosTokenId})::INTEGER AS bos,
         max(pos)::INTEGER AS last FROM tokens`,
    );
    expect(r).toEqual({
      n: 3000 + store.info.sequences,
      starts: store.info.sequences,
      bos: store.info.sequences,
      last: 63,
    });
    const [atBos] = await store.sql('SELECT count(*)::INTEGER AS n FROM acts WHERE pos = 0');
    expect(atBos).toEqual({ n: 0 });
  });

  it('finds that the planted latent fires exactly on its token', async () => {
    const [occ] = await store.sql(
      `SELECT count(*)::INTEGER AS n FROM tokens WHERE token = ${little} AND pos > 0`,
    );
    const n = occ!.n as number;
    const s = await store.featureSummary(0);
    expect(n).toBeGreaterThan(10);
    expect(s.nActive).toBe(n);
    expect(s.density).toBeCloseTo(n / 3000, 12);
    expect(s.topTokens.map((t) => t.id)).toEqual([little]);
    const top = await store.topContexts(0, 8, 4);
    expect(top.length).toBe(8);
    for (const c of top) {
      expect(c.tokens[c.center]!.id).toBe(little);
      expect(c.tokens[c.center]!.act).toBeCloseTo(c.value, 6);
      expect(c.value).toBeCloseTo(s.maxAct, 4); // the same embedding everywhere: the same activation
    }
    const h = await store.histogram(0, 10);
    expect(h.nonzero).toBe(n);
    expect(h.counts.reduce((a, b) => a + b, 0)).toBe(n);
    expect((await store.featureStats(2)).nActive).toBe(0);
    const listed = await store.listFeatures({ orderBy: 'density' });
    expect(listed.at(-1)!.feature).toBe(2);
  });

  it('writes the same activations as the SAE computes directly', async () => {
    const [row] = await store.sql('SELECT seq, pos FROM tokens WHERE seq = 1 AND pos = 5');
    expect(row).toBeDefined();
    const ids = (await store.sql('SELECT token FROM tokens WHERE seq = 1 ORDER BY pos')).map(
      (r) => r.token as number,
    );
    const x = model
      .runWithCache([ids], { names: ['blocks.0.hook_resid_pre'] })
      .cache.get('blocks.0.hook_resid_pre');
    const acts = await sae.encode(sae.toRows(x, D, 'x')).f32();
    const stored = await store.sql(
      'SELECT feature, value FROM acts WHERE seq = 1 AND pos = 5 ORDER BY feature',
    );
    const want: { feature: number; value: number }[] = [];
    for (let f = 0; f < 16; f++)
      if (acts[5 * 16 + f] !== 0) want.push({ feature: f, value: acts[5 * 16 + f]! });
    expect(stored.length).toBe(want.length);
    stored.forEach((r, i) => {
      expect(r.feature).toBe(want[i]!.feature);
      expect(r.value as number).toBeCloseTo(want[i]!.value, 5);
    });
  });

  it('refuses an SAE whose hook the model lacks', async () => {
    const bad = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: D, dSae: 4, hookName: 'blocks.9.hook_resid_pre' }),
    );
    await expect(scanFeatures(model, bad, TEXTS, { dbPath: path.join(dir, 'bad.duckdb') })).rejects.toThrow(
      /'blocks\.9\.hook_resid_pre' is not a hook point/,
    );
    expect(fs.existsSync(path.join(dir, 'bad.duckdb'))).toBe(false);
  });
});

describe('featureLogits', () => {
  it('ranks the token whose unembedding is the decoder direction first', async () => {
    const r = (await featureLogits(model, sae, 1, 5))!;
    expect(r.top[0]!.id).toBe(loudest);
    expect(r.top.length).toBe(5);
    expect(r.bottom.length).toBe(5);
    const WU = await model.weights.get('unembed.W_U')!.f32();
    let self = 0;
    for (let j = 0; j < D; j++) self += WU[j * V + loudest]! ** 2;
    expect(r.top[0]!.value).toBeCloseTo(self, 3);
    expect(r.bottom[0]!.value).toBeLessThanOrEqual(r.bottom[4]!.value);
    expect(r.method).toMatch(/ln_final\.w/);
    const init = SparseAutoencoder.init(sae.cfg, { seed: 3 });
    const dec = Float32Array.from(await init.param('W_dec').f32());
    const src = await sae.param('W_dec').f32();
    for (let j = 0; j < D; j++) dec[1 * D + j] = -src[1 * D + j]!;
    const neg = withParams(init, { W_dec: dec });
    expect((await featureLogits(model, neg, 1, 3))!.bottom[0]!.id).toBe(loudest);
    await expect(featureLogits(model, sae, 16)).rejects.toThrow(SaeError);
  });

  it('is null, with the reason, off the residual stream', async () => {
    const z = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: D, dSae: 4, hookName: 'blocks.0.attn.hook_z' }),
    );
    expect(await featureLogits(model, z, 0)).toBeNull();
    expect(featureLogitsUnavailable(model, z)).toMatch(/not the residual stream/);
    expect(featureLogitsUnavailable(model, sae)).toBeNull();
  });
});

describe('sonde sae features / show', () => {
  it('scans into <sae>/features.duckdb, reuses it, and shows a latent (--json)', async () => {
    const saeDir = path.join(dir, 'sae');
    await saveSaeLens(sae, saeDir);
    const scan = [
      'sae',
      'features',
      '--sae',
      saeDir,
      '--n-tokens',
      '2000',
      '--ctx',
      '64',
      '--top-k',
      '16',
      '--json',
    ];
    const badHook = path.join(dir, 'sae-bad');
    await saveSaeLens(
      SparseAutoencoder.init(
        saeConfig({ architecture: 'standard', dIn: D, dSae: 4, hookName: 'blocks.9.hook_resid_pre' }),
      ),
      badHook,
    );
    const [first, bad, noStore] = await Promise.all([
      sonde(...scan),
      sonde('sae', 'features', '--sae', badHook, '--n-tokens', '100'),
      sonde('sae', 'show', '--feature', '0', '--db', path.join(dir, 'none.duckdb')),
    ]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    type Listed = { feature: number; nActive: number; topTokens: { id: number }[] };
    const doc = JSON.parse(first.stdout) as { reused: boolean; db: string; features: Listed[]; dead: number };
    expect(doc.reused).toBe(false);
    expect(doc.db).toBe(path.join(saeDir, 'features.duckdb'));
    expect(doc.features.length).toBe(16);
    const planted = doc.features.find((f) => f.feature === 0)!;
    expect(planted.topTokens.map((t) => t.id)).toEqual([little]);
    expect(doc.dead).toBeGreaterThanOrEqual(1); // latent 2
    expect([bad.code, bad.stderr]).toEqual([
      1,
      expect.stringMatching(/^sonde: .*'blocks\.9\.hook_resid_pre' is not a hook point/),
    ]);
    expect(noStore.code).toBe(1);
    expect(noStore.stderr).toMatch(/^sonde: no feature store at .*none\.duckdb: give --sae DIR/);

    const [again, show, out] = await Promise.all([
      sonde(...scan),
      sonde('sae', 'show', '--sae', saeDir, '--feature', '1', '--contexts', '3', '--top-k', '4', '--json'),
      sonde('sae', 'show', '--sae', saeDir, '--feature', '16'),
    ]);
    expect((JSON.parse(again.stdout) as { reused: boolean }).reused).toBe(true);
    expect(show.code).toBe(0);
    const s = JSON.parse(show.stdout) as {
      summary: { nActive: number; tokensScanned: number };
      contexts: { value: number; center: number; tokens: { act: number }[] }[];
      histogram: { counts: number[]; nonzero: number };
      logits: { top: { id: number }[]; bottom: unknown[] } | null;
    };
    expect(s.summary.tokensScanned).toBe(2000);
    expect(s.contexts.length).toBe(Math.min(3, s.summary.nActive));
    for (const c of s.contexts) expect(c.tokens[c.center]!.act).toBe(c.value);
    expect(s.histogram.counts.reduce((a, b) => a + b, 0)).toBe(s.histogram.nonzero);
    expect(s.logits!.top.map((t) => t.id)[0]).toBe(loudest);
    expect(s.logits!.bottom.length).toBe(4);
    expect(out.code).toBe(1);
    expect(out.stderr).toMatch(/^sonde: --feature 16 is outside the SAE's 16 latents \(0\.\.15\)/);
  }, 120_000);
});
