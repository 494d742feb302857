// `sonde tuned-lens train` / `eval` end to end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sonde } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-cli-tuned-lens-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const clean = (s: string) => s.replace(/npm warn.*\n/g, '');

describe('sonde tuned-lens', () => {
  it('train then eval: JSON KL per layer, tuned below logit, and an SVG line chart', async () => {
    const dir = path.join(tmp, 'lens');
    const t = await sonde('--json', 'tuned-lens', 'train', '--out', dir, '--steps', '60');
    expect(clean(t.stderr)).toBe('');
    expect(t.code).toBe(0);
    const tj = JSON.parse(t.stdout) as { steps: number; logit: number[]; tuned: number[] };
    expect(tj.steps).toBe(60);
    expect(tj.tuned).toHaveLength(5);
    expect(fs.existsSync(path.join(dir, 'tuned-lens.safetensors'))).toBe(true);

    const plot = path.join(tmp, 'kl.svg');
    const e = await sonde('--json', 'tuned-lens', 'eval', '--lens', dir, '--windows', '8', '--plot', plot);
    expect(clean(e.stderr)).toBe('');
    expect(e.code).toBe(0);
    const ej = JSON.parse(e.stdout) as {
      layers: string[];
      logit: number[];
      tuned: number[];
      positions: number;
    };
    expect(ej.layers[0]).toBe('blocks.0.hook_resid_pre');
    expect(ej.positions).toBe(8 * 128);
    ej.tuned.forEach((x, l) => expect(x).toBeLessThan(ej.logit[l]!));
    expect(fs.readFileSync(plot, 'utf8')).toContain('<svg');

    const txt = await sonde('tuned-lens', 'eval', '--lens', dir, '--windows', '2');
    expect(txt.code).toBe(0);
    expect(txt.stdout).toContain('tuned lens KL');
    const bad = await sonde('tuned-lens', 'eval', '--lens', tmp);
    expect(bad.code).toBe(1);
    expect(clean(bad.stderr)).toMatch(/^sonde: .*not a tuned lens/);
  });
});
