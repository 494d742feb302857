import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { checkPlotPath } from '../../src/cli/output.js';
import { histogramSpec } from '../../src/plot/histogram.js';
import { plotFormat, renderSvg, writePlot, type TopLevelSpec } from '../../src/plot/vega.js';

const spec = histogramSpec({
  title: 'Counts',
  subtitle: 'three bins',
  edges: [0, 1, 2, 3],
  counts: [3, 5, 2],
  xTitle: 'x',
  yTitle: 'texts',
});

describe('writePlot', () => {
  it('writes SVG or PNG by the extension (before: PNG was refused)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-plot-'));
    await writePlot(path.join(dir, 'h.svg'), spec);
    await writePlot(path.join(dir, 'h.PNG'), spec);
    expect(fs.readFileSync(path.join(dir, 'h.svg'), 'utf8')).toMatch(/^<svg[^>]*width="\d+"/);
    const png = fs.readFileSync(path.join(dir, 'h.PNG'));
    expect(png.subarray(0, 8)).toEqual(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]));
    // Drawn at twice the SVG's size (IHDR width and height, big-endian, at bytes 16 and 20).
    const svgWidth = Number(/width="(\d+)"/.exec(fs.readFileSync(path.join(dir, 'h.svg'), 'utf8'))![1]);
    expect(png.readUInt32BE(16)).toBe(2 * svgWidth);
    expect(fs.readdirSync(dir).sort()).toEqual(['h.PNG', 'h.svg']);
    expect([plotFormat('a.svg'), plotFormat('a.png'), plotFormat('a.jpg')]).toEqual(['svg', 'png', null]);
    await expect(writePlot(path.join(dir, 'h.jpg'), spec)).rejects.toThrow(/must end in .svg or .png/);
  });

  it('never cuts legend labels to an ellipsis (before: "control (random la…")', async () => {
    const long = 'control (random labels), a long legend entry';
    const svg = await renderSvg({
      $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
      data: { values: [{ x: 0, y: 1, s: long }] },
      mark: 'point',
      encoding: {
        x: { field: 'x', type: 'quantitative' },
        y: { field: 'y', type: 'quantitative' },
        color: { field: 's', type: 'nominal' },
      },
    } as TopLevelSpec);
    expect(svg).toContain(`>${long}</text>`);
    expect(svg).not.toContain('…');
  });

  it('--plot paths are checked before any work: the extension and the folder', () => {
    expect(() => checkPlotPath('x.jpg', false)).toThrow("--plot: 'x.jpg' must end in .svg or .png");
    expect(() => checkPlotPath('/no/such/dir/x.png', false)).toThrow(
      "--plot: folder '/no/such/dir' does not exist",
    );
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-plot-'));
    expect(() => checkPlotPath(path.join(dir, 'x.png'), false)).not.toThrow();
    fs.rmSync(dir, { recursive: true });
  });
});
