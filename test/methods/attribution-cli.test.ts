// `sonde attribute` end to end (spawned as in test/cli/cli.test.ts).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

function sonde(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src/cli/index.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

it('sonde attribute --compare --json --plot: the grid, the correlation and an SVG', async () => {
  const svg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-attr-')), 'a.svg');
  const r = await sonde(
    'attribute',
    '--clean',
    'Once upon a time, there was a little girl named Lily. One day,',
    '--corrupt',
    'Once upon a time, there was a little girl named Tim. One day,',
    '--answer',
    'Lily',
    '--wrong',
    'Tim',
    '--compare',
    '--json',
    '--plot',
    svg,
  );
  expect(r.code).toBe(0);
  const doc = JSON.parse(r.stdout);
  expect(doc.target).toBe('resid_pre');
  expect(doc.values).toHaveLength(5);
  expect(doc.actual).toHaveLength(5);
  expect(doc.correlation).toBeGreaterThan(0.95);
  // Titled as attribution (before: 'Activation patching'), positions labelled with their tokens.
  const text = fs.readFileSync(svg, 'utf8');
  expect(text).toMatch(/^<svg/);
  expect(text).toContain('>Attribution patching: resid_pre (clean patched into corrupt)</text>');
  expect(text).toContain('>14 " Lily"/" Tim"</text>');
  expect(text).not.toContain('Activation patching');
}, 60_000);
