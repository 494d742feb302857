// Waiting on conditions and finding child processes, for tests that send signals and watch workers.
import fs from 'node:fs';

/** Resolves once `cond()` holds, polling every `every` ms; throws after `ms`, naming `what`. */
export async function until(what: string, cond: () => boolean, ms = 60_000, every = 50): Promise<void> {
  const t0 = Date.now();
  while (!cond()) {
    if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** The processes whose parent is `ppid`, with their command lines (Linux /proc). */
export function childrenOf(ppid: number): { pid: number; cmd: string }[] {
  const kids: { pid: number; cmd: string }[] = [];
  for (const d of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${d}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) !== ppid) continue;
      kids.push({ pid: Number(d), cmd: fs.readFileSync(`/proc/${d}/cmdline`, 'utf8').replace(/\0/g, ' ') });
    } catch {
      // gone
    }
  }
  return kids;
}
