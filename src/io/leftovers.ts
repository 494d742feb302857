// Paths a process creates on its way to a result (temp files and folders, locks) that must not outlive
// it. A busy Sonde process dies on SIGINT/SIGTERM without running any JavaScript (ORT calls are
// synchronous, and installing a JS handler would make the signal wait for the work to finish), so each
// such path is written to a journal in the temp folder *before* it is created. Whoever sees the process
// gone (the `sonde` launcher that started it, or the next sonde run) removes what its journal lists.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const PREFIX = 'sonde-leftovers-';

function journalOf(pid: number): string {
  return path.join(os.tmpdir(), `${PREFIX}${pid}`);
}

/** Tracked paths and when they were tracked. */
const tracked = new Map<string, number>();
let exitHook = false;

/** A path tracked this recently may not be created yet, so it is kept even when absent. */
const GRACE_MS = 60_000;

/** Rewrites the journal, first dropping paths that are gone (a temp renamed into place, a lock released). */
function rewrite(): void {
  const now = Date.now();
  for (const [p, at] of tracked) if (now - at > GRACE_MS && !fs.existsSync(p)) tracked.delete(p);
  const file = journalOf(process.pid);
  if (tracked.size === 0) fs.rmSync(file, { force: true });
  else {
    // Whole or not at all: a kill between truncating and writing the journal would lose every entry.
    fs.writeFileSync(`${file}.tmp`, [...tracked.keys()].join('\n') + '\n');
    fs.renameSync(`${file}.tmp`, file);
  }
}

/**
 * Records `p` (made absolute) as removable if this process dies; returns the function that forgets it
 * (once `p` has been renamed into place or removed; a path that is gone is also forgotten by itself).
 * Call it before creating `p`.
 */
export function trackLeftover(p: string): () => void {
  const abs = path.resolve(p);
  tracked.set(abs, Date.now());
  if (!exitHook) {
    // A process that ends normally has nothing in flight: its journal goes with it.
    exitHook = true;
    process.once('exit', () => {
      tracked.clear();
      fs.rmSync(journalOf(process.pid), { force: true });
    });
  }
  const save = () => {
    try {
      rewrite();
    } catch {
      // An unwritable temp folder only costs the cleanup after a kill.
    }
  };
  save();
  return () => {
    if (tracked.delete(abs)) save();
  };
}

/**
 * A unique sibling temp path for `target` (`target.tmp-PID-RANDOM`), tracked as a leftover: it is
 * removed if the process dies before renaming it into place (a renamed temp is simply no longer there).
 */
export function tempSibling(target: string): string {
  const tmp = `${path.resolve(target)}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  trackLeftover(tmp);
  return tmp;
}

/** Runs fn with `p` tracked as a leftover; `p` is removed if fn throws. */
export function withLeftover<T>(p: string, fn: () => T): T {
  const forget = trackLeftover(p);
  try {
    return fn();
  } catch (e) {
    fs.rmSync(p, { recursive: true, force: true });
    throw e;
  } finally {
    forget();
  }
}

/** Whether process `pid` is alive (on this machine). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes what the journal of dead process `pid` lists, and the journal. */
export function removeLeftoversOf(pid: number): void {
  const file = journalOf(pid);
  let lines: string[];
  try {
    lines = fs.readFileSync(file, 'utf8').split('\n');
  } catch {
    fs.rmSync(`${file}.tmp`, { force: true });
    return;
  }
  for (const p of new Set(lines.filter((l) => path.isAbsolute(l)))) {
    // A lock is removed only while it still names the dead process: a later run may have taken it over.
    if (p.endsWith(LOCK_SUFFIX) && readLockPid(p) !== pid) continue;
    fs.rmSync(p, { recursive: true, force: true });
  }
  fs.rmSync(file, { force: true });
  fs.rmSync(`${file}.tmp`, { force: true });
}

/** Cleans up after every dead Sonde process whose journal is still in the temp folder. */
export function removeStaleLeftovers(): void {
  let names: string[];
  try {
    names = fs.readdirSync(os.tmpdir());
  } catch {
    return;
  }
  for (const n of names) {
    if (!n.startsWith(PREFIX)) continue;
    const pid = Number(n.slice(PREFIX.length).replace(/\.tmp$/, ''));
    if (Number.isSafeInteger(pid) && pid > 0 && pid !== process.pid && !processAlive(pid)) {
      try {
        removeLeftoversOf(pid);
      } catch {
        // someone else is cleaning up the same journal
      }
    }
  }
}

/** Lock files end in this (see io/lock.ts); their first line is the holder's pid. */
export const LOCK_SUFFIX = '.lock';

export function readLockPid(lockPath: string): number | null {
  try {
    const pid = Number(fs.readFileSync(lockPath, 'utf8').split(/\s/)[0]);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : null;
  } catch {
    return null;
  }
}
