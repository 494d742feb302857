import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSaeLens } from '../../src/sae/saelens.js';
import { writeNpy } from '../../src/sae/row-source.js';
import { SyntheticFeatures } from '../../src/sae/synthetic.js';
import { sonde, sondeWithin } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-sae-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

interface TrainDoc {
  architecture: string;
  dIn: number;
  dSae: number;
  steps: number;
  rows: number;
  mmcs: number | null;
  featuresRecovered: number | null;
  eval: {
    l0: number;
    explainedVariance: number;
    deadLatents: number;
    rows: number;
    measuredOn: string;
    heldOut: boolean;
    ceLossRecovered: number | null;
  };
}

describe('sonde sae train', () => {
  it('recovers 512 synthetic features in 256 dimensions at width 512 with the default settings (MMCS >= 0.9)', async () => {
    const out = path.join(tmp, 'synthetic');
    const r = await sondeWithin(
      600_000,
      'sae',
      'train',
      '--synthetic',
      '--width',
      '512',
      '--out',
      out,
      '--json',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as TrainDoc;
    expect(doc.architecture).toBe('standard');
    expect(doc.rows).toBeGreaterThanOrEqual(1_000_000);
    expect(doc.mmcs).toBeGreaterThanOrEqual(0.9);
    expect(doc.featuresRecovered).toBeGreaterThan(400);
    // Ground truth has 5 active features per row on average.
    expect(doc.eval.l0).toBeGreaterThan(3);
    expect(doc.eval.l0).toBeLessThan(15);
    const sae = loadSaeLens(out);
    expect([sae.cfg.dIn, sae.cfg.dSae]).toEqual([256, 512]);
    // The checkpoint folder is cleaned up after a finished run.
    expect(fs.existsSync(`${out}.checkpoint`)).toBe(false);
  }, 660_000);

  it('trains from a .npy matrix (no model) into an SAELens folder', async () => {
    const syn = new SyntheticFeatures({ features: 48, dim: 24, meanActive: 3, seed: 2 });
    const file = path.join(tmp, 'acts.npy');
    writeNpy(file, syn.rows(8192, 1).x, 8192, 24, 'float16');
    const out = path.join(tmp, 'npy-sae');
    const args = ['sae', 'train', '--activations', file, '--arch', 'topk', '--top-k', '4', '--width', '48'];
    const r = await sonde(
      ...args,
      '--epochs',
      '6',
      '--hook',
      'blocks.0.hook_resid_post',
      '--out',
      out,
      '--json',
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as TrainDoc;
    // The last 5% of rows (410) are held out: six epochs of the other 7782, and the numbers come from those 410.
    expect(doc.steps).toBe(Math.ceil((6 * 7782) / 1024));
    expect(doc.eval.measuredOn).toBe('held-out rows 7783-8192 of 8192');
    expect(doc.eval.heldOut).toBe(true);
    expect(doc.eval.rows).toBe(410);
    expect(doc.eval.explainedVariance).toBeGreaterThan(0.7);
    const sae = loadSaeLens(out);
    expect(sae.cfg.metadata.training_split).toEqual({ unit: 'rows', total: 8192, train: 7782 });
    expect(sae.cfg.architecture).toBe('topk');
    expect(sae.cfg.hookName).toBe('blocks.0.hook_resid_post');
    expect(sae.cfg.k).toBe(4);
  });

  it('trains an SAE and a transcoder on stories260K activations harvested from the corpus', async () => {
    const out = path.join(tmp, 'resid');
    const r = await sonde(
      'sae',
      'train',
      '--hook',
      'blocks.2.hook_resid_post',
      '--arch',
      'topk',
      '--top-k',
      '8',
      '--width',
      '256',
      '--n-tokens',
      '30000',
      '--out',
      out,
      '--json',
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as TrainDoc;
    expect(doc.dIn).toBe(64);
    expect(doc.eval.explainedVariance).toBeGreaterThan(0.5);
    // Measured on the last 150 of the 3002 stories, which the harvest never read; with CE loss recovered.
    expect(doc.eval.measuredOn).toMatch(/^held-out documents 2853-3002 of 3002 \(\d+ tokens\)$/);
    expect(doc.eval.heldOut).toBe(true);
    expect(doc.eval.ceLossRecovered).toBeGreaterThan(0.5);
    const split = loadSaeLens(out).cfg.metadata.training_split as { train: number; total: number };
    expect([split.train, split.total]).toEqual([2852, 3002]);
    const manifest = JSON.parse(fs.readFileSync(`${out}.activations/manifest.json`, 'utf8')) as {
      rows: number;
      hook: string;
    };
    expect(manifest.hook).toBe('blocks.2.hook_resid_post');
    expect(manifest.rows).toBe(30000);
    const tc = path.join(tmp, 'transcoder');
    const t = await sonde(
      'sae',
      'train',
      '--hook',
      'blocks.1.ln2.hook_normalized',
      '--hook-out',
      'blocks.1.hook_mlp_out',
      '--skip',
      '--width',
      '256',
      '--n-tokens',
      '20000',
      '--out',
      tc,
      '--json',
    );
    expect(t.code).toBe(0);
    const sae = loadSaeLens(tc);
    expect(sae.cfg.hookNameOut).toBe('blocks.1.hook_mlp_out');
    expect((JSON.parse(t.stdout) as TrainDoc).eval.explainedVariance).toBeGreaterThan(0.25);
  }, 240_000);

  it('refuses bad flags and reports NaN activations with the step', async () => {
    const both = await sonde(
      'sae',
      'train',
      '--synthetic',
      '--n-tokens',
      '10',
      '--epochs',
      '1',
      '--out',
      path.join(tmp, 'x'),
    );
    expect(both.code).toBe(1);
    expect(both.stderr).toMatch(/^sonde: give --n-tokens or --epochs, not both/);
    const arch = await sonde('sae', 'train', '--synthetic', '--arch', 'relu6', '--out', path.join(tmp, 'x'));
    expect(arch.code).toBe(1);
    expect(arch.stderr).toMatch(/--arch.*Expected one of standard, topk, batchtopk, jumprelu, gated/);
    const anneal = await sonde(
      'sae',
      'train',
      '--synthetic',
      '--arch',
      'topk',
      '--k-anneal',
      '2',
      '--out',
      path.join(tmp, 'x'),
    );
    expect(anneal.code).toBe(1);
    expect(anneal.stderr).toMatch(
      /^sonde: the k annealing fraction \(--k-anneal\) must be in \[0, 1\], got 2/,
    );
    const rows = new Float32Array(2048 * 8).map((_, i) => Math.sin(i));
    rows[300 * 8 + 2] = NaN;
    const file = path.join(tmp, 'nan.npy');
    writeNpy(file, rows, 2048, 8);
    const nan = await sonde(
      'sae',
      'train',
      '--activations',
      file,
      '--width',
      '16',
      '--n-tokens',
      '4096',
      '--batch-size',
      '64',
      '--out',
      path.join(tmp, 'nan'),
    );
    expect(nan.code).toBe(1);
    expect(nan.stderr).toMatch(/^sonde: .*(NaN|mean norm)/);
    expect(fs.existsSync(path.join(tmp, 'nan'))).toBe(false);
  });
});
