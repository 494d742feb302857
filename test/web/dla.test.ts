// The direct logit attribution view in Chromium: its bars are the library's contributions for the
// prompt and tokens in the address, sorted, on stories260K and the induction organism.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { directLogitAttribution } from '../../src/methods/dla.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

const STORY = {
  prompt: 'Lily and Tim went to the park. Tim gave the ball to',
  answer: ' Lily',
  wrong: ' Tim',
};
const A = [' mom', ' big', ' saw', ' friend', ' very', ' day', ' his', ' upon'];
const REPEAT = { prompt: [...A, ...A.slice(0, 7)].join(''), answer: ' upon', wrong: ' named' };

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['assets/stories260K', 'test/fixtures/induction-2l'] });
});
afterAll(async () => ex?.close());

const query = (params: Record<string, string>) => `?view=dla&${new URLSearchParams(params).toString()}`;

async function bars() {
  await ex.page.waitForSelector('[role="list"] [data-label]');
  return ex.page.$$eval('[role="list"] [data-label]', (els) =>
    els.map((e) => ({ name: e.getAttribute('data-label')!, value: Number(e.getAttribute('data-value')) })),
  );
}

async function expectLibrary(modelId: string, p: typeof STORY, pos?: number) {
  const model = ex.registry.model(modelId).model;
  const want = await directLogitAttribution(model, model.encode(p.prompt), {
    answer: p.answer,
    wrong: p.wrong,
    pos,
  });
  const got = await bars();
  const sorted = [...want.components].sort((x, y) => y.contribution - x.contribution);
  expect(got.map((b) => b.name)).toEqual(sorted.map((c) => c.name));
  got.forEach((b, i) => expect(b.value).toBeCloseTo(sorted[i]!.contribution, 5));
  const logitDiff = Number(await ex.page.getAttribute('[data-testid="logit-diff"]', 'data-value'));
  expect(logitDiff).toBeCloseTo(want.logitDiff, 5);
  return sorted;
}

describe('direct logit attribution view', () => {
  it('stories260K: one bar per component, sorted, equal to the library’s; hover and arrow keys inspect', async () => {
    const { page } = ex;
    await ex.open(query(STORY));
    const sorted = await expectLibrary('stories260K', STORY);
    expect(sorted.some((c) => c.name === 'L3H5')).toBe(true); // heads, MLPs and embeddings, as `sonde dla`
    await page.hover(`[data-label="${sorted[3]!.name}"] rect`);
    expect(await page.textContent('figcaption.inspect')).toContain(
      `${sorted[3]!.name}: ${sorted[3]!.contribution.toFixed(4)}`,
    );
    await page.mouse.move(0, 0); // off the chart: focusing scrolls it, which would hover another bar
    await page.focus('svg[role="list"]');
    await page.keyboard.press('Home');
    await page.keyboard.press('ArrowDown');
    expect(await page.textContent('figcaption.inspect')).toContain(`${sorted[1]!.name}:`);
    await ex.screenshot('dla-stories260K');
    expect(await controlsTabSkips(page)).toEqual([]);
    // A token of the prompt chooses the position explained.
    await page.click('.token[data-pos="7"]');
    await expect.poll(() => page.getAttribute('.token[data-pos="7"]', 'aria-pressed')).toBe('true');
    await expectLibrary('stories260K', STORY, 7);
  });

  it('induction-2l: the copied token’s attribution at a chosen position', async () => {
    await ex.open(query({ model: 'induction-2l', ...REPEAT, pos: '-1' }));
    const sorted = await expectLibrary('induction-2l', REPEAT, -1);
    expect(sorted[0]!.name).toMatch(/^L1H\d$/); // an induction head adds most
    await ex.screenshot('dla-induction-2l');
  });

  it('shows a bad request as an error line and keeps working', async () => {
    const { page } = ex;
    await ex.open(query(STORY));
    await bars();
    await page.fill('input >> nth=0', ' Lily and');
    await page.click('button[type="submit"]');
    await expect.poll(() => page.textContent('[role="alert"]')).toMatch(/answer/);
    await page.fill('input >> nth=0', ' Tim');
    await page.fill('input >> nth=1', '');
    await page.click('button[type="submit"]');
    await expect.poll(() => page.$('[role="alert"]')).toBeNull();
    await expectLibrary('stories260K', { ...STORY, answer: ' Tim', wrong: undefined as unknown as string });
  });
});
