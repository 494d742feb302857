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
  // One label: refused before the model runs (before, it trained and reported held-out 1.00).
  const lines = fs.readFileSync('examples/gender-probe.jsonl', 'utf8').trim().split('\n');
  const boys = path.join(dir, 'boys.jsonl');
  fs.writeFileSync(
    boys,
    lines
      .filter((l) => l.endsWith('1}'))
      .slice(0, 5)
      .join('\n'),
  );
  const four = path.join(dir, 'four.jsonl');
  fs.writeFileSync(four, lines.slice(0, 4).join('\n'));
  const hook = ['--hook', 'blocks.2.hook_resid_post'];
  const [single, tiny] = await Promise.all([
    sonde('probe', ...hook, '--data', boys),
    sonde('probe', ...hook, '--data', four, '--json'),
  ]);
  expect([single.code, single.stdout]).toEqual([1, '']);
  expect(single.stderr).toBe(
    `sonde: data file '${boys}' has 0 texts with label 0 (and 5 with label 1): a probe needs at least 2 texts of each label, one to train on and one to hold out\n`,
  );
  // Four texts: trained, with the tiny held-out set said aloud (on stderr, and in the JSON).
  expect(tiny.code).toBe(0);
  expect(tiny.stderr).toMatch(
    /^sonde: warning: the held-out set has only 2 texts, so its accuracy moves in steps of 0.5/m,
  );
  const t = JSON.parse(tiny.stdout) as { results: { testSize: number; warnings: string[] }[] };
  expect(t.results[0]!.testSize).toBe(2);
  expect(t.results[0]!.warnings).toHaveLength(1);
  const bad = await sonde('probe', '--data', 'examples/gender-probe.jsonl');
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^sonde: give --hook NAME or --layers all/);
}, 60_000);
