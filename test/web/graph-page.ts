// What the circuit and attribution graph views show, read back from the page (GraphCanvas, ThresholdSlider).
import type { Page } from 'playwright-core';

/** The drawn edges: id → weight (exact, from data-score). */
export async function drawnEdges(page: Page): Promise<Map<string, number>> {
  const rows = await page.$$eval('svg [data-edge]', (els) =>
    els.map((e) => [e.getAttribute('data-edge')!, Number(e.getAttribute('data-score'))] as const),
  );
  return new Map(rows);
}

/** The threshold the slider holds and the count it says is kept. */
export async function sliderState(page: Page): Promise<{ threshold: number; kept: number }> {
  const out = page.locator('[data-testid="edges-kept"]');
  return {
    threshold: Number(await out.getAttribute('data-threshold')),
    kept: Number(await out.getAttribute('data-kept')),
  };
}

/** Moves the slider by `steps` arrow presses (negative: left) and waits for the page to redraw. */
export async function moveSlider(page: Page, steps: number): Promise<void> {
  const before = (await sliderState(page)).threshold;
  await page.focus('input[type="range"]');
  for (let i = 0; i < Math.abs(steps); i++) await page.keyboard.press(steps < 0 ? 'ArrowLeft' : 'ArrowRight');
  await page.waitForFunction(
    (b) => Number(document.querySelector('[data-testid="edges-kept"]')!.getAttribute('data-threshold')) !== b,
    before,
  );
}

/** Ids of the edges with |weight| ≥ t (sorted), from the library's list. */
export function kept(edges: { id: string; weight: number | null }[], t: number): string[] {
  return edges
    .filter((e) => e.weight !== null && Math.abs(e.weight) >= t)
    .map((e) => e.id)
    .sort();
}
