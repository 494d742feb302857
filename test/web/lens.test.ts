// The lens view in Chromium: every cell's top token and probability (and the next token's rank) is the
// library's logit lens, and a tuned lens trained from the page is the one the grid reads.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { logitLens, type LogitLensResult } from '../../src/methods/lens.js';
import type { TunedLens } from '../../src/methods/tuned-lens.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['assets/stories260K', 'test/fixtures/induction-2l'] });
});
afterAll(async () => ex?.close());

const gridTitle = (kind: string) => `svg[aria-label="${kind} lens: top token and its probability"]`;

/** The grid's cells equal the library's lens: top-1 id, token and probability, the next token's rank. */
async function expectGrid(kind: string, want: LogitLensResult): Promise<void> {
  const cells = await ex.page.$$eval(`${gridTitle(kind)} [role="gridcell"]`, (els) =>
    els.map((e) => ({
      l: Number(e.dataset.row),
      p: Number(e.dataset.col),
      prob: Number(e.dataset.value),
      id: Number(e.dataset.id),
      token: e.dataset.token,
      rank: e.dataset.nextRank,
      text: e.querySelector('text')?.textContent,
    })),
  );
  expect(cells).toHaveLength(want.layers.length * want.tokens.length);
  for (const c of cells) {
    const top = want.top[c.l]![c.p]![0]!;
    expect(c.id).toBe(top.id);
    expect(c.token).toBe(top.token);
    expect(c.prob).toBeCloseTo(top.prob, 6);
    expect(c.rank).toBe(c.p < want.tokens.length - 1 ? String(want.next![c.l]![c.p]!.rank) : '');
  }
  expect(cells.find((c) => c.l === 0 && c.p === 1)!.text).toBe(want.top[0]![1]![0]!.token.slice(0, 7));
}

describe('lens view', () => {
  it('shows stories260K’s logit lens: top token and probability per layer and position', async () => {
    const prompt = 'Once upon a time, there was a little girl named Lily. One day, Lily';
    await ex.open(`?view=lens&prompt=${encodeURIComponent(prompt)}`);
    const { page } = ex;
    await page.waitForSelector(`${gridTitle('Logit')} [role="gridcell"]`);
    const model = ex.registry.model('stories260K').model;
    const want = await logitLens(model, model.encode(prompt), { topK: 5, nextToken: true });
    await expectGrid('Logit', want);
    const rows = await page.$$eval(`${gridTitle('Logit')} g[role="row"] > text`, (els) =>
      els.map((e) => e.textContent),
    );
    expect(rows).toEqual(['L0 in', 'L1 in', 'L2 in', 'L3 in', 'L4 in', 'final']);
    // Hover: the top 5 and the next token.
    await page.hover(`${gridTitle('Logit')} [data-row="5"][data-col="3"]`);
    const line = await page.textContent('figcaption.inspect');
    const t = want.top[5]![3]!;
    expect(line).toContain(`final · position 3 ${JSON.stringify(want.strings[3])}`);
    for (const q of t) expect(line).toContain(`${JSON.stringify(q.token)} ${(q.prob * 100).toFixed(1)}%`);
    expect(line).toContain(`next token ${JSON.stringify(want.strings[4])}: rank ${want.next![5]![3]!.rank}`);
    await ex.screenshot('lens-stories260K');
  });

  it('trains a tuned lens from the page and shows its grid (stories260K)', async () => {
    const prompt = 'Once upon a time, there was a little girl named Lily.';
    await ex.open(`?view=lens&prompt=${encodeURIComponent(prompt)}&lensKind=tuned`);
    const { page } = ex;
    await page.waitForSelector('[data-testid="no-tuned-lens"]');
    expect(await page.$(gridTitle('Tuned'))).toBeNull();
    await page.fill('input[type="number"]', '4');
    await page.click('text=Train a tuned lens');
    await page.waitForSelector(`${gridTitle('Tuned')} [role="gridcell"]`, { timeout: 60_000 });
    const id = new URLSearchParams(await page.evaluate(() => location.search)).get('lens')!;
    const kept = ex.registry.tunedLenses.byId.get(id)!;
    expect(kept.lens.meta.steps).toBe(4);
    const model = ex.registry.model('stories260K').model;
    const want = await logitLens(model, model.encode(prompt), {
      topK: 5,
      nextToken: true,
      tunedLens: kept.lens as TunedLens,
    });
    await expectGrid('Tuned', want);
    expect(await page.textContent('[data-testid="trained-kl"]')).toContain(
      `L0 ${kept.lens.meta.heldOutKL!.logit[0]!.toFixed(2)} → ${kept.lens.meta.heldOutKL!.tuned[0]!.toFixed(2)}`,
    );
    await ex.screenshot('lens-tuned-stories260K');
    // The address alone reopens the same tuned lens.
    await ex.open(`?view=lens&prompt=${encodeURIComponent(prompt)}&lensKind=tuned&lens=${id}`);
    await page.waitForSelector(`${gridTitle('Tuned')} [role="gridcell"]`);
    await expectGrid('Tuned', want);
  });

  it('cancels a training from the page and stays usable', async () => {
    const { page } = ex;
    await ex.open('?view=lens&model=induction-2l&prompt=%20cat%20dog&lensKind=tuned');
    await page.fill('input[type="number"]', '2000');
    await page.click('text=Train a tuned lens');
    await page.waitForSelector('.job[data-status="running"]');
    await page.click('.job button:text("Cancel")');
    await page.waitForSelector('.job[data-status="cancelled"]');
    expect(ex.registry.tunedLenses.forModel('induction-2l')).toBeUndefined();
    await page.getByRole('combobox', { name: /^Lens/ }).selectOption('logit');
    await page.waitForSelector(`${gridTitle('Logit')} [data-col="2"]`);
  });

  it('shows the induction organism’s logit lens', async () => {
    const prompt = ' cat dog tree sun cat dog tree sun';
    await ex.open(`?view=lens&model=induction-2l&prompt=${encodeURIComponent(prompt)}`);
    await ex.page.waitForSelector(`${gridTitle('Logit')} [role="gridcell"]`);
    const model = ex.registry.model('induction-2l').model;
    const want = await logitLens(model, model.encode(prompt), { topK: 5, nextToken: true });
    expect(want.layers).toHaveLength(3);
    await expectGrid('Logit', want);
    await ex.screenshot('lens-induction-2l');
  });

  it('shows a bad request as an error line and keeps working', async () => {
    const { page } = ex;
    await ex.open('?view=lens&model=induction-2l');
    await page.waitForSelector(`${gridTitle('Logit')} [role="gridcell"]`);
    await page.fill('textarea', ' cat'.repeat(200));
    await page.click('button[type="submit"]');
    await expect
      .poll(() => page.textContent('[role="alert"]'))
      .toContain("more than the model's context of 128");
    await page.fill('textarea', ' cat dog cat dog');
    await page.click('button[type="submit"]');
    await page.waitForSelector(`${gridTitle('Logit')} [data-col="4"]`);
    expect(await page.$('[role="alert"]')).toBeNull();
  });

  it('reaches every control with the keyboard', async () => {
    await ex.open('?view=lens&prompt=Once%20upon%20a%20time');
    await ex.page.waitForSelector(`${gridTitle('Logit')} [role="gridcell"]`);
    expect(await controlsTabSkips(ex.page)).toEqual([]);
    await ex.page.getByRole('combobox', { name: /^Lens/ }).selectOption('tuned');
    await ex.page.waitForSelector('text=Train a tuned lens');
    expect(await controlsTabSkips(ex.page)).toEqual([]);
  });
});
