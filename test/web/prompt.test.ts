// The prompt view in Chromium: the tokens, losses and predictions on the page are the library's.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptPredictions } from '../../src/methods/predictions.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer();
});
afterAll(async () => ex?.close());

describe('prompt view', () => {
  it('shows the library’s tokens, per-token losses and top predictions for the prompt in the address', async () => {
    const prompt = 'Once upon a time, there was a little dog named Max.';
    await ex.open(`?view=prompt&prompt=${encodeURIComponent(prompt)}`);
    const { page } = ex;
    await page.waitForSelector('[data-testid="mean-loss"]');
    const model = ex.registry.model(undefined).model;
    const want = await promptPredictions(model, model.encode(prompt), 5);

    const tokens = await page.$$eval('.token', (els) =>
      els.map((e) => ({ text: e.textContent, loss: e.getAttribute('data-loss') })),
    );
    expect(tokens.map((t) => t.text!.replace(/\u00a0/g, ' '))).toEqual(want.strings);
    tokens.slice(1).forEach((t, i) => expect(Number(t.loss)).toBeCloseTo(want.losses[i]!, 5));
    expect(Number(await page.getAttribute('[data-testid="mean-loss"]', 'data-value'))).toBeCloseTo(
      want.loss!,
      5,
    );

    await page.hover('.token[data-pos="3"]');
    const rows = await page.$$eval('[data-testid="token-detail"] tbody tr', (trs) =>
      trs.map((tr) => [Number(tr.getAttribute('data-id')), Number(tr.getAttribute('data-prob'))]),
    );
    expect(rows.map((r) => r[0])).toEqual(want.predictions[3]!.map((q) => q.id));
    rows.forEach((r, i) => expect(r[1]).toBeCloseTo(want.predictions[3]![i]!.prob, 6));
    await ex.screenshot('prompt');
  });

  it('shows a bad request as an error line and keeps working', async () => {
    const { page } = ex;
    await ex.open('?view=prompt');
    await page.fill('textarea', 'x'.repeat(5000));
    await page.click('button[type="submit"]');
    await expect.poll(() => page.textContent('[role="alert"]')).toContain('prompt is over 4000 characters');
    await page.fill('textarea', 'Once upon a time');
    await page.click('button[type="submit"]');
    await page.waitForSelector('.token[data-pos="4"]');
    expect(await page.$('[role="alert"]')).toBeNull();
  });

  it('reaches every control with the keyboard', async () => {
    await ex.open('?view=prompt&prompt=Once%20upon%20a%20time');
    await ex.page.waitForSelector('.token');
    expect(await controlsTabSkips(ex.page)).toEqual([]);
  });
});
