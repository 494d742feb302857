// The attribution graph view in Chromium: the links and node facts on the page are the library's graph file,
// the slider keeps exactly the links with |weight| ≥ its threshold, and an uploaded graph file is drawn.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { promptGraph } from '../../src/circuits/attribution-prompt.js';
import { defaultTranscodersDir, loadTranscoders } from '../../src/circuits/transcoder-set.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';
import { drawnEdges, kept, moveSlider, sliderState } from './graph-page.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['assets/stories260K', 'test/fixtures/induction-2l'] });
});
afterAll(async () => ex?.close());

const PROMPT = 'Tom and Lily went to the park. Lily';
const query = (p: Record<string, string>) =>
  `?${new URLSearchParams({ view: 'attribution-graph', ...p }).toString()}`;

describe('attribution graph view', () => {
  it('stories260K: the links, weights and node facts are the library’s; the slider keeps exactly |weight| ≥ threshold; an uploaded file is drawn', async () => {
    await ex.open(query({ model: 'stories260K', prompt: PROMPT }));
    const { page } = ex;
    await page.waitForSelector('[data-testid="graph-summary"]', { timeout: 60_000 });
    const model = ex.registry.model('stories260K').model;
    const { file, scores } = await promptGraph(
      model,
      loadTranscoders(defaultTranscodersDir(), model.cfg),
      model.encode(PROMPT),
      { slug: 'test', scan: 'stories260K-transcoders', prompt: PROMPT },
    );
    const links = file.links.map((l) => ({ id: `${l.source}->${l.target}`, weight: l.weight }));
    const summary = page.locator('[data-testid="graph-summary"]');
    expect(Number(await summary.getAttribute('data-links'))).toBe(file.links.length);
    expect(Number(await summary.getAttribute('data-replacement'))).toBeCloseTo(scores.replacement, 4);

    // Every link at first (threshold 0), with the library's weights.
    let drawn = await drawnEdges(page);
    expect([...drawn.keys()].sort()).toEqual(kept(links, 0));
    for (const l of links) expect(drawn.get(l.id)).toBeCloseTo(l.weight, 4);
    await moveSlider(page, 120);
    const s = await sliderState(page);
    drawn = await drawnEdges(page);
    expect(s.kept).toBe(drawn.size);
    expect(drawn.size).toBeLessThan(links.length);
    expect([...drawn.keys()].sort()).toEqual(kept(links, s.threshold));

    // A feature's facts: index, layer, position, activation and influence, as the file gives them.
    const feature = file.nodes
      .filter((n) => n.feature_type === 'cross layer transcoder')
      .sort((a, b) => a.influence! - b.influence!)[0]!;
    await page.hover(`[data-node="${feature.node_id}"]`);
    const facts = page.locator('.node-facts');
    expect(await facts.getAttribute('data-feature')).toBe(feature.node_id.split('_')[1]);
    expect(await facts.getAttribute('data-layer')).toBe(feature.layer);
    expect(Number(await facts.getAttribute('data-pos'))).toBe(feature.ctx_idx);
    expect(Number(await facts.getAttribute('data-activation'))).toBeCloseTo(feature.activation!, 4);
    expect(Number(await facts.getAttribute('data-influence'))).toBeCloseTo(feature.influence!, 4);
    await page.click(`[data-node="${feature.node_id}"]`);
    expect(await page.getAttribute(`[data-node="${feature.node_id}"]`, 'data-pinned')).toBe('true');
    await ex.screenshot('attribution-graph-stories260K');
    expect(await controlsTabSkips(page)).toEqual([]);

    // The same graph as an uploaded circuit-tracer file, and a broken file refused with the reason.
    const upload = (name: string, text: string) =>
      page.setInputFiles('input[type="file"]', {
        name,
        mimeType: 'application/json',
        buffer: Buffer.from(text),
      });
    const broken = {
      ...file,
      links: [...file.links, { source: file.nodes[0]!.node_id, target: 'nope', weight: 1 }],
    };
    await upload('broken.json', JSON.stringify(broken));
    await expect
      .poll(() => page.textContent('[role="alert"]'))
      .toMatch(/links to a node the file does not list/);
    await upload('lily.json', JSON.stringify({ ...file, metadata: { ...file.metadata, slug: 'lily' } }));
    await expect.poll(() => summary.textContent()).toContain('uploaded graph “lily”');
    expect(await page.$('[role="alert"]')).toBeNull();
    expect((await drawnEdges(page)).size).toBe(kept(links, s.threshold).length);
  });

  it('the induction organism (attention only) gets the reason no graph can be made, and the page still works', async () => {
    await ex.open(query({ model: 'induction-2l', prompt: PROMPT }));
    const { page } = ex;
    await expect
      .poll(() => page.textContent('[role="alert"]'), { timeout: 30_000 })
      .toContain('this model has no MLPs');
    await ex.screenshot('attribution-graph-induction-2l');
    await page.selectOption('header select', 'stories260K');
    await page.waitForSelector('[data-testid="graph-summary"]', { timeout: 60_000 });
    expect(await page.$('[role="alert"]')).toBeNull();
  });
});
