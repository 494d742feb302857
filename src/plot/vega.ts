import fs from 'node:fs';
import path from 'node:path';
import type { TopLevelSpec } from 'vega-lite';

/**
 * Renders a Vega-Lite spec to SVG text (headless: no browser or canvas needed). Vega is loaded here, not
 * at startup: importing it costs about 0.3 s of CPU, and most commands draw nothing.
 */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const [vega, { compile }] = await Promise.all([import('vega'), import('vega-lite')]);
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** Writes a Vega-Lite spec as SVG (the only format supported without native canvas), atomically. */
export async function writePlot(file: string, spec: TopLevelSpec): Promise<void> {
  if (path.extname(file).toLowerCase() !== '.svg') {
    throw new Error(`plot file '${file}' must end in .svg`);
  }
  const svg = await renderSvg(spec);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, svg);
  fs.renameSync(tmp, file);
}

export type { TopLevelSpec };
