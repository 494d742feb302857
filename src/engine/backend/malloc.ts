import { spawnSync } from 'node:child_process';

/**
 * glibc malloc settings for tensor work. Every eager op returns a fresh JS buffer, and on the VMs we
 * measured each first touch of a 4 KiB page costs 5-8 us, so a 48 MB elementwise op spent 160 ms in
 * page faults. Transparent huge pages for malloc'd memory (hugetlb=1) and keeping freed chunks up to
 * 32 MB in the heap (instead of unmapping them) made it 30x faster and the eager forward 4x faster
 * (BENCHMARKS.md). glibc reads these only at process start.
 */
export const SONDE_GLIBC_TUNABLES =
  'glibc.malloc.hugetlb=1:glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=1073741824:glibc.malloc.top_pad=67108864';

/**
 * On Linux, when GLIBC_TUNABLES is unset, runs this same command again with Sonde's settings and
 * returns its exit code; returns null when the current process should do the work itself.
 * SONDE_MALLOC=default opts out.
 */
export function rerunWithTunedMalloc(): number | null {
  if (
    process.platform !== 'linux' ||
    process.env.GLIBC_TUNABLES !== undefined ||
    process.env.SONDE_MALLOC === 'default'
  ) {
    return null;
  }
  const r = spawnSync(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, GLIBC_TUNABLES: SONDE_GLIBC_TUNABLES },
  });
  if (r.error) return null; // could not re-run: carry on with default malloc
  return r.status ?? (r.signal ? 128 : 1);
}
