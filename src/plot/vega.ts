import fs from 'node:fs';
import path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';
import { tempSibling } from '../io/leftovers.js';

/** The picture formats a plot file can have, chosen by its extension. */
export const PLOT_EXTENSIONS = ['.svg', '.png'] as const;
export type PlotFormat = 'svg' | 'png';

/** The format a plot file's extension names, or null when it names neither. */
export function plotFormat(file: string): PlotFormat | null {
  const ext = path.extname(file).toLowerCase();
  return ext === '.svg' ? 'svg' : ext === '.png' ? 'png' : null;
}

/**
 * Defaults every plot shares: legends and titles are never cut to an ellipsis (Vega-Lite cuts legend
 * labels at 160 px, which turned 'control (random labels)' into 'control (random la…').
 */
const CONFIG = { legend: { labelLimit: 0, titleLimit: 0 }, title: { limit: 0, subtitleFontSize: 12 } };

/**
 * Renders a Vega-Lite spec to SVG text (headless: no browser or canvas needed). Vega is loaded here, not
 * at startup: importing it costs about 0.3 s of CPU, and most commands draw nothing.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const config = {
    ...spec.config,
    legend: { ...CONFIG.legend, ...spec.config?.legend },
    title: { ...CONFIG.title, ...spec.config?.title },
  };
  const view = new vega.View(vega.parse(compile({ ...spec, config } as TopLevelSpec).spec), {
    renderer: 'none',
  });
  return view.toSVG();
}

/**
 * Renders a Vega-Lite spec to PNG bytes: the SVG rasterised by resvg (prebuilt native binaries, no
 * canvas or browser), at `scale` pixels per SVG unit on a white background, text in the system's fonts.
 */
export async function renderPng(spec: TopLevelSpec, scale = 2): Promise<Buffer> {
  const svg = await renderSvg(spec);
  const { Resvg } = await import('@resvg/resvg-js');
  const resvg = new Resvg(svg, {
    fitTo: { mode: 'zoom', value: scale },
    background: 'white',
    font: { loadSystemFonts: true, defaultFontFamily: 'DejaVu Sans', sansSerifFamily: 'DejaVu Sans' },
  });
  return resvg.render().asPng();
}

/** Writes a Vega-Lite spec as SVG or PNG, by the file's extension, atomically. */
export async function writePlot(file: string, spec: TopLevelSpec): Promise<void> {
  const format = plotFormat(file);
  if (!format) throw new Error(`plot file '${file}' must end in ${PLOT_EXTENSIONS.join(' or ')}`);
  const bytes = format === 'svg' ? await renderSvg(spec) : await renderPng(spec);
  const tmp = tempSibling(file);
  fs.writeFileSync(tmp, bytes);
  fs.renameSync(tmp, file);
}

export type { TopLevelSpec };
