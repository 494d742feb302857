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

const PROMPT = 'Once upon a time, there was a little girl named Lily. One day,';
const ARGS = [
  'steer',
  '--prompt',
  PROMPT,
  '--positive',
  'examples/boy-prompts.txt',
  '--negative',
  'examples/girl-prompts.txt',
];

it('sonde steer shows unsteered and steered text; --json has both; the plot names the whole prompt', async () => {
  const plot = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-steer-')), 'next.svg');
  const [json, human] = await Promise.all([
    sonde(
      ...ARGS,
      '--hook',
      'blocks.3.hook_resid_post',
      '--coefficient',
      '2',
      '--max-tokens',
      '12',
      '--json',
    ),
    sonde(
      ...ARGS,
      '--hook',
      'blocks.3.hook_resid_post',
      '--coefficient',
      '2',
      '--max-tokens',
      '12',
      '--plot',
      plot,
    ),
  ]);
  expect(json.code).toBe(0);
  const doc = JSON.parse(json.stdout) as { unsteered: string; steered: string; vectorNorm: number };
  // Measured: " Lily went to the park with her mommy..." vs " she went to the park with her mom...".
  expect(doc.unsteered).toMatch(/^ Lily went/);
  expect(doc.steered).toMatch(/^ she went/);
  expect(doc.vectorNorm).toBeGreaterThan(0);
  expect(human.code).toBe(0);
  expect(human.stdout).toMatch(/unsteered +steered \(\+2\)/);
  // The subtitle is the whole prompt, wrapped at 70 characters (before: its last 60, "pon a time, ...").
  const svg = fs.readFileSync(plot, 'utf8');
  expect(svg).toContain(`>after: ${PROMPT}</text>`);
  const bad = await sonde('steer', '--prompt', PROMPT, '--positive', 'examples/boy-prompts.txt');
  expect(bad.code).toBe(1);
  expect(bad.stderr).toMatch(/^sonde: give --positive FILE and --negative FILE/);
}, 60_000);
