import '../../src/engine/node.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { saeConfig } from '../../src/sae/config.js';
import { SparseAutoencoder } from '../../src/sae/sae.js';
import { defaultCorpusPath, readCorpus } from '../../src/sae/corpus.js';
import { splitData, SPLIT_KEY } from '../../src/sae/provenance.js';
import { saveSaeLens } from '../../src/sae/saelens.js';
import { sonde } from '../helpers/cli.js';
import { identitySae } from '../helpers/sae.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-sae-eval-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

function folder(name: string, sae: SparseAutoencoder): string {
  const dir = path.join(tmp, name);
  saveSaeLens(sae, dir);
  return dir;
}

describe('sonde sae eval', () => {
  it('an identity SAE: explained variance 1 and CE loss recovered 1 (--json), a density plot', async () => {
    const dir = folder('identity', identitySae('blocks.2.hook_resid_pre'));
    const plot = path.join(tmp, 'density.svg');
    const r = await sonde(
      'sae',
      'eval',
      '--sae',
      dir,
      '--n-tokens',
      '300',
      '--ctx',
      '64',
      '--plot',
      plot,
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      tokens: number;
      explainedVariance: number;
      mse: number;
      ce: { recovered: number; clean: number; zeroAblated: number };
      densityHistogram: { counts: number[] };
      hookName: string;
    };
    expect(doc.hookName).toBe('blocks.2.hook_resid_pre');
    expect(doc.tokens).toBe(300);
    expect(doc.explainedVariance).toBeCloseTo(1, 4);
    expect(doc.mse).toBeLessThan(1e-8);
    expect(doc.ce.recovered).toBeCloseTo(1, 4);
    expect(doc.ce.zeroAblated).toBeGreaterThan(doc.ce.clean);
    expect(doc.densityHistogram.counts.reduce((a, b) => a + b, 0)).toBe(128);
    expect(fs.readFileSync(plot, 'utf8')).toMatch(/^<svg/);
  });

  it('prints a summary table', async () => {
    const dir = folder(
      'random',
      SparseAutoencoder.init(
        saeConfig({ architecture: 'topk', k: 8, dIn: 64, dSae: 128, hookName: 'blocks.1.hook_resid_post' }),
        { seed: 2 },
      ),
    );
    const r = await sonde('sae', 'eval', '--sae', dir, '--n-tokens', '200', '--ctx', '50');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/SAE blocks\.1\.hook_resid_post \(topk, d_in 64, d_sae 128\)/);
    expect(r.stdout).toMatch(/CE loss recovered/);
    expect(r.stdout).toMatch(/L0 \(active latents per token\)\s+8\b/);
    expect(r.stdout).toMatch(/log10 feature density/);
  });

  it('defaults to the documents its training held out, and warns about another model', async () => {
    const docs = readCorpus(defaultCorpusPath());
    const id = identitySae('blocks.2.hook_resid_pre');
    const metadata = {
      model_name: 'gpt2',
      dataset_path: defaultCorpusPath(),
      [SPLIT_KEY]: splitData(docs.length, 0.05, 'documents', docs),
    };
    const dir = folder('provenance', new SparseAutoencoder({ ...id.cfg, metadata }, id.params));
    const r = await sonde('sae', 'eval', '--sae', dir, '--n-tokens', '300', '--ctx', '64', '--json');
    expect(r.code).toBe(0);
    const warning = "this SAE's cfg.json names model 'gpt2', but the model loaded is 'stories260K'";
    expect(r.stderr).toBe(`sonde: warning: ${warning}\n`);
    const doc = JSON.parse(r.stdout) as { measuredOn: string; heldOut: boolean; warnings: string[] };
    expect(doc.measuredOn).toBe("documents 2853-3002 of 3002 (held out of the SAE's training)");
    expect(doc.heldOut).toBe(true);
    expect(doc.warnings).toEqual([warning]);
    // Trained on this corpus without a recorded split: the numbers are labelled in-sample.
    const noSplit = folder(
      'no-split',
      new SparseAutoencoder({ ...id.cfg, metadata: { dataset_path: defaultCorpusPath() } }, id.params),
    );
    const t = await sonde('sae', 'eval', '--sae', noSplit, '--n-tokens', '300', '--ctx', '64');
    expect(t.code).toBe(0);
    expect(t.stdout).toMatch(/of the built-in stories, all documents \(the SAE was trained on this corpus\)/);
    expect(t.stderr).toMatch(
      /^sonde: warning: the SAE was trained on .*stories260K-samples\.txt .*in-sample\n$/,
    );
  });

  it('an SAE that does not fit the model fails with one line', async () => {
    const unknown = folder('unknown', identitySae('blocks.9.hook_resid_pre'));
    const a = await sonde('sae', 'eval', '--sae', unknown, '--n-tokens', '100');
    expect(a.code).toBe(1);
    expect(a.stdout).toBe('');
    expect(a.stderr.trim().split('\n')).toHaveLength(1);
    expect(a.stderr).toMatch(/^sonde: .*'blocks\.9\.hook_resid_pre' is not a hook point/);
    const narrow = folder('narrow', identitySae('blocks.0.hook_resid_pre', 32));
    const b = await sonde('sae', 'eval', '--sae', narrow, '--n-tokens', '100');
    expect(b.code).toBe(1);
    expect(b.stderr.trim().split('\n')).toHaveLength(1);
    expect(b.stderr).toMatch(/'blocks\.0\.hook_resid_pre' has d_in=32.*\[batch, pos, 64\]/);
    const missing = await sonde('sae', 'eval', '--sae', path.join(tmp, 'nothing-here'));
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
  });
});
