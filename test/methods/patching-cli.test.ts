// `sonde patch` end to end: JSON, the SVG heatmap, and one-line errors.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sonde } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-cli-patch-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const PAIR = [
  '--clean',
  'Once upon a time, there was a little girl named Lily. One day,',
  '--corrupt',
  'Once upon a time, there was a little girl named Tim. One day,',
  '--answer',
  'Lily',
  '--wrong',
  'Tim',
];

describe('sonde patch', () => {
  it('--json and --plot: a layer x position grid and an SVG heatmap with token labels', async () => {
    const plot = path.join(tmp, 'patch.svg');
    const r = await sonde('--json', 'patch', ...PAIR, '--plot', plot);
    expect(r.stderr.replace(/npm warn.*\n/g, '')).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      target: string;
      values: number[][][];
      matrix: { rows: string[]; columns: string[]; values: number[][] };
      cleanMetric: number;
      corruptMetric: number;
    };
    expect(doc.target).toBe('resid_pre');
    expect(doc.matrix.rows).toEqual(['L0', 'L1', 'L2', 'L3', 'L4']);
    expect(doc.matrix.columns[14]).toBe('14 " Lily"/" Tim"');
    expect(doc.matrix.values[0]![14]).toBeCloseTo(1, 5);
    const svg = fs.readFileSync(plot, 'utf8');
    expect(svg).toContain('<svg');
    expect(svg).toContain('Lily');
  });

  it('a table of layer x head for --component z --direction noise', async () => {
    const r = await sonde('patch', ...PAIR, '--component', 'z', '--direction', 'noise');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Activation patching (noise, z, all positions)');
    expect(r.stdout).toMatch(/layer\s+H0\s+H1/);
    expect(r.stdout).toMatch(/^L4\s/m);
  });

  it('one-line errors: lengths, multi-token answers, unknown targets', async () => {
    const lengths = await sonde(
      'patch',
      ...PAIR.slice(0, 3),
      'Once upon a time, a girl named Mia.',
      ...PAIR.slice(4),
    );
    expect(lengths.code).toBe(1);
    expect(lengths.stderr).toMatch(
      /sonde: clean and corrupt prompts must have the same number of tokens: clean has 19/,
    );
    const answer = await sonde('patch', ...PAIR.slice(0, 5), 'Mia', ...PAIR.slice(6));
    expect(answer.stderr).toContain('sonde: answer "Mia" is 3 tokens, not one');
    const target = await sonde('patch', ...PAIR, '--component', 'resid_mid');
    expect(target.code).toBe(1);
    expect(target.stderr).toContain("sonde: unknown patching target 'resid_mid'; use one of resid_pre");
  });
});
