// The one check every command runs on the paths it will write (--out, --plot, --store, --db, ...), before
// it loads a model or computes anything: a bad location fails in a second with one line, not after the
// work, and leaves nothing behind. Writes themselves go through temp-then-rename (io/leftovers.ts).
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { tempSibling } from '../io/leftovers.js';
import { tryLock, type Lock } from '../io/lock.js';
import { PLOT_EXTENSIONS } from '../plot/vega.js';
import { toJson } from './common.js';

/** The --plot flag as commands declare it: `.option(PLOT_FLAG, 'what is drawn')`; the extension picks the format. */
export const PLOT_FLAG = '--plot <file.svg|png>';

export interface OutputSpec {
  /** The flag that named the path, for the message: '--out'. */
  flag: string;
  path: string;
  /** A file, or a folder Sonde fills. */
  kind: 'file' | 'dir';
  /** Allowed extensions of a file, with the dot: ['.svg']. */
  ext?: string[];
  /**
   * What an existing path means: 'force' (refused unless --force: a result, a plot included, is never
   * overwritten by surprise), 'reuse' (a store or checkpoint a run continues).
   */
  existing: 'force' | 'reuse';
}

/** Throws UsageError naming the flag when `spec.path` cannot be written as asked. */
export function checkOutput(spec: OutputSpec, force = false): void {
  const { flag, kind } = spec;
  const p = path.resolve(spec.path);
  if (spec.ext && !spec.ext.includes(path.extname(p).toLowerCase()))
    throw new UsageError(`${flag}: '${spec.path}' must end in ${spec.ext.join(' or ')}`);
  let st: fs.Stats | null = null;
  try {
    st = fs.statSync(p);
  } catch {
    // not there yet: the usual case
  }
  if (st) {
    if (kind === 'file' && st.isDirectory())
      throw new UsageError(`${flag}: '${spec.path}' is a folder; give a file name`);
    if (kind === 'dir' && !st.isDirectory())
      throw new UsageError(`${flag}: '${spec.path}' is a file; give a folder name`);
    if (spec.existing === 'force' && !force)
      throw new UsageError(`${flag}: '${spec.path}' already exists (add --force to overwrite it)`);
  }
  // The new entry is made beside `p` (temp, then rename), so its folder must exist and be writable.
  const parent = path.dirname(p);
  const ancestor = kind === 'dir' ? nearestExisting(parent) : parent;
  let pst: fs.Stats | null = null;
  try {
    pst = fs.statSync(ancestor);
  } catch {
    // reported below
  }
  if (!pst || !pst.isDirectory())
    throw new UsageError(`${flag}: folder '${path.dirname(spec.path)}' does not exist`);
  // A real attempt, not access(W_OK): that says yes to root on a read-only mount or special folder.
  try {
    fs.rmdirSync(fs.mkdtempSync(path.join(ancestor, '.sonde-write-check-')));
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? 'error';
    throw new UsageError(`${flag}: cannot write in '${ancestor}' (${why}: read-only or no permission)`);
  }
}

/** checkOutput over several paths; undefined paths (flags not given) are skipped. */
export function checkOutputs(specs: (OutputSpec | undefined | false)[], force = false): void {
  for (const s of specs) if (s && s.path !== undefined) checkOutput(s, force);
}

/** An --plot file: SVG or PNG by its extension; an existing one is replaced only with --force, as --out. */
export function plotOutput(file: string | undefined): OutputSpec | undefined {
  return file === undefined
    ? undefined
    : { flag: '--plot', path: file, kind: 'file', ext: [...PLOT_EXTENSIONS], existing: 'force' };
}

/** Checks an --plot file (when given) before the work; `force` is the global --force. */
export function checkPlotPath(file: string | undefined, force: boolean): void {
  const spec = plotOutput(file);
  if (spec) checkOutput(spec, force);
}

/**
 * Locks `dir` (a run's --out) against a second run into it: `dir.lock` beside it, held until the process
 * ends and removed even after a kill (a lock naming a dead process is taken over).
 */
export function lockOutput(flag: string, dir: string): Lock {
  const lock = tryLock(`${path.resolve(dir)}.lock`, `${flag} '${dir}'`);
  process.once('exit', () => lock.release());
  return lock;
}

function nearestExisting(dir: string): string {
  let d = dir;
  while (!fs.existsSync(d)) {
    const up = path.dirname(d);
    if (up === d) break;
    d = up;
  }
  return d;
}

/** An --out JSON file: refused when it exists unless --force. */
export function jsonOutput(file: string | undefined): OutputSpec | undefined {
  return file === undefined
    ? undefined
    : { flag: '--out', path: file, kind: 'file', ext: ['.json'], existing: 'force' };
}

/** Writes a result document as --out does: JSON as --json prints it, through a temp file then rename. */
export function writeJsonFile(file: string, doc: unknown): void {
  const tmp = tempSibling(file);
  fs.writeFileSync(tmp, toJson(doc) + '\n');
  fs.renameSync(tmp, file);
}
