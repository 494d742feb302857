import fs from 'node:fs';
import path from 'node:path';
import * as vega from 'vega';
import { compile, type TopLevelSpec } from 'vega-lite';
import { tempSibling } from '../io/leftovers.js';

/** Renders a Vega-Lite spec to SVG text (headless: no browser or canvas needed). */
export async function renderSvg(spec: TopLevelSpec): Promise<string> {
  const view = new vega.View(vega.parse(compile(spec).spec), { renderer: 'none' });
  return view.toSVG();
}

/** Writes a Vega-Lite spec as SVG (the only format supported without native canvas), atomically. */
export async function writePlot(file: string, spec: TopLevelSpec): Promise<void> {
  if (path.extname(file).toLowerCase() !== '.svg') {
    throw new Error(`plot file '${file}' must end in .svg`);
  }
  const svg = await renderSvg(spec);
  const tmp = tempSibling(file);
  fs.writeFileSync(tmp, svg);
  fs.renameSync(tmp, file);
}

export type { TopLevelSpec };
