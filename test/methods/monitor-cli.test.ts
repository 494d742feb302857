import '../../src/engine/node.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { collectActivations, readLabelledJsonl, saveProbe, trainProbe } from '../../src/methods/probes.js';

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

it('sonde monitor --json reports where the probe fires, with a plot; --generate --stop-on-fire stops', async () => {
  const model = HookedTransformer.load();
  const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
  const hook = 'blocks.2.hook_resid_post';
  const p = trainProbe(collectActivations(model, texts, hook), labels, { seed: 0 });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-monitor-cli-'));
  const probe = path.join(dir, 'probe.json');
  saveProbe(probe, { ...p, hook, position: 'last', labels: ['girl', 'boy'] });
  const svg = path.join(dir, 'm.svg');
  const [scan, gen] = await Promise.all([
    sonde('monitor', '--probe', probe, '--data', 'examples/monitor-texts.txt', '--plot', svg, '--json'),
    sonde(
      'monitor',
      '--probe',
      probe,
      '--prompt',
      'Once upon a time',
      '--generate',
      '40',
      '--stop-on-fire',
      '--json',
    ),
  ]);
  expect(scan.code).toBe(0);
  const doc = JSON.parse(scan.stdout) as {
    threshold: number;
    hits: { text: number; position: number; score: number }[];
    scores: number[][];
  };
  expect(doc.scores).toHaveLength(3);
  expect(doc.hits.length).toBeGreaterThan(0);
  for (const h of doc.hits) expect(doc.scores[h.text]![h.position]).toBeCloseTo(h.score, 6);
  // The end of the boy sentence fires; the end of the girl sentence ("... named Lily.") does not.
  const end = (s: string) => model.encode(s).length - 1;
  expect(doc.scores[0]![end('Once upon a time, there was a little boy named Tom.')]!).toBeGreaterThan(0.5);
  expect(doc.scores[1]![end('Once upon a time, there was a little girl named Lily.')]!).toBeLessThan(0.5);
  expect(fs.readFileSync(svg, 'utf8')).toMatch(/^<svg/);
  expect(gen.code).toBe(0);
  const g = JSON.parse(gen.stdout) as { stopped: boolean; hits: unknown[] };
  expect(g.stopped).toBe(true);
}, 60_000);
