// Training an SAE from the page: with no SAE open, the SAE view trains one (a job with progress), the
// server opens it, and the page shows it with the held-out numbers the library measures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultCorpusPath, readCorpus } from '../../src/sae/corpus.js';
import { HELD_OUT_EVAL_TOKENS } from '../../src/sae/corpus-training.js';
import { evaluateSae } from '../../src/sae/evaluate.js';
import { controlsTabSkips, openExplorer, type Explorer } from './harness.js';

let ex: Explorer;
beforeAll(async () => {
  ex = await openExplorer();
});
afterAll(async () => ex?.close());

describe('SAE training in the page', () => {
  it('trains an SAE, opens it, and shows the library’s held-out numbers', async () => {
    const { page } = ex;
    await ex.open('?view=sae');
    await page.waitForSelector('text=No SAE is open');
    expect(await controlsTabSkips(page)).toEqual([]);
    await page.getByLabel('Hook').fill('blocks.1.hook_resid_post');
    await page.getByLabel('Width').fill('128');
    await page.getByLabel('k', { exact: true }).fill('8');
    await page.getByLabel('Tokens').fill('8192');
    await page.getByRole('button', { name: 'Train' }).click();
    await page.waitForSelector('progress');
    const result = await page.waitForSelector('[data-testid="sae-train-result"]', { timeout: 120_000 });
    // The server opened it, and the page moved to it.
    expect(ex.registry.saes.size).toBe(1);
    const open = [...ex.registry.saes.values()][0]!;
    await expect.poll(() => new URL(page.url()).searchParams.get('sae')).toBe(open.id);
    expect(await page.textContent('.sae-controls select')).toContain(
      `${open.id} (topk, 128 latents at blocks.1.hook_resid_post)`,
    );
    const split = open.sae.cfg.metadata.training_split as { train: number };
    const want = await evaluateSae(
      ex.registry.model(undefined).model,
      open.sae,
      readCorpus(defaultCorpusPath()).slice(split.train),
      {
        ctx: 128,
        maxTokens: HELD_OUT_EVAL_TOKENS,
      },
    );
    expect(Number(await result.getAttribute('data-ev'))).toBeCloseTo(want.explainedVariance, 5);
    await ex.screenshot('sae-train-stories260K');
  });
});
