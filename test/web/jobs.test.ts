// The jobs view in Chromium: a long job started through the API is listed with the server's progress,
// cancelled from the page, and shown cancelled; its worker is gone; keyboard reaches every control.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer({ models: ['stories260K', 'test/fixtures/induction-2l'] });
});
afterAll(async () => ex?.close());

const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside. ';
/** A sweep of about a minute (every layer × position of a long prompt) on the model `model`. */
function longParams(model: string, repeat: number) {
  return {
    model,
    clean: story.repeat(repeat),
    corrupt: story.replace('Lily', 'Tim').repeat(repeat),
    answer: ' Lily',
    wrong: ' Tim',
  };
}

/** Starts a job through the page's own API (same origin, as a view would). */
async function startJob(params: object): Promise<string> {
  return ex.page.evaluate(async (p) => {
    const r = await fetch('/api/jobs', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ kind: 'patching', params: p }),
    });
    return ((await r.json()) as { id: string }).id;
  }, params);
}

const row = (id: string) => `tr[data-job="${id}"]`;

describe('jobs view', () => {
  it('lists a running job with the server’s progress, cancels it from the page, and shows it cancelled', async () => {
    await ex.open('?view=jobs');
    const { page } = ex;
    await page.waitForSelector('text=No jobs');
    // One on each model: the induction organism (its context is 128 tokens) waits in the queue.
    const running = await startJob(longParams('stories260K', 6));
    const queued = await startJob(longParams('induction-2l', 4));
    await page.waitForSelector(`${row(running)}[data-status="running"][data-done]:not([data-done=""])`, {
      timeout: 60_000,
    });
    await page.waitForSelector(`${row(queued)}[data-status="queued"]`);
    // The numbers on the page are the server's (read a moment apart: progress only grows).
    const shown = Number(await page.getAttribute(row(running), 'data-done'));
    const server = ex.jobs.get(running).progress!;
    expect(Number(await page.getAttribute(row(running), 'data-total'))).toBe(server.total);
    expect(shown).toBeGreaterThan(0);
    expect(await page.textContent(`${row(running)} td:nth-child(2)`)).toBe('stories260K');
    expect(await page.textContent(`${row(queued)} td:nth-child(2)`)).toBe('induction-2l');
    expect(shown).toBeLessThanOrEqual(server.done);
    expect(await page.textContent(`${row(running)} td:nth-child(4)`)).toContain(`/${server.total}`);
    await ex.screenshot('jobs-stories260K');

    await page.click(`${row(running)} button:has-text("Cancel")`);
    await page.waitForSelector(`${row(running)}[data-status="cancelled"]`, { timeout: 5000 });
    expect(ex.jobs.get(running).status).toBe('cancelled');
    // The queued job on the induction organism runs next; cancel it with the keyboard.
    await page.waitForSelector(`${row(queued)}[data-status="running"]`, { timeout: 30_000 });
    expect(ex.jobs.runningWorkers()).toBe(1);
    await page.focus(`${row(queued)} button`);
    await page.keyboard.press('Enter');
    await page.waitForSelector(`${row(queued)}[data-status="cancelled"]`, { timeout: 5000 });
    expect(ex.jobs.runningWorkers()).toBe(0);
    await ex.screenshot('jobs-induction-2l');

    // "running and queued" hides them; the choice is in the address.
    await page.selectOption('select:near(:text("Show"))', 'active');
    await page.waitForSelector('text=No running or queued jobs');
    expect(page.url()).toContain('show=active');
  });

  it('shows a bad request as an error line and keeps working', async () => {
    const { page } = ex;
    await ex.open('?view=jobs&show=all');
    const id = await startJob(longParams('stories260K', 6));
    await page.waitForSelector(`${row(id)} button`);
    // The Cancel request goes astray (as for a job the server has forgotten): the server's refusal shows.
    const cancelUrl = `**/api/jobs/${id}`;
    await page.route(cancelUrl, (r) => r.continue({ url: r.request().url().replace(id, 'no-such-job') }));
    await page.click(`${row(id)} button`);
    await expect
      .poll(() => page.textContent('[role="alert"]').catch(() => null))
      .toContain("no job 'no-such-job'");
    expect(ex.jobs.get(id).status).toMatch(/queued|running/);
    // The page still works: the real Cancel stops it and the error line goes.
    await page.unroute(cancelUrl);
    await page.click(`${row(id)} button`);
    await page.waitForSelector(`${row(id)}[data-status="cancelled"]`, { timeout: 5000 });
    expect(await page.$('[role="alert"]')).toBeNull();
  });

  it('reaches every control with the keyboard', async () => {
    await ex.open('?view=jobs&show=all');
    await ex.page.waitForSelector('tr[data-job]');
    expect(await controlsTabSkips(ex.page)).toEqual([]);
  });
});
