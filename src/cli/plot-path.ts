// The --plot flag every command shares: the file's extension picks the format (.svg or .png), and the
// path is checked before any work so a typo does not cost a long run.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { PLOT_EXTENSIONS, plotFormat } from '../plot/vega.js';

/** The flag as commands declare it: `.option(PLOT_FLAG, 'what is drawn')`. */
export const PLOT_FLAG = '--plot <file.svg|png>';

/** --plot must name an .svg or .png file in an existing folder. */
export function checkPlotPath(file: string): void {
  if (!plotFormat(file))
    throw new UsageError(`--plot: '${file}' must end in ${PLOT_EXTENSIONS.join(' or ')}`);
  const dir = path.dirname(path.resolve(file));
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new UsageError(`--plot: folder '${path.dirname(file)}' does not exist`);
}
