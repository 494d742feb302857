// Inter-process lock around one blob's download, with proper-lockfile (an atomic mkdir whose mtime the
// holder refreshes; a lock not refreshed for STALE_MS, left by a killed process, is taken over).
//
// Why not Python's `.locks/models--org--name/{etag}.lock`: huggingface_hub flock()s that path as a
// regular file and leaves it behind, and Node has no flock, so sharing the name would make each side
// trip over the other's kind of lock. Sonde's lock is `{etag}.sonde.lock` beside it. Correctness never
// rests on the lock alone: bytes are verified before the atomic rename into blobs/.
import fs from 'node:fs';
import path from 'node:path';

/** A holder that stopped refreshing its lock this long ago is presumed dead. */
const STALE_MS = 15_000;

/** Runs fn while holding the lock at lockPath, waiting (polling) for as long as a live holder keeps it. */
export async function withLock<T>(lockPath: string, fn: () => Promise<T>): Promise<T> {
  fs.mkdirSync(path.dirname(lockPath), { recursive: true });
  // Imported here: it patches fs through graceful-fs, startup time that commands using no download skip.
  const { default: lockfile } = await import('proper-lockfile');
  const release = await lockfile.lock(lockPath, {
    lockfilePath: lockPath,
    realpath: false,
    stale: STALE_MS,
    retries: { forever: true, minTimeout: 20, maxTimeout: 500, factor: 1.5 },
    // A lock lost to a frozen process is not fatal: the download is verified and renamed atomically.
    onCompromised: () => {},
  });
  try {
    return await fn();
  } finally {
    await release().catch(() => {});
  }
}
