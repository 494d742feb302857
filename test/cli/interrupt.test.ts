// Ctrl-C and kill: real signals sent to real CLI processes. A signal stops sonde at once with 130/143,
// the re-run child dies with its launcher, and what is left on disk is a resumable checkpoint or
// nothing, never a complete-looking output. Timings are generous (a loaded 2-core machine).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../src/io/leftovers.js';
import { ROOT } from '../helpers/cli.js';
import { childrenOf, until } from '../helpers/processes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-interrupt-'));
const started: number[] = [];
afterAll(async () => {
  // A failed test may leave its run going: stop it (and its child) before removing its folder.
  for (const pid of started.flatMap((p) => [...sondeChildren(p), p])) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  await new Promise((r) => setTimeout(r, 300));
  fs.rmSync(tmp, { recursive: true, force: true });
});

/** A small synthetic SAE run that lasts minutes and checkpoints every 2 steps. */
const TRAIN = ['sae', 'train', '--synthetic', '--features', '64', '--dim', '32', '--width', '128'];
const TRAIN_FLAGS = ['--batch-size', '64', '--checkpoint-every', '2', '-q'];

interface Run {
  proc: ChildProcess;
  /** Exit code (128 + signal number when the process itself died of a signal), and seconds to exit. */
  done: Promise<{ code: number; stderr: string }>;
  stderr: () => string;
}

/** Starts `sonde ARGS` through the `sonde` binary (entry: main.ts, the launcher) or the CLI itself. */
function start(entry: 'main' | 'index', args: string[], env: NodeJS.ProcessEnv = {}): Run {
  // The launcher re-runs only when GLIBC_TUNABLES is unset (vitest.config.ts sets it for the workers).
  const inherited = { ...process.env };
  delete inherited.GLIBC_TUNABLES;
  delete inherited.SONDE_MALLOC;
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, `src/cli/${entry}.ts`), ...args], {
    cwd: ROOT,
    env: { ...inherited, NO_COLOR: '1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(proc.pid!);
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  proc.stdout!.resume();
  const done = new Promise<{ code: number; stderr: string }>((resolve) =>
    proc.on('exit', (code, signal) => resolve({ code: code ?? 128 + os.constants.signals[signal!], stderr })),
  );
  return { proc, done, stderr: () => stderr };
}

const waitFor = (cond: () => boolean, ms: number, what: string) => until(what, cond, ms, 100);

/** The sonde processes whose parent is `ppid` (tsx's esbuild service is not one). */
const sondeChildren = (ppid: number) =>
  childrenOf(ppid)
    .filter((c) => c.cmd.includes('src/cli/main.ts'))
    .map((c) => c.pid);

/** Everything in `dir` except the resumable checkpoint, which a signal is allowed to leave. */
function leftovers(dir: string): string[] {
  return fs.readdirSync(dir).filter((f) => !f.endsWith('.checkpoint'));
}

const linux = process.platform === 'linux';

describe('signals', () => {
  it('importing the library installs no signal listener', async () => {
    const before = ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
    await import('../../src/index.js');
    expect(['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s))).toEqual(before);
  });

  it.runIf(linux)(
    'SIGINT to the launcher: exit 130 within seconds, the child gone, a resumable checkpoint and nothing else',
    async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'int-'));
      const ownTmp = fs.mkdtempSync(path.join(tmp, 'tmpdir-'));
      const out = path.join(dir, 'X');
      const run = start('main', [...TRAIN, ...TRAIN_FLAGS, '--out', out], { TMPDIR: ownTmp });
      await waitFor(
        () => fs.existsSync(path.join(`${out}.checkpoint`, 'state.json')),
        90_000,
        'a checkpoint',
      );
      const kids = sondeChildren(run.proc.pid!);
      expect(kids).toHaveLength(1);
      const t0 = Date.now();
      run.proc.kill('SIGINT');
      const { code } = await run.done;
      expect(code).toBe(130);
      expect(Date.now() - t0).toBeLessThan(5000);
      await waitFor(() => !processAlive(kids[0]!), 3000, 'the child to die');
      // The checkpoint is whole and resumable; no output folder, temp, lock or journal is left.
      const state = JSON.parse(fs.readFileSync(path.join(`${out}.checkpoint`, 'state.json'), 'utf8')) as {
        step: number;
      };
      expect(state.step).toBeGreaterThanOrEqual(2);
      expect(leftovers(dir)).toEqual([]);
      expect(fs.readdirSync(ownTmp).filter((f) => f.startsWith('sonde-'))).toEqual([]);

      // Resuming with another --lr is refused, naming the setting; the same settings say where they resume.
      const again = start('main', [...TRAIN, ...TRAIN_FLAGS, '--lr', '0.001', '--out', out]);
      const r = await again.done;
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(/was made with other settings: --lr 0\.01 → 0\.001; .*--no-resume/);
      // The same settings resume, and say so before the first step (then this run is stopped too).
      const resumed = start('main', [...TRAIN, ...TRAIN_FLAGS.filter((f) => f !== '-q'), '--out', out]);
      await waitFor(() => /resumed from step \d+/.test(resumed.stderr()), 60_000, 'the resume note');
      expect(Number(/resumed from step (\d+)/.exec(resumed.stderr())![1])).toBe(state.step);
      resumed.proc.kill('SIGINT');
      expect((await resumed.done).code).toBe(130);
    },
    180_000,
  );

  it.runIf(linux)(
    'SIGTERM to a single process (no launcher) ends it at once with 143 and no output',
    async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'term-'));
      const out = path.join(dir, 'X');
      const run = start('index', [...TRAIN, ...TRAIN_FLAGS, '--out', out]);
      await waitFor(
        () => fs.existsSync(path.join(`${out}.checkpoint`, 'state.json')),
        90_000,
        'a checkpoint',
      );
      const t0 = Date.now();
      run.proc.kill('SIGTERM');
      const { code } = await run.done;
      expect(code).toBe(143);
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(fs.existsSync(out)).toBe(false);
    },
    180_000,
  );

  it.runIf(linux)(
    'the child dies with its launcher (SIGKILL: nothing forwarded)',
    async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'kill-'));
      const out = path.join(dir, 'X');
      const run = start('main', [...TRAIN, ...TRAIN_FLAGS, '--out', out]);
      await waitFor(
        () => fs.existsSync(path.join(`${out}.checkpoint`, 'state.json')),
        90_000,
        'a checkpoint',
      );
      const kids = sondeChildren(run.proc.pid!);
      expect(kids).toHaveLength(1);
      run.proc.kill('SIGKILL');
      await run.done;
      await waitFor(() => !processAlive(kids[0]!), 5000, 'the orphaned child to end');
      expect(fs.existsSync(out)).toBe(false);
    },
    180_000,
  );
});
