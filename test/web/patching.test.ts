// The activation and attribution patching views in Chromium: the heatmap's cells are the library's
// values for the prompts in the address, on stories260K and the induction organism; a failed sweep
// shows the library's message, a running sweep can be cancelled, and every control is reachable.
import fs from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Page } from 'playwright-core';
import { attributionPatching, correlation } from '../../src/methods/attribution.js';
import { activationPatching, patchingMatrix } from '../../src/methods/patching.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

const INDUCTION = 'test/fixtures/induction-2l';
const LILY = {
  clean: 'Once upon a time, there was a little girl named Lily. One day,',
  corrupt: 'Once upon a time, there was a little girl named Tim. One day,',
  answer: ' Lily',
  wrong: ' Tim',
};
// Repeated single-token words: the second half copies the first (clean) or follows other words (corrupt).
const A = [' mom', ' big', ' saw', ' friend', ' very', ' day', ' his', ' upon'];
const B = [' they', ' want', ' happy', ' little', ' time', ' had', ' there', ' named'];
const REPEAT = {
  clean: [...A, ...A.slice(0, 7)].join(''),
  corrupt: [...B, ...A.slice(0, 7)].join(''),
  answer: ' upon',
  wrong: ' named',
};

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['assets/stories260K', INDUCTION] });
});
afterAll(async () => ex?.close());

const query = (view: string, params: Record<string, string>) =>
  `?view=${view}&${new URLSearchParams(params).toString()}`;

/** The heatmap's cells (the first grid on the page) as values[row][col]. */
async function cells(page: Page, grid = '[role="grid"]'): Promise<number[][]> {
  await page.waitForSelector(`${grid} [data-row]`);
  const flat = await page.$$eval(`${grid} >> nth=0 >> [data-row]`, (els) =>
    els.map((e) => [
      Number(e.getAttribute('data-row')),
      Number(e.getAttribute('data-col')),
      Number(e.getAttribute('data-value')),
    ]),
  );
  const out: number[][] = [];
  for (const [r, c, v] of flat) (out[r!] ??= [])[c!] = v!;
  return out;
}

function expectClose(got: number[][], want: number[][], digits = 4) {
  expect(got.length).toBe(want.length);
  got.forEach((row, i) => {
    expect(row.length).toBe(want[i]!.length);
    row.forEach((v, j) => expect(v).toBeCloseTo(want[i]![j]!, digits));
  });
}

describe('activation patching view', () => {
  it('stories260K: layer × position cells, tokens on the axis, hover details and the raw metric', async () => {
    const { page } = ex;
    await ex.open(query('patching', LILY));
    const got = await cells(page);
    const model = ex.registry.model('stories260K').model;
    const want = patchingMatrix(await activationPatching(model, LILY));
    expectClose(got, want.values);
    expect(await page.textContent('[role="grid"]')).toContain('14 " Lily"/" Tim"');
    await page.hover('[data-row="2"][data-col="14"]');
    const line = await page.textContent('figcaption.inspect');
    expect(line).toContain('clean " Lily" / corrupt " Tim"');
    expect(line).toContain(`logit difference ${want.raw[2]![14]!.toFixed(3)}`);
    // The metric chosen in the page: the raw logit difference, without running again.
    await page.selectOption('.metric-choice select', 'raw');
    await expect.poll(() => page.url()).toContain('metric=raw');
    expectClose(await cells(page), want.raw, 3);
    await page.selectOption('.metric-choice select', 'normalised');
    await ex.screenshot('patching-stories260K');
    // The exported picture is the heatmap, with the library's values in its cells.
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('text=Export SVG')]);
    const svg = fs.readFileSync((await download.path())!, 'utf8');
    expect(download.suggestedFilename()).toBe('sonde-patching.svg');
    expect(svg).toContain(`data-value="${want.values[2]![14]}"`);
    expect(await controlsTabSkips(page)).toEqual([]);
  });

  it('induction-2l: layer × head cells of z patching on a repeated sequence', async () => {
    const { page } = ex;
    await ex.open(query('patching', { model: 'induction-2l', ...REPEAT, target: 'z' }));
    await page.waitForSelector('[role="grid"] [data-row]');
    const got = await cells(page);
    const model = ex.registry.model('induction-2l').model;
    const want = patchingMatrix(await activationPatching(model, { ...REPEAT, target: 'z' }));
    expect(want.columnAxis).toBe('head');
    expectClose(got, want.values);
    expect(Number(await page.getAttribute('[data-testid="clean-metric"]', 'data-value'))).toBeGreaterThan(2);
    await ex.screenshot('patching-induction-2l');
  });

  it('shows the library’s message for prompts of different token counts, and keeps working', async () => {
    const { page } = ex;
    await ex.open('?view=patching'); // the default prompts, not run until Run
    await page.fill('textarea >> nth=1', 'Once upon a time, there was a little girl named Anna. One day,');
    await page.click('button[type="submit"]');
    await expect
      .poll(() => page.textContent('[role="alert"]'), { timeout: 30_000 })
      .toContain('clean and corrupt prompts must have the same number of tokens: clean has 19');
    await page.fill('textarea >> nth=1', LILY.corrupt);
    await page.click('button[type="submit"]');
    await page.waitForSelector('.job[data-status="done"]');
    expect(await page.$('[role="alert"]')).toBeNull();
    expect((await cells(page)).length).toBe(5);
  });

  it('cancels a running sweep from the page, and runs the next one', async () => {
    const { page } = ex;
    const filler = ' She loved to play outside with her friends.'.repeat(6);
    const long = {
      ...LILY,
      clean: LILY.clean.replace('. One', `.${filler} One`),
      corrupt: LILY.corrupt.replace('. One', `.${filler} One`),
      target: 'z',
      positions: 'each',
    };
    await ex.open(query('patching', long));
    await page.click('.job button:has-text("Cancel")');
    await page.waitForSelector('.job[data-status="cancelled"]');
    expect(await page.isEnabled('button[type="submit"]')).toBe(true);
    expect(await page.$('[role="grid"]')).toBeNull();
    await page.fill('textarea >> nth=0', LILY.clean);
    await page.fill('textarea >> nth=1', LILY.corrupt);
    await page.selectOption('select >> nth=1', 'resid_pre'); // the target (after the model)
    await page.selectOption('select >> nth=3', 'default'); // positions
    await page.click('button[type="submit"]');
    await page.waitForSelector('.job[data-status="done"]', { timeout: 60_000 });
    expect((await cells(page)).length).toBe(5);
  });
});

describe('attribution patching view', () => {
  it('stories260K: the estimate’s cells and its correlation with activation patching', async () => {
    const { page } = ex;
    await ex.open(query('attribution', { ...LILY, compare: '1' }));
    await page.waitForSelector('[data-testid="correlation"]', { timeout: 60_000 });
    const model = ex.registry.model('stories260K').model;
    const a = await attributionPatching(model, LILY);
    const r = await activationPatching(model, LILY);
    expectClose(await cells(page), patchingMatrix(a).values);
    expectClose(await cells(page, '[data-testid="actual"] [role="grid"]'), patchingMatrix(r).values);
    expect(Number(await page.getAttribute('[data-testid="correlation"]', 'data-value'))).toBeCloseTo(
      correlation(a.values, r.values),
      4,
    );
    expect(await page.textContent('[role="grid"] >> nth=0')).toContain('Attribution patching');
    await ex.screenshot('attribution-stories260K');
    expect(await controlsTabSkips(page)).toEqual([]);
  });

  it('induction-2l: layer × head estimates of z', async () => {
    const { page } = ex;
    await ex.open(query('attribution', { model: 'induction-2l', ...REPEAT, target: 'z' }));
    const got = await cells(page);
    const model = ex.registry.model('induction-2l').model;
    expectClose(got, patchingMatrix(await attributionPatching(model, { ...REPEAT, target: 'z' })).values);
    await ex.screenshot('attribution-induction-2l');
  });
});
