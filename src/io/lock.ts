// An inter-process lock: a file created exclusively, holding "pid host". A holder on this machine that
// has died is noticed at once (its pid is gone) and its lock taken over; one on another machine (a cache
// on a shared disk) is presumed dead when it stopped refreshing the file's mtime `staleMs` ago.
//
// Hand-written rather than proper-lockfile: that package installs SIGINT/SIGTERM listeners (signal-exit)
// when loaded, which makes a busy process ignore Ctrl-C until its synchronous work is done.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SondeError } from '../errors.js';
import { processAlive, readLockPid, trackLeftover } from './leftovers.js';

/** A lock held by another live process. */
export class LockedError extends SondeError {}

export interface Lock {
  release(): void;
}

export interface LockOptions {
  /** A holder on another host that has not refreshed the lock for this long is presumed dead. */
  staleMs?: number;
}

const DEFAULT_STALE_MS = 15_000;

/** Takes the lock at `lockPath`, or returns the pid holding it (a live process). */
function attempt(lockPath: string, staleMs: number): Lock | number {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  for (let tries = 0; tries < 5; tries++) {
    const forget = trackLeftover(lockPath);
    try {
      fs.writeFileSync(lockPath, `${process.pid} ${os.hostname()}\n`, { flag: 'wx' });
    } catch (e) {
      forget();
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const holder = readLockPid(lockPath);
      if (holder === null ? !olderThan(lockPath, 2000) : !isStale(lockPath, holder, staleMs))
        return holder ?? -1;
      // A dead holder, or an unreadable lock (an old proper-lockfile folder) not touched for a while:
      // take it over, unless another process gets there first.
      try {
        fs.renameSync(lockPath, `${lockPath}.stale-${process.pid}`);
        fs.rmSync(`${lockPath}.stale-${process.pid}`, { recursive: true, force: true });
      } catch {
        // taken over by someone else; look again
      }
      continue;
    }
    // Another host's waiter judges us by the mtime: refresh it while held.
    const timer = setInterval(() => {
      const now = new Date();
      fs.utimes(lockPath, now, now, () => {});
    }, staleMs / 3);
    timer.unref();
    return {
      release: () => {
        clearInterval(timer);
        if (readLockPid(lockPath) === process.pid) fs.rmSync(lockPath, { force: true });
        forget();
      },
    };
  }
  return readLockPid(lockPath) ?? -1;
}

function olderThan(p: string, ms: number): boolean {
  try {
    return Date.now() - fs.statSync(p).mtimeMs > ms;
  } catch {
    return true;
  }
}

function isStale(lockPath: string, pid: number, staleMs: number): boolean {
  let text: string;
  let mtime: number;
  try {
    text = fs.readFileSync(lockPath, 'utf8');
    mtime = fs.statSync(lockPath).mtimeMs;
  } catch {
    return true;
  }
  const host = text.trim().split(/\s+/)[1];
  if (host === undefined || host === os.hostname()) return !processAlive(pid);
  return Date.now() - mtime > staleMs;
}

/** Takes the lock now, or throws LockedError naming `what` and the holder. */
export function tryLock(lockPath: string, what: string, o: LockOptions = {}): Lock {
  const got = attempt(lockPath, o.staleMs ?? DEFAULT_STALE_MS);
  if (typeof got === 'number') {
    const pid = got > 0 ? `pid ${got}; ` : '';
    throw new LockedError(
      `${what} is in use by another sonde process (${pid}lock ${lockPath}): wait for it to finish or stop it`,
    );
  }
  return got;
}

/** Runs fn while holding the lock at lockPath, waiting (polling) for as long as a live holder keeps it. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>, o: LockOptions = {}): Promise<T> {
  let wait = 20;
  for (;;) {
    const got = attempt(lockPath, o.staleMs ?? DEFAULT_STALE_MS);
    if (typeof got !== 'number') {
      try {
        return await fn();
      } finally {
        got.release();
      }
    }
    await new Promise((r) => setTimeout(r, wait));
    wait = Math.min(500, wait * 1.5);
  }
}
