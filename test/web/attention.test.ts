// The attention view in Chromium: the heads grid, the token-to-token view and the pattern matrix show the
// library's weights; the induction organism's induction head is seen looking one token past the last copy.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attentionPatterns } from '../../src/methods/attention.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['assets/stories260K', 'test/fixtures/induction-2l'] });
});
afterAll(async () => ex?.close());

const tokenWeights = (attr: 'data-to' | 'data-from') =>
  ex.page.$$eval(
    '.token-attention .token',
    (els, a) => els.map((e) => (e.getAttribute(a) === '' ? null : Number(e.getAttribute(a)))),
    attr,
  );

/** `n` distinct one-token words (' cat'-like) of the model's vocabulary, in a seeded random order. */
function randomWords(strings: string[], n: number, seed: number): string[] {
  const words = strings.filter((s) => /^ [a-z]{2,}$/.test(s));
  let s = seed;
  const rnd = () => (s = (s * 16807) % 2147483647) / 2147483647;
  for (let i = words.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    [words[i], words[j]] = [words[j]!, words[i]!];
  }
  return words.slice(0, n);
}

describe('attention view', () => {
  it('shows stories260K’s patterns: thumbnails, token-to-token weights and the matrix are the library’s', async () => {
    const prompt = 'Once upon a time, there was a little girl named Lily.';
    await ex.open(`?view=attention&prompt=${encodeURIComponent(prompt)}&layer=2&head=3&query=6`);
    const { page } = ex;
    await page.waitForSelector('[data-testid="head-detail"] [role="gridcell"]');
    const model = ex.registry.model('stories260K').model;
    const want = (await attentionPatterns(model, model.encode(prompt), [2])).hooks[0]!.pattern;
    expect(await page.$$eval('.heads-grid [data-head]', (els) => els.length)).toBe(8);

    // The matrix: query × key, every cell.
    const cells = await page.$$eval('[data-testid="head-detail"] [role="gridcell"]', (els) =>
      els.map((e) => [Number(e.dataset.row), Number(e.dataset.col), Number(e.dataset.value)]),
    );
    expect(cells).toHaveLength(want[3]!.length ** 2);
    for (const [q, k, v] of cells) expect(v).toBeCloseTo(want[3]![q!]![k!]!, 6);

    // Token 6 (from the address): its weights on earlier tokens and later tokens' weights on it.
    const to = await tokenWeights('data-to');
    const from = await tokenWeights('data-from');
    to.forEach((w, k) => (k <= 6 ? expect(w).toBeCloseTo(want[3]![6]![k]!, 6) : expect(w).toBeNull()));
    from.forEach((w, q) => (q >= 6 ? expect(w).toBeCloseTo(want[3]![q]![6]!, 6) : expect(w).toBeNull()));

    // Hover another token: the address follows, and so do the weights.
    await page.hover('.token-attention .token[data-pos="9"]');
    await expect.poll(() => page.evaluate(() => location.search)).toContain('query=9');
    (await tokenWeights('data-to'))
      .slice(0, 10)
      .forEach((w, k) => expect(w).toBeCloseTo(want[3]![9]![k]!, 6));
    await ex.screenshot('attention-stories260K');

    // Choosing a head: click, and arrow keys + Enter on the grid.
    await page.click('.heads-grid [data-head="1"]');
    await page.waitForSelector('[data-testid="head-detail"][data-head="1"]');
    await page.focus('.heads-grid svg');
    await page.keyboard.press('ArrowRight');
    await page.keyboard.press('Enter');
    await page.waitForSelector('[data-testid="head-detail"][data-head="2"]');
    expect(await page.evaluate(() => location.search)).toContain('head=2');

    // Another layer from the selector: the matrix is that layer's.
    await page.getByRole('combobox', { name: /^Layer/ }).selectOption('4');
    await page.waitForSelector('[data-testid="head-detail"][data-layer="4"]');
    const want4 = (await attentionPatterns(model, model.encode(prompt), [4])).hooks[0]!.pattern;
    const v = await page.getAttribute(
      '[data-testid="head-detail"] [data-row="7"][data-col="3"]',
      'data-value',
    );
    expect(Number(v)).toBeCloseTo(want4[2]![7]![3]!, 6);

    // The heads grid exports as SVG.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.click('text=Export SVG >> nth=0'),
    ]);
    expect(download.suggestedFilename()).toBe('sonde-attention-L4.svg');
  });

  it('shows the induction organism’s induction head attending to the token after the previous copy', async () => {
    const model = ex.registry.model('induction-2l').model;
    const vocab = model.tokenStrings(Array.from({ length: model.cfg.vocabSize }, (_, i) => i));
    const words = randomWords(vocab, 10, 3);
    const prompt = (words.join('') + words.join('')).trim();
    const ids = model.encode(prompt);
    expect(ids.length).toBe(1 + 2 * words.length); // BOS, then each word is one token
    const pattern = (await attentionPatterns(model, ids, [1])).hooks[0]!.pattern;
    // The induction head: the layer-1 head whose second-repeat rows peak one past the first copy most often.
    const second = Array.from({ length: words.length }, (_, i) => 1 + words.length + i);
    const argmax = (row: number[]) => row.indexOf(Math.max(...row));
    const hits = pattern.map(
      (rows) => second.filter((q) => argmax(rows[q]!) === q - words.length + 1).length,
    );
    const head = hits.indexOf(Math.max(...hits));
    expect(hits[head]).toBeGreaterThanOrEqual(second.length - 1);

    await ex.open(
      `?view=attention&model=induction-2l&prompt=${encodeURIComponent(prompt)}&layer=1&head=${head}`,
    );
    const { page } = ex;
    await page.waitForSelector('[data-testid="head-detail"] [role="gridcell"]');
    let onPage = 0;
    for (const q of second) {
      await page.hover(`.token-attention .token[data-pos="${q}"]`);
      await expect.poll(() => page.evaluate(() => location.search)).toContain(`query=${q}`);
      const to = (await tokenWeights('data-to')).map((w) => w ?? -1);
      to.forEach((w, k) => w >= 0 && expect(w).toBeCloseTo(pattern[head]![q]![k]!, 6));
      // The token after the previous occurrence of this one.
      if (argmax(to) === q - words.length + 1) onPage++;
    }
    expect(onPage).toBe(hits[head]);
    await ex.screenshot('attention-induction-2l');
  });

  it('shows a bad request as an error line and keeps working', async () => {
    const { page } = ex;
    await ex.open('?view=attention&model=induction-2l');
    await page.waitForSelector('.heads-grid');
    await page.fill('textarea', ' cat'.repeat(200));
    await page.click('button[type="submit"]');
    await expect
      .poll(() => page.textContent('[role="alert"]'))
      .toContain("more than the model's context of 128");
    await page.fill('textarea', ' cat dog cat dog');
    await page.click('button[type="submit"]');
    await page.waitForSelector('.heads-grid [data-head="3"]');
    expect(await page.$('[role="alert"]')).toBeNull();
  });

  it('reaches every control with the keyboard', async () => {
    await ex.open('?view=attention&prompt=Once%20upon%20a%20time&head=0&query=2');
    await ex.page.waitForSelector('[data-testid="head-detail"]');
    expect(await controlsTabSkips(ex.page)).toEqual([]);
  });
});
