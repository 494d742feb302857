// A real browser on a real server: `sonde serve`'s server in this process (so a test can call the
// library on the same model and compare), Debian's Chromium driven by playwright-core.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import { buildServer } from '../../src/server/app.js';
import type { JobManager } from '../../src/server/jobs/manager.js';
import { Registry } from '../../src/server/registry.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
/** Screenshots kept as test artifacts (CI uploads this folder). */
export const ARTIFACTS = path.join(root, 'test-artifacts', 'screenshots');

export interface Explorer {
  registry: Registry;
  /** The server's jobs (to compare what the page shows, and to see their workers). */
  jobs: JobManager;
  /** The page's address (http://127.0.0.1:PORT/), token included when the server has one. */
  url: string;
  browser: Browser;
  page: Page;
  /** Opens `query` (e.g. '?view=prompt&prompt=…') in the page and waits for the app to start. */
  open(query?: string): Promise<void>;
  screenshot(name: string): Promise<void>;
  close(): Promise<void>;
}

export function chromiumPath(): string {
  for (const p of ['/usr/bin/chromium', '/usr/bin/chromium-browser']) if (fs.existsSync(p)) return p;
  throw new Error('Chromium is missing: run scripts/install-chromium.sh');
}

export async function openExplorer(
  opts: { models?: string[]; saes?: string[]; token?: string | null } = {},
): Promise<Explorer> {
  const registry = await Registry.open(opts.models ?? [], opts.saes ?? []);
  const token = opts.token ?? null;
  const { app, jobs } = await buildServer({ registry, token });
  const address = await app.listen({ port: 0, host: '127.0.0.1' });
  const base = `${address}/`;
  const browser = await chromium.launch({ executablePath: chromiumPath(), args: ['--no-sandbox'] });
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const withToken = (q: string) => (token ? `${q}${q.includes('?') ? '&' : '?'}token=${token}` : q);
  return {
    registry,
    jobs,
    url: base + withToken(''),
    browser,
    page,
    async open(query = '') {
      await page.goto(base + withToken(query));
      await page.waitForSelector('header h1');
    },
    async screenshot(name) {
      fs.mkdirSync(ARTIFACTS, { recursive: true });
      await page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });
    },
    async close() {
      await browser.close();
      await app.close();
    },
  };
}

/** Every focusable control of the page, reached by pressing Tab (labels of those never reached). */
export async function controlsTabSkips(page: Page, maxTabs = 300): Promise<string[]> {
  const all: string[] = await page.evaluate(() => {
    const els = [
      ...document.querySelectorAll<HTMLElement>('button, input, select, textarea, a[href], [tabindex="0"]'),
    ];
    return (
      els
        // checkVisibility: what is drawn (a control in a closed <details> is not, though it has an offsetParent).
        .filter((e) => !(e as HTMLButtonElement).disabled && e.checkVisibility())
        .map((e, i) => (e.dataset.tabId = String(i)))
    );
  });
  await page.evaluate(() => (document.activeElement as HTMLElement | null)?.blur());
  const reached = new Set<string>();
  for (let i = 0; i < maxTabs && reached.size < all.length; i++) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(
      () => (document.activeElement as HTMLElement | null)?.dataset.tabId ?? null,
    );
    if (id !== null) reached.add(id);
  }
  const missing = all.filter((id) => !reached.has(id));
  return page.evaluate(
    (ids) =>
      ids.map((id) => {
        const e = document.querySelector<HTMLElement>(`[data-tab-id="${id}"]`)!;
        return `${e.tagName.toLowerCase()} "${(e.getAttribute('aria-label') ?? e.textContent ?? '').trim().slice(0, 40)}"`;
      }),
    missing,
  );
}
