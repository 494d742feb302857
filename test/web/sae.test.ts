// The SAE feature pages in Chromium: the numbers on the page are the library's (dashboard panels, test
// your text, search, steering), the scan job runs and cancels from the page, bad requests show an error.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { featureDashboard, type FeatureDashboard } from '../../src/sae/dashboard.js';
import { featureStorePath, openOrScanStore } from '../../src/sae/feature-scan.js';
import { FeatureStore } from '../../src/sae/feature-store.js';
import { featureSteering, searchFeatures, textActivations } from '../../src/sae/text-features.js';
import { copySae } from '../helpers/sae-fixture.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

const INDUCTION = 'test/fixtures/induction-2l';
const TEXT = 'Lily and Ben went to the park. They played with a red ball.';
const SEARCH = 'The cat sat on the mat.';
const STEER = { prompt: 'Once upon a time', coefficient: 6, maxTokens: 16, seed: 2 };

let tmp: string;
let ex: Explorer;
let feature: number;
let want: FeatureDashboard;

const attr = (sel: string, name: string) =>
  ex.page.$$eval(sel, (els, n) => els.map((e) => e.getAttribute(n)!), name);
const nums = async (sel: string, name: string) => (await attr(sel, name)).map(Number);

beforeAll(async () => {
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-sae-web-'));
  const stories = copySae('test/fixtures/sae-stories260K', tmp);
  const induction = copySae('test/fixtures/sae-induction-2l', tmp);
  ex = await openExplorer({ models: ['stories260K', INDUCTION], saes: [stories, induction] });
  // Both SAEs are scanned here, in this process (a scan job's worker takes seconds to start; the API
  // test runs whole scans as jobs); the page cancels a rescan.
  for (const id of ['sae-stories260K', 'sae-induction-2l']) {
    const s = ex.registry.sae(id);
    const model = ex.registry.model(s.modelId).model;
    const { store } = await openOrScanStore(model, s.sae, {
      dbPath: featureStorePath(s.dir),
      saeDir: s.dir,
      nTokens: id === 'sae-induction-2l' ? 2000 : 3000,
      ctx: 64,
    });
    if (id === 'sae-stories260K') {
      feature = (await store.listFeatures({ orderBy: 'density', limit: 1 }))[0]!.feature;
      want = await featureDashboard(store, { model, sae: s.sae }, feature);
    }
    store.close();
  }
});
afterAll(async () => {
  await ex?.close();
  fs.rmSync(tmp, { recursive: true, force: true });
});

describe('SAE view', () => {
  it('shows the library’s panels, text activations, search and steering for the state in the address', async () => {
    const { page } = ex;
    const q = new URLSearchParams({
      view: 'sae',
      sae: 'sae-stories260K',
      feature: String(feature),
      text: TEXT,
      search: SEARCH,
      steerPrompt: STEER.prompt,
      coef: String(STEER.coefficient),
      steerTokens: String(STEER.maxTokens),
      seed: String(STEER.seed),
    });
    await ex.open(`?${q}`);
    await page.waitForSelector('[data-testid="top-contexts"] li');
    await page.waitForSelector('[data-testid="steer-steered"]');
    await page.waitForSelector('[data-testid="search-results"] tbody tr');
    await page.waitForSelector('[data-testid="text-tokens"]');
    const s = ex.registry.sae('sae-stories260K');
    const model = ex.registry.model(s.modelId).model;

    expect(Number(await page.getAttribute('[data-testid="density"]', 'data-value'))).toBe(
      want.summary.density,
    );
    expect(await nums('[data-testid="top-contexts"] > li', 'data-value')).toEqual(
      want.contexts.map((c) => c.value),
    );
    const firstActs = await nums('[data-testid="top-contexts"] > li:first-child .act-token', 'data-act');
    expect(firstActs).toEqual(want.contexts[0]!.tokens.map((t) => t.act));
    expect(await nums('[data-testid="act-histogram"] .bar', 'data-count')).toEqual(want.histogram.counts);
    expect(await nums('[data-testid="logit-histogram"] .bar', 'data-count')).toEqual(
      want.logits!.histogram.counts,
    );
    expect(await nums('[data-testid="pos-logits"] tr', 'data-id')).toEqual(want.logits!.top.map((t) => t.id));
    expect(await nums('[data-testid="neg-logits"] tr', 'data-id')).toEqual(
      want.logits!.bottom.map((t) => t.id),
    );
    expect(await nums('[data-testid="correlated"] tbody tr', 'data-feature')).toEqual(
      want.correlated.map((c) => c.feature),
    );
    expect(await nums('[data-testid="quantile-group"]', 'data-count')).toEqual(
      want.quantiles.map((g) => g.count),
    );

    const text = await textActivations(model, s.sae, TEXT, { feature });
    expect(await nums('[data-testid="text-tokens"] .act-token', 'data-act')).toEqual(text.acts);
    const search = await searchFeatures(model, s.sae, SEARCH, 20);
    expect(await nums('[data-testid="search-results"] tbody tr', 'data-feature')).toEqual(
      search.features.map((f) => f.feature),
    );
    const steer = await featureSteering(model, s.sae, feature, STEER.prompt, STEER);
    expect(await page.getAttribute('[data-testid="steer-steered"]', 'data-text')).toBe(steer.steered);
    expect(await page.getAttribute('[data-testid="steer-unsteered"]', 'data-text')).toBe(steer.unsteered);

    // Hover: a histogram bar and a token say their values.
    const bin = want.histogram.counts.indexOf(Math.max(...want.histogram.counts));
    await page.hover(`[data-testid="act-histogram"] .bar[data-bin="${bin}"]`);
    expect(await page.textContent('[data-testid="act-histogram"] figcaption')).toContain(
      `: ${want.histogram.counts[bin]}`,
    );
    const best = text.acts!.indexOf(Math.max(...text.acts!));
    await page.hover(`[data-testid="text-tokens"] .act-token[data-i="${best}"]`);
    const top = text.top[best]![0]!;
    expect(await page.textContent('[data-testid="text-tokens-detail"]')).toContain(
      `activation ${text.acts![best]!.toFixed(4)} · top features: ${top.feature} (${top.value.toFixed(3)})`,
    );
    await ex.screenshot('sae-stories260K');

    // A search result opens its feature (and the address says so).
    const other = search.features.find((f) => f.feature !== feature)!.feature;
    await page.click(`[data-testid="search-results"] tr[data-feature="${other}"] button`);
    await page.waitForSelector(`[data-testid="feature-title"][data-feature="${other}"]`);
    expect(new URL(page.url()).searchParams.get('feature')).toBe(String(other));
  });

  it('shows the induction organism’s SAE, and cancels a rescan from the page', async () => {
    const { page } = ex;
    await ex.open('?view=sae&sae=sae-induction-2l&feature=0');
    await page.waitForSelector('[data-testid="top-contexts"]');
    expect(await page.textContent('[data-testid="scan-status"]')).toContain('2000 tokens');
    const s = ex.registry.sae('sae-induction-2l');
    expect(s.modelId).toBe('induction-2l');
    const store = await FeatureStore.open(featureStorePath(s.dir));
    const d = await featureDashboard(store, { model: ex.registry.model(s.modelId).model, sae: s.sae }, 0);
    store.close();
    expect(await nums('[data-testid="top-contexts"] > li', 'data-value')).toEqual(
      d.contexts.map((c) => c.value),
    );
    expect(await nums('[data-testid="act-histogram"] .bar', 'data-count')).toEqual(d.histogram.counts);
    expect(await nums('[data-testid="pos-logits"] tr', 'data-id')).toEqual(d.logits!.top.map((t) => t.id));
    await ex.screenshot('sae-induction-2l');

    await page.fill('.scan-panel input[type="number"] >> nth=0', '1000000');
    await page.click('.scan-panel button:text("Rescan")');
    await page.waitForSelector('.job progress:not([value="0"])', { timeout: 30_000 });
    expect(await page.textContent('.job')).toMatch(/scanning tokens \d+\/\d+/);
    await page.click('.job button:text("Cancel")');
    await page.waitForSelector('.job[data-status="cancelled"]');
    // The page still works on the stored scan.
    await page.click('button:text("Next ▶")');
    await page.waitForSelector('[data-testid="feature-title"][data-feature="1"]');
  });

  it('shows a feature out of range as an error and keeps working', async () => {
    const { page } = ex;
    await ex.open('?view=sae&sae=sae-stories260K&feature=999');
    await expect
      .poll(() => page.textContent('[role="alert"]'))
      .toContain("feature 999 is outside SAE 'sae-stories260K''s 256 latents (0..255)");
    await page.fill('input[aria-label="feature"]', '3');
    await page.click('button:text("Open")');
    await page.waitForSelector('[data-testid="feature-title"][data-feature="3"]');
    expect(await page.$('[role="alert"]')).toBeNull();
  });

  it('says how to open an SAE when none is open', async () => {
    // The same server, its /api/info answered without SAEs (a second server and browser cost seconds).
    const { page } = ex;
    await page.route('**/api/info', async (route) => {
      const info = (await (await route.fetch()).json()) as object;
      await route.fulfill({ json: { ...info, saes: [] } });
    });
    try {
      await ex.open('?view=sae');
      await page.waitForSelector('.sae-empty');
      expect(await page.textContent('.sae-empty')).toContain('sonde serve --sae DIR');
    } finally {
      await page.unroute('**/api/info');
    }
  });

  it('reaches every control with the keyboard', async () => {
    const q = `?view=sae&sae=sae-stories260K&feature=${feature}&text=${encodeURIComponent(TEXT)}&search=cat`;
    await ex.open(q);
    await ex.page.waitForSelector('[data-testid="search-results"] tbody tr');
    await ex.page.waitForSelector('[data-testid="top-contexts"] li');
    expect(await controlsTabSkips(ex.page, 600)).toEqual([]);
  });
});
