// Output locations are checked before any work (cli/output.ts), --out is locked and not overwritten
// without --force, and a failed or finished run leaves no debris.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { Command } from 'commander';
import { checkOutput } from '../../src/cli/output.js';
import { buildProgram } from '../../src/cli/program.js';
import { sonde, sondeWithin, ROOT } from '../helpers/cli.js';
import { execFile } from 'node:child_process';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-output-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

/** Runs the CLI with its own temp folder (TMPDIR), to see what it leaves there. */
function sondeIn(tmpdir: string, ...args: string[]): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve) =>
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src/cli/index.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, TMPDIR: tmpdir }, timeout: 300_000 },
      (err, _stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stderr }),
    ),
  );
}

describe('checkOutput', () => {
  const file = path.join(tmp, 'a-file.txt');
  fs.writeFileSync(file, 'x');
  const dir = fs.mkdtempSync(path.join(tmp, 'a-dir-'));

  it('names the flag and the problem', () => {
    const check = (p: string, kind: 'file' | 'dir', existing: 'force' | 'reuse', force = false) =>
      checkOutput(
        { flag: '--out', path: p, kind, existing, ext: kind === 'file' ? ['.svg'] : undefined },
        force,
      );
    expect(() => check(file, 'dir', 'force')).toThrow(`--out: '${file}' is a file; give a folder name`);
    expect(() => check(dir, 'file', 'force')).toThrow(/must end in \.svg/);
    expect(() => check(path.join(dir, 'x.png'), 'file', 'force')).toThrow(
      `--out: '${path.join(dir, 'x.png')}' must end in .svg`,
    );
    expect(() => check(path.join(tmp, 'no/such/x.svg'), 'file', 'force')).toThrow(
      `--out: folder '${path.join(tmp, 'no/such')}' does not exist`,
    );
    expect(() => check(dir, 'dir', 'force')).toThrow(
      `--out: '${dir}' already exists (add --force to overwrite it)`,
    );
    expect(() => check(dir, 'dir', 'force', true)).not.toThrow();
    expect(() => check(dir, 'dir', 'reuse')).not.toThrow();
    // A folder to be made below a missing one is fine where the nearest existing folder is writable.
    expect(() => check(path.join(dir, 'new/deeper'), 'dir', 'force')).not.toThrow();
    expect(fs.readdirSync(dir)).toEqual([]); // the write probe leaves nothing
  });

  it.runIf(process.platform === 'linux')('refuses a place nobody can write (even root)', () => {
    expect(() =>
      checkOutput({ flag: '--plot', path: '/proc/x.svg', kind: 'file', existing: 'force' }),
    ).toThrow(/^--plot: cannot write in '\/proc'/);
  });
});

describe('commands check their outputs before the work', () => {
  it('sae train --out naming a file fails at once and leaves no checkpoint or activation store', async () => {
    const f = path.join(tmp, 'taken');
    fs.writeFileSync(f, 'not a folder');
    const t0 = Date.now();
    const r = await sondeWithin(
      300_000,
      'sae',
      'train',
      '--hook',
      'blocks.0.hook_resid_post',
      '--n-tokens',
      '2048',
      '--out',
      f,
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toBe(`sonde: --out: '${f}' is a file; give a folder name\n`);
    expect(Date.now() - t0).toBeLessThan(60_000);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('taken'))).toEqual(['taken']);
  }, 300_000);

  it('--plot in an unwritable place fails before the model is loaded', async () => {
    const r = await sondeWithin(120_000, 'heads', '--plot', '/proc/heads.svg');
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^sonde: --plot: cannot write in '\/proc' \(\w+: read-only or no permission\)\n$/,
    );
  });

  it('an existing --out needs --force; a second run into the same --out is refused (lock)', async () => {
    const out = path.join(tmp, 'probe-out');
    fs.mkdirSync(out);
    const args = ['tuned-lens', 'train', '--steps', '1', '--batch-size', '1', '--ctx', '16', '--out', out];
    const refused = await sondeWithin(120_000, ...args);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`sonde: --out: '${out}' already exists (add --force to overwrite it)\n`);
    // A lock held by a live process (this one) makes the run refuse, naming the holder.
    fs.writeFileSync(`${out}.lock`, `${process.pid} ${os.hostname()}\n`);
    const locked = await sondeWithin(120_000, ...args, '--force');
    expect(locked.code).toBe(1);
    expect(locked.stderr).toContain(`--out '${out}' is in use by another sonde process (pid ${process.pid};`);
    // A lock left by a dead process is taken over; the run writes, and leaves no lock, temp or token file.
    fs.writeFileSync(`${out}.lock`, `999999999 ${os.hostname()}\n`);
    const ownTmp = fs.mkdtempSync(path.join(tmp, 'tmpdir-'));
    const ok = await sondeIn(ownTmp, ...args, '--force');
    expect(ok.stderr).not.toContain('sonde:');
    expect(ok.code).toBe(0);
    expect(fs.readdirSync(out).sort()).toEqual(['tuned-lens.json', 'tuned-lens.safetensors']);
    expect(fs.readdirSync(tmp).filter((n) => n.startsWith('probe-out'))).toEqual(['probe-out']);
    expect(fs.readdirSync(ownTmp).filter((n) => n.startsWith('sonde-'))).toEqual([]);
  }, 300_000);
});

describe('--plot never overwrites a file without --force', () => {
  const refusal = (f: string) => `--plot: '${f}' already exists (add --force to overwrite it)`;

  it('heads --plot onto a file: one line naming it and --force, the file unchanged; --force replaces it', async () => {
    const f = path.join(tmp, 'taken.svg');
    fs.writeFileSync(f, 'old plot');
    const refused = await sonde('heads', '--plot', f);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toBe('');
    expect(refused.stderr).toBe(`sonde: ${refusal(f)}\n`);
    expect(fs.readFileSync(f, 'utf8')).toBe('old plot');
    const forced = await sonde('--force', 'heads', '--plot', f);
    expect(forced.stderr).toBe('');
    expect(forced.code).toBe(0);
    expect(fs.readFileSync(f, 'utf8')).toMatch(/^<svg /);
  });

  // Every command that takes --plot, with its required options (the plot is checked before they are read).
  const f = path.join(tmp, 'existing.png');
  const commands: string[][] = [
    ['cache', '--hook', 'blocks.0.attn.hook_pattern'],
    ['heads'],
    ['lens'],
    ['dla'],
    ['patch', '--clean', 'a', '--corrupt', 'b', '--answer', 'c', '--wrong', 'd'],
    ['attribute', '--clean', 'a', '--corrupt', 'b', '--answer', 'c', '--wrong', 'd'],
    ['graph'],
    ['ablate'],
    ['circuit', '--method', 'acdc', '--data', 'no-such.jsonl', '--metric', 'kl', '--threshold', '0.1'],
    ['scrub', '--data', 'no-such.jsonl', 'no-such.json'],
    ['train', 'induction'],
    ['toy', 'superposition', '--features', '5', '--hidden', '2', '--sparsity', '0.9'],
    ['probe', '--data', 'no-such.jsonl', '--layers', 'all'],
    ['steer', '--prompt', 'a'],
    ['monitor', '--probe', 'no-such.json', '--prompt', 'a'],
    ['tuned-lens', 'eval', '--lens', 'no-such'],
    ['compare'],
    ['sae', 'eval', '--sae', 'no-such'],
    ['sae', 'show', '--sae', 'no-such', '--feature', '0'],
  ];

  it('the list above is every command with --plot', async () => {
    const withPlot = (c: Command, prefix: string[]): string[] => [
      ...(c.options.some((o) => o.long === '--plot') ? [prefix.join(' ')] : []),
      ...c.commands.flatMap((s) => withPlot(s, [...prefix, s.name()])),
    ];
    const all = withPlot(await buildProgram(), []).sort();
    // A command's name: its words before the first option.
    const names = commands.map((c) => {
      const opt = c.findIndex((w) => w.startsWith('-'));
      return c.slice(0, opt === -1 ? c.length : opt).join(' ');
    });
    expect(names.sort()).toEqual(all);
  });

  it.each(commands.map((c) => [c.join(' '), c]))('%s refuses it before any work', async (_, args) => {
    fs.writeFileSync(f, 'old plot');
    const program = await buildProgram();
    await expect(program.parseAsync(['node', 'sonde', ...args, '--plot', f])).rejects.toThrow(refusal(f));
    expect(fs.readFileSync(f, 'utf8')).toBe('old plot');
  });
});
