// The circuit view in Chromium: the scored edges on the page are the library's, the slider keeps exactly
// the edges with |score| ≥ its threshold, and the induction organism's circuit has its known edge.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { discoverCircuit, type DiscoveryResult } from '../../src/circuits/discover.js';
import { graphDrawing } from '../../src/circuits/drawing.js';
import { examplePairs, parsePairs } from '../../src/circuits/pairs.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';
import { drawnEdges, kept, moveSlider, sliderState } from './graph-page.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['assets/stories260K', 'test/fixtures/induction-2l'] });
});
afterAll(async () => ex?.close());

const example = (name: string) =>
  examplePairs()
    .find((e) => e.name === name)!
    .text.trim()
    .split('\n');
const query = (p: Record<string, string>) => `?${new URLSearchParams({ view: 'circuit', ...p }).toString()}`;
const scored = (r: DiscoveryResult) => r.edges.map((e) => ({ id: e.edge, weight: e.score }));

async function waitForResult(): Promise<void> {
  await ex.page.waitForSelector('[data-testid="circuit-summary"]', { timeout: 60_000 });
}

describe('circuit view', () => {
  it('stories260K, EAP: the page’s edges and scores are the library’s; the slider keeps exactly |score| ≥ threshold', async () => {
    const pairs = example('circuit-names').slice(0, 2).join('\n');
    await ex.open(query({ model: 'stories260K', method: 'eap', metric: 'logit-diff', top: '20', pairs }));
    await waitForResult();
    const { page } = ex;
    const model = ex.registry.model('stories260K').model;
    const want = await discoverCircuit(model, parsePairs(model, pairs, 'pairs'), {
      method: 'eap',
      metric: 'logit-diff',
      top: 20,
    });
    expect(
      Number(await page.getAttribute('[data-testid="circuit-summary"]', 'data-faithfulness')),
    ).toBeCloseTo(want.circuit.faithfulness, 4);
    // At first: the edges at least as strong as the circuit's weakest, with the library's scores.
    let s = await sliderState(page);
    const weakest = Math.min(...want.edges.filter((e) => e.inCircuit).map((e) => Math.abs(e.score!)));
    expect(s.threshold).toBeCloseTo(weakest, 5);
    let drawn = await drawnEdges(page);
    expect([...drawn.keys()].sort()).toEqual(kept(scored(want), s.threshold));
    for (const e of want.edges) if (drawn.has(e.edge)) expect(drawn.get(e.edge)).toBeCloseTo(e.score!, 5);
    for (const e of want.circuit.edges) expect(drawn.has(e), e).toBe(true);

    // Down the slider: more edges, exactly those with |score| ≥ the new threshold.
    await moveSlider(page, -25);
    s = await sliderState(page);
    drawn = await drawnEdges(page);
    expect(s.kept).toBe(drawn.size);
    expect([...drawn.keys()].sort()).toEqual(kept(scored(want), s.threshold));
    expect(drawn.size).toBeGreaterThan(want.circuit.edges.length);
    expect(new URL(page.url()).searchParams.get('minScore')).toBe(String(s.threshold));

    // Hover a node: its edges and scores in the details; click pins it (its edges stay highlighted).
    await page.hover('[data-node="a2.h6"]');
    const rows = await page.$$eval('[data-detail-edge]', (trs) =>
      trs.map((tr) => [tr.getAttribute('data-detail-edge')!, Number(tr.getAttribute('data-score'))] as const),
    );
    const touching = graphDrawing(want, model.cfg)
      .edges.filter((e) => e.source === 'a2.h6' || e.targets.includes('a2.h6'))
      .map((e) => e.edge);
    expect(rows.length).toBeGreaterThan(0);
    for (const [id, v] of rows) {
      expect(drawn.get(id)).toBe(v);
      expect(touching, id).toContain(id);
    }
    await page.click('[data-node="a2.h6"]');
    await page.mouse.move(0, 0);
    expect(await page.getAttribute('[data-node="a2.h6"]', 'data-pinned')).toBe('true');
    const lit = await page.$$eval('svg [data-edge][data-highlight]', (els) =>
      els.map((e) => e.getAttribute('data-edge')),
    );
    const touchingDrawn = touching.filter((id) => drawn.has(id)).sort();
    expect(lit.sort()).toEqual(touchingDrawn);
    // The details list the 40 strongest.
    expect(rows.length).toBe(Math.min(40, touchingDrawn.length));
    await ex.screenshot('circuit-stories260K');
    expect(await controlsTabSkips(page)).toEqual([]);
  });

  it('induction organism, ACDC: the page’s circuit has the previous-token head → induction head <k> edge the library finds', async () => {
    const pairs = example('induction-pairs').slice(0, 2).join('\n');
    const params = { model: 'induction-2l', method: 'acdc', metric: 'kl', cut: '0.05', pairs };
    await ex.open(query(params));
    await waitForResult();
    const model = ex.registry.model('induction-2l').model;
    const want = await discoverCircuit(model, parsePairs(model, pairs, 'pairs'), {
      method: 'acdc',
      metric: 'kl',
      threshold: 0.05,
    });
    const induction = want.circuit.edges.filter((e) => /^a0\.h[12]->a1\.h\d<k>$/.test(e));
    // L0H1 is the organism's strongest previous-token head (its README).
    expect(induction.some((e) => e.startsWith('a0.h1->'))).toBe(true);
    const drawn = await drawnEdges(ex.page);
    for (const e of induction) {
      expect(drawn.has(e), e).toBe(true);
      expect(drawn.get(e)).toBeCloseTo(want.edges.find((x) => x.edge === e)!.score!, 5);
    }
    expect([...drawn.keys()].sort()).toEqual(kept(scored(want), (await sliderState(ex.page)).threshold));

    // Keyboard: the graph is one tab stop; arrows move between nodes and Enter pins one.
    await ex.page.focus('svg[aria-roledescription="graph"]');
    await ex.page.keyboard.press('ArrowUp');
    await ex.page.keyboard.press('Enter');
    const pinned = await ex.page.getAttribute('[data-pinned="true"]', 'data-node');
    expect(pinned).toMatch(/^a0\.h\d$/);
    expect(new URL(ex.page.url()).searchParams.get('pin')).toBe(pinned);
    await ex.screenshot('circuit-induction-2l');
  });

  it('cancels a running discovery from the page', async () => {
    // Cancelled at once: the job stops after its first batch of tested edges.
    const pairs = example('induction-pairs').slice(0, 4).join('\n');
    await ex.open(query({ model: 'induction-2l', method: 'acdc', metric: 'kl', cut: '0.001', pairs }));
    const { page } = ex;
    await page.waitForSelector('.job[data-status="running"] button', { timeout: 30_000 });
    await page.click('.job button');
    await page.waitForSelector('.job[data-status="cancelled"]');
    expect(await page.$('[data-testid="circuit-summary"]')).toBeNull();
  });

  it('a pair of unequal token counts shows the library’s error, and the page still works', async () => {
    await ex.open(query({ model: 'stories260K' }));
    const { page } = ex;
    await page.waitForFunction(() => document.querySelector('textarea')!.value.length > 0);
    await page.fill('textarea', '{"clean": "Once upon a time", "corrupt": "Once upon a time there"}');
    await page.click('button[type="submit"]');
    await expect
      .poll(() => page.textContent('[role="alert"]'), { timeout: 30_000 })
      .toMatch(/pairs line 1: clean has \d+ tokens and corrupt \d+/);
    await page.fill('textarea', example('circuit-names')[0]!);
    await page.click('button[type="submit"]');
    await waitForResult();
    expect(await page.$('[role="alert"]')).toBeNull();
  });
});
