import { spawn } from 'node:child_process';
import os from 'node:os';
import { Worker } from 'node:worker_threads';

/**
 * glibc malloc settings for tensor work. Every eager op returns a fresh JS buffer, and on the VMs we
 * measured each first touch of a 4 KiB page costs 5-8 us, so a 48 MB elementwise op spent 160 ms in
 * page faults. Transparent huge pages for malloc'd memory (hugetlb=1) and keeping freed chunks up to
 * 32 MB in the heap (instead of unmapping them) made it 30x faster and the eager forward 4x faster
 * (BENCHMARKS.md). glibc reads these only at process start.
 */
export const SONDE_GLIBC_TUNABLES =
  'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=67108864';

/** Set in the re-run child: the launcher's pid, whose death the child follows. */
const LAUNCHER_ENV = 'SONDE_LAUNCHER_PID';

const FORWARDED = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * On Linux, when GLIBC_TUNABLES is unset, runs this same command again with Sonde's settings and
 * resolves to its exit code (128 + the signal number when a signal ended it, as a shell reports it);
 * resolves to null when the current process should do the work itself. SONDE_MALLOC=default opts out.
 *
 * The launcher forwards SIGINT, SIGTERM and SIGHUP to the child, waits for it, and removes what the
 * child had in flight (`afterChild`, given the child's pid: the CLI removes its leftovers there); the
 * child ends itself when the launcher dies (followLauncher).
 */
export async function rerunWithTunedMalloc(afterChild?: (pid: number) => void): Promise<number | null> {
  if (
    process.platform !== 'linux' ||
    process.env.GLIBC_TUNABLES !== undefined ||
    process.env.SONDE_MALLOC === 'default'
  ) {
    followLauncher();
    return null;
  }
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, GLIBC_TUNABLES: SONDE_GLIBC_TUNABLES, [LAUNCHER_ENV]: String(process.pid) },
  });
  const forward = (sig: NodeJS.Signals) => child.kill(sig);
  for (const sig of FORWARDED) process.on(sig, forward);
  const ended = await new Promise<{ code: number | null; signal: NodeJS.Signals | null } | null>(
    (resolve) => {
      child.once('error', () => resolve(null));
      child.once('exit', (code, signal) => resolve({ code, signal }));
    },
  );
  for (const sig of FORWARDED) process.off(sig, forward);
  if (ended === null) return null; // could not re-run: carry on with default malloc
  if (child.pid !== undefined) afterChild?.(child.pid);
  if (ended.signal) return 128 + (os.constants.signals[ended.signal] ?? 0);
  return ended.code ?? 1;
}

/**
 * In a child started by rerunWithTunedMalloc: ends this process (SIGTERM) within a second of the
 * launcher's death, even while the main thread is busy in a synchronous op, from a worker thread.
 */
function followLauncher(): void {
  const launcher = Number(process.env[LAUNCHER_ENV]);
  if (!Number.isSafeInteger(launcher) || launcher !== process.ppid) return;
  const watchdog = new Worker(
    `const { workerData } = require('node:worker_threads');
     setInterval(() => { if (process.ppid !== workerData) process.kill(process.pid, 'SIGTERM'); }, 200);`,
    { eval: true, workerData: launcher },
  );
  watchdog.unref();
}
