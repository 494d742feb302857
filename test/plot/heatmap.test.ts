import { describe, expect, it } from 'vitest';
import * as vega from 'vega';
import { compile } from 'vega-lite';
import { heatmapSpec } from '../../src/cli/commands/patch.js';
import type { PatchingResult } from '../../src/methods/patching.js';
import { symmetricDomain } from '../../src/plot/heatmap.js';
import type { TopLevelSpec } from '../../src/plot/vega.js';

/** The colour a spec's 'color' scale gives each value, as [r, g, b]. */
async function colours(spec: TopLevelSpec, values: number[]): Promise<number[][]> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  await view.runAsync();
  const scale = view.scale('color') as (v: number) => string;
  return values.map((v) => {
    const c = scale(v);
    const m = /rgb\((\d+), ?(\d+), ?(\d+)\)/.exec(c) ?? [];
    if (m.length) return m.slice(1, 4).map(Number);
    const hex = /^#(..)(..)(..)$/.exec(c)!;
    return hex.slice(1, 4).map((h) => parseInt(h, 16));
  });
}

describe('diverging heatmaps', () => {
  it('symmetricDomain: ±max |value|, at least the floor', () => {
    expect(symmetricDomain([[-0.003, 1]], 1)).toEqual([-1, 1]);
    expect(symmetricDomain([[-0.003, 0.2]])).toEqual([-0.2, 0.2]);
    expect(symmetricDomain([[-1.5, 0.2, NaN]], 1)).toEqual([-1.5, 1.5]);
    expect(symmetricDomain([[0, 0]])).toEqual([-1, 1]);
  });

  it('a small negative patching value is drawn pale, not as dark as +1 (before: the scale used the data extremes)', async () => {
    const r = { direction: 'denoise', target: 'resid_pre' } as PatchingResult;
    const values = [
      [0, 1],
      [-0.05, 0.5],
    ];
    const spec = heatmapSpec(r, ['L0', 'L1'], ['0', '1'], values);
    const [neg, pos, zero] = await colours(spec, [-0.05, 1, 0]);
    // -0.05 is within a few shades of white; +1 is the darkest red; 0 is the midpoint.
    expect(Math.min(...neg!)).toBeGreaterThan(200);
    expect(pos![0]! - pos![2]!).toBeGreaterThan(80);
    expect(Math.min(...zero!)).toBeGreaterThan(230);
  });
});
