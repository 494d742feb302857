// `sonde ablate` end to end on the induction organism.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

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

it('sonde ablate --repeated 20 --kind mean --heads all --json --plot', async () => {
  const svg = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-abl-')), 'h.svg');
  const args = ['--model', 'test/fixtures/induction-2l', 'ablate', '--repeated', '20', '--kind', 'mean'];
  const [json, human] = await Promise.all([
    sonde(...args, '--heads', 'all', '--json', '--plot', svg),
    sonde(...args, '--head', '1.2'),
  ]);
  expect(json.code).toBe(0);
  const doc = JSON.parse(json.stdout);
  expect(doc.values).toHaveLength(2);
  expect(doc.values[1]).toHaveLength(4);
  // The strongest induction head's ablation costs more than layer-0 head 3 (not a previous-token head).
  expect(Math.max(...doc.values[1])).toBeGreaterThan(doc.values[0][3] + 0.3);
  expect(doc.repeats.first - doc.repeats.second).toBeGreaterThan(3);
  expect(fs.readFileSync(svg, 'utf8')).toMatch(/^<svg/);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(/mean-ablating L1H2: loss .* -> /);
  expect(human.stdout).toMatch(/second repeat: /);
}, 60_000);
