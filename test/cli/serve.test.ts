// `sonde serve` as a user starts it: the real CLI in a child process, its printed address, its refusals,
// and Ctrl-C/kill stopping it (and its job workers) with the exit codes every command uses.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../src/io/leftovers.js';
import { ROOT, sonde } from '../helpers/cli.js';
import { childrenOf, until } from '../helpers/processes.js';

const started: ChildProcess[] = [];
afterAll(() => {
  for (const p of started) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
});

interface Server {
  proc: ChildProcess;
  /** The first line on stdout. */
  first: string;
  stderr: () => string;
  /** Exit code (128 + signal number when a signal ended it, as a shell reports it). */
  done: Promise<number>;
}

/** Starts `sonde ARGS` (entry index.ts: one process; main.ts: the launcher and its re-run child). */
async function serve(args: string[], entry: 'index' | 'main' = 'index'): Promise<Server> {
  const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
  if (entry === 'main') delete env.GLIBC_TUNABLES; // the launcher re-runs only then
  const proc = spawn(process.execPath, ['--import', 'tsx', path.join(ROOT, `src/cli/${entry}.ts`), ...args], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  started.push(proc);
  let stdout = '';
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<number>((resolve) =>
    proc.on('exit', (code, signal) => resolve(code ?? 128 + os.constants.signals[signal!])),
  );
  const first = await new Promise<string>((resolve, reject) => {
    proc.stdout!.on('data', (d: Buffer) => {
      stdout += d.toString();
      if (stdout.includes('\n')) resolve(stdout.split('\n')[0]!);
    });
    void done.then((code) => reject(new Error(`exited ${code}: ${stderr}`)));
  });
  return { proc, first, stderr: () => stderr, done };
}

const addressOf = (line: string) => /^Sonde explorer: (http:\/\/127\.0\.0\.1:\d+\/)$/.exec(line)?.[1];

const jobWorkers = (pid: number) => childrenOf(pid).filter((c) => c.cmd.includes('jobs/worker'));

/** A patching sweep that runs for about a minute (every layer × position of a long prompt). */
async function startLongJob(url: string): Promise<void> {
  const story = 'Once upon a time, there was a little girl named Lily. She loved to play outside. ';
  const params = {
    clean: story.repeat(6),
    corrupt: story.replace('Lily', 'Tim').repeat(6),
    answer: ' Lily',
    wrong: ' Tim',
  };
  const r = await fetch(`${url}api/jobs`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ kind: 'patching', params }),
  });
  expect(r.status).toBe(202);
}

const linux = process.platform === 'linux';

describe('sonde serve', () => {
  it('prints its address, answers /api/info, and stops on Ctrl-C with 130', async () => {
    const s = await serve(['serve', '--port', '0']);
    const url = addressOf(s.first);
    expect(url, s.first).toBeDefined();
    const info = (await (await fetch(`${url}api/info`)).json()) as {
      models: { id: string }[];
      auth: boolean;
    };
    expect(info.models.map((m) => m.id)).toEqual(['stories260K']);
    expect(info.auth).toBe(false);
    const t0 = Date.now();
    s.proc.kill('SIGINT');
    expect(await s.done).toBe(130);
    expect(Date.now() - t0).toBeLessThan(2000);
  });

  it.runIf(linux)(
    '--json: one line {url, token, models, saes}; several models and SAEs open and paired; SIGTERM kills the job workers, 143',
    async () => {
      const s = await serve([
        '--json',
        '--model',
        'stories260K',
        '--model',
        'test/fixtures/induction-2l',
        'serve',
        '--port',
        '0',
        '--sae',
        'test/fixtures/sae/topk',
        '--sae',
        'test/fixtures/sae/gated',
        'test/fixtures/sae/standard-legacy',
      ]);
      const line = JSON.parse(s.first) as {
        url: string;
        token: string | null;
        models: string[];
        saes: string[];
      };
      expect(Object.keys(line)).toEqual(['url', 'token', 'models', 'saes']);
      expect(line.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
      expect(line.token).toBeNull();
      expect(line.models).toEqual(['stories260K', 'induction-2l']);
      expect(line.saes).toEqual(['topk', 'gated', 'standard-legacy']);
      const info = (await (await fetch(`${line.url}api/info`)).json()) as {
        saes: { id: string; modelId: string; warning: string | null }[];
      };
      // Their cfg.json names tiny-stories-1M, which is not open: the first model, with the reason why.
      for (const sae of info.saes) {
        expect(sae.modelId).toBe('stories260K');
        expect(sae.warning).toMatch(/names model 'tiny-stories-1M'/);
      }
      // The warnings go to stderr; stdout holds the one line.
      expect(s.stderr()).toMatch(/sonde: warning: SAE topk: /);

      await startLongJob(line.url);
      await until('a job worker', () => jobWorkers(s.proc.pid!).length === 1);
      const [worker] = jobWorkers(s.proc.pid!);
      const t0 = Date.now();
      s.proc.kill('SIGTERM');
      expect(await s.done).toBe(143);
      expect(Date.now() - t0).toBeLessThan(2000);
      await until('the job worker to end', () => !processAlive(worker!.pid), 2000);
    },
  );

  it.runIf(linux)('Ctrl-C while an SAE trains: 130, and the half-made SAE folder is removed', async () => {
    const tmp = os.tmpdir();
    const ours = () => fs.readdirSync(tmp).filter((f) => f.startsWith('sonde-serve-sae-') && !before.has(f));
    const before = new Set(fs.readdirSync(tmp));
    const s = await serve(['serve', '--port', '0']);
    const url = addressOf(s.first)!;
    const r = await fetch(`${url}api/jobs`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        kind: 'sae-train',
        params: { hook: 'blocks.1.hook_resid_post', nTokens: 1 << 20 },
      }),
    });
    expect(r.status).toBe(202);
    await until('the job to make its folder', () => ours().length === 1, 60_000);
    const t0 = Date.now();
    s.proc.kill('SIGINT');
    expect(await s.done).toBe(130);
    expect(Date.now() - t0).toBeLessThan(2000);
    expect(ours()).toEqual([]);
  });

  it.runIf(linux)(
    'Ctrl-C through the `sonde` launcher: 130, the server and its job worker gone',
    async () => {
      const s = await serve(['serve', '--port', '0'], 'main');
      const url = addressOf(s.first)!;
      const [server] = childrenOf(s.proc.pid!).filter((c) => c.cmd.includes('src/cli/main.ts'));
      expect(server).toBeDefined();
      await startLongJob(url);
      await until('a job worker', () => jobWorkers(server!.pid).length === 1);
      const [worker] = jobWorkers(server!.pid);
      s.proc.kill('SIGINT');
      expect(await s.done).toBe(130);
      await until(
        'the server and its worker to end',
        () => !processAlive(server!.pid) && !processAlive(worker!.pid),
        3000,
      );
    },
  );

  it('--host 0.0.0.0 prints an address with a token and refuses calls without it', async () => {
    const s = await serve(['serve', '--port', '0', '--host', '0.0.0.0']);
    const m = /^Sonde explorer: (http:\/\/(?:localhost|127\.0\.0\.1):(\d+)\/)\?token=([\w-]{20,})$/.exec(
      s.first,
    );
    expect(m, s.first).not.toBeNull();
    const [, , port, token] = m!;
    const base = `http://127.0.0.1:${port}`;
    const none = await fetch(`${base}/api/info`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { error: { message: string } }).error.message).toMatch(/needs its token/);
    expect((await fetch(`${base}/api/info?token=wrong`)).status).toBe(401);
    expect((await fetch(`${base}/api/info`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(
      200,
    );
    expect((await fetch(`${base}/api/info?token=${token}`)).status).toBe(200);
    s.proc.kill('SIGTERM');
    expect(await s.done).toBe(143);
  });

  it('refuses a port in use with one line and exit 1', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const port = (blocker.address() as net.AddressInfo).port;
    try {
      const r = await sonde('serve', '--port', String(port));
      expect(r.code).toBe(1);
      expect(r.stderr).toBe(`sonde: --port ${port} is in use: pick another (--port 0 picks a free one)\n`);
      expect(r.stdout).toBe('');
    } finally {
      blocker.close();
    }
  });

  it('refuses a bad --sae folder, a bad model, a bad port and a short token with one clear line', async () => {
    const cases: [string[], RegExp][] = [
      [
        ['serve', '--port', '0', '--sae', 'test/fixtures/nope-sae'],
        /^sonde: .*nope-sae.*cfg\.json: not found.*SAELens SAE folder/,
      ],
      [['serve', '--port', '0', '--sae', 'test/fixtures/induction-2l'], /^sonde: .*induction-2l.*cfg\.json/],
      [
        ['--model', 'test/fixtures/nope-model', 'serve', '--port', '0'],
        /^sonde: model folder '.*nope-model' does not exist/,
      ],
      [['serve', '--port', '70000'], /^sonde: .*--port.*integer in \[0, 65535\]/],
      [['serve', '--port', '0', '--token', 'abc'], /^sonde: --token is too short/],
      [
        ['serve', '--port', '0', '--host', '10.254.254.254'],
        /^sonde: --host 10\.254\.254\.254 is not an address of this machine/,
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => sonde(...args)));
    results.forEach((r, i) => {
      expect(r.code, cases[i]![0].join(' ')).toBe(1);
      expect(r.stderr.trimEnd().split('\n'), cases[i]![0].join(' ')).toHaveLength(1);
      expect(r.stderr, cases[i]![0].join(' ')).toMatch(cases[i]![1]);
    });
  });

  it('explains itself in --help', async () => {
    const r = await sonde('serve', '--help');
    expect(r.code).toBe(0);
    for (const want of [
      '--sae <dir...>',
      '--port <n>',
      '--host <address>',
      '--token <token>',
      'requires the token',
      'Ctrl-C',
      'sonde serve',
    ])
      expect(r.stdout).toContain(want);
  });
});
