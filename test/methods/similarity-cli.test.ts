// `sonde compare` end to end.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { sonde } from '../helpers/cli.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-cli-compare-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const clean = (s: string) => s.replace(/npm warn.*\n/g, '');

describe('sonde compare', () => {
  it('--json CKA matrix with a heatmap; --method is checked', async () => {
    const plot = path.join(tmp, 'cka.svg');
    const r = await sonde(
      '--json',
      'compare',
      '--model-b',
      'test/fixtures/induction-2l',
      '--texts',
      '4',
      '--plot',
      plot,
    );
    expect(clean(r.stderr)).toBe('');
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout) as {
      method: string;
      rows: string[];
      columns: string[];
      values: number[][];
    };
    expect(j.method).toBe('cka');
    expect(j.rows).toHaveLength(6);
    expect(j.columns).toEqual([
      'blocks.0.hook_resid_pre',
      'blocks.1.hook_resid_pre',
      'blocks.1.hook_resid_post',
    ]);
    for (const v of j.values.flat()) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThanOrEqual(1);
    }
    expect(fs.readFileSync(plot, 'utf8')).toContain('<svg');
    const bad = await sonde('compare', '--method', 'pca');
    expect(bad.code).toBe(1);
    expect(clean(bad.stderr)).toMatch(/^sonde: --method must be cka or svcca/);
  });
});
