// End-to-end: `sonde train induction` (a few steps), then `sonde heads` on the saved model.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sonde } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-cli-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

describe('sonde train induction / sonde heads', () => {
  it('trains, saves an HF folder, plots, and the folder works with other commands', async () => {
    const out = path.join(tmp, 'ind');
    const plot = path.join(tmp, 'phase.svg');
    const r = await sonde(
      'train',
      'induction',
      '--steps',
      '40',
      '--d-model',
      '32',
      '--ctx',
      '64',
      '--batch-size',
      '4',
      '--out',
      out,
      '--plot',
      plot,
      '--json',
    );
    expect(r.code, r.stderr).toBe(0);
    const j = JSON.parse(r.stdout) as {
      steps: number;
      history: unknown[];
      induction: number[][];
      lossFirstRepeat: number;
    };
    expect(j.steps).toBe(40);
    expect(j.induction).toHaveLength(2);
    expect(j.history.length).toBeGreaterThan(0);
    expect(fs.readFileSync(plot, 'utf8')).toMatch(/^<svg/);
    for (const f of ['config.json', 'model.safetensors', 'tok512.bin'])
      expect(fs.existsSync(path.join(out, f)), f).toBe(true);
    expect(fs.existsSync(`${out}.checkpoint`)).toBe(false);
    const headsPlot = path.join(tmp, 'heads.svg');
    const heads = await sonde('--model', out, 'heads', '--json', '--plot', headsPlot);
    expect(fs.readFileSync(headsPlot, 'utf8')).toMatch(/^<svg/);
    expect(heads.code, heads.stderr).toBe(0);
    const h = JSON.parse(heads.stdout) as { previousToken: number[][]; induction: number[][] };
    expect(h.previousToken).toHaveLength(2);
    expect(h.previousToken[0]).toHaveLength(4);
    const run = await sonde('--model', out, 'run', '--prompt', 'Once upon a time', '--json');
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout).loss).toBeGreaterThan(0);
  });

  it('rejects bad settings in one line', async () => {
    const bad = await sonde('train', 'induction', '--steps', '0');
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    const noData = await sonde(
      'train',
      'induction',
      '--steps',
      '5',
      '--data',
      path.join(tmp, 'missing.txt'),
      '--out',
      path.join(tmp, 'x'),
    );
    expect(noData.code).toBe(1);
    expect(noData.stderr).toMatch(/missing\.txt/);
  });

  it('scores the heads of the built-in model', async () => {
    const r = await sonde('heads', '--json');
    expect(r.code, r.stderr).toBe(0);
    const h = JSON.parse(r.stdout) as {
      previousToken: number[][];
      previousTokenHeads: { layer: number; head: number }[];
    };
    expect(h.previousToken).toHaveLength(5);
    // stories260K has strong previous-token heads (measured: L1H3 0.65, L3H6 0.76).
    expect(h.previousTokenHeads.length).toBeGreaterThan(0);
  });
});
