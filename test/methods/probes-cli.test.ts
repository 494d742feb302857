import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';

function sonde(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/cli/index.ts', ...args],
      { timeout: 60_000 },
      (err, stdout, stderr) => resolve({ code: err ? Number(err.code ?? -1) : 0, stdout, stderr }),
    );
  });
}

it('sonde probe --json trains, writes the probe file and the score histogram', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-probe-cli-'));
  const probe = path.join(dir, 'probe.json');
  const svg = path.join(dir, 'scores.svg');
  const args = ['probe', '--hook', 'blocks.2.hook_resid_post', '--data', 'examples/gender-probe.jsonl'];
  const r = await sonde(...args, '--labels', 'girl,boy', '--out', probe, '--plot', svg, '--json');
  expect(r.code).toBe(0);
  const doc = JSON.parse(r.stdout) as {
    results: { testAcc: number; controlAcc: number }[];
    labels: string[];
  };
  expect(doc.labels).toEqual(['girl', 'boy']);
  expect(doc.results[0]!.testAcc).toBeGreaterThanOrEqual(0.9);
  expect(doc.results[0]!.controlAcc).toBeLessThan(0.75);
  const file = JSON.parse(fs.readFileSync(probe, 'utf8')) as {
    format: string;
    hook: string;
    weights: number[];
  };
  expect([file.format, file.hook, file.weights.length]).toEqual([
    'sonde-probe',
    'blocks.2.hook_resid_post',
    64,
  ]);
  expect(fs.readFileSync(svg, 'utf8')).toMatch(/^<svg/);
  const bad = await sonde('probe', '--data', 'examples/gender-probe.jsonl');
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^sonde: give --hook NAME or --layers all/);
}, 60_000);
