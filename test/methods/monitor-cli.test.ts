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

it('sonde monitor --json reads the probe where it was trained, with a plot; --generate --stop-on-fire stops', async () => {
  const model = HookedTransformer.load();
  const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
  const hook = 'blocks.2.hook_resid_post';
  const p = trainProbe(await collectActivations(model, texts, hook), labels, { seed: 0 });
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
      'Once upon a time, there was a little boy named Tom.',
      '--generate',
      '40',
      '--stop-on-fire',
      '--json',
    ),
  ]);
  expect(scan.code).toBe(0);
  const doc = JSON.parse(scan.stdout) as {
    position: string;
    texts: string[];
    hits: { text: number; position: number; token: string; score: number }[];
    scores: (number | null)[][];
  };
  expect(doc.position).toBe('last');
  expect(doc.scores).toHaveLength(3);
  for (const h of doc.hits) expect(doc.scores[h.text]![h.position]).toBeCloseTo(h.score, 6);
  // Read at the last token of each text: the boy story and "... Tim saw a big dog." fire, the girl story
  // does not (before, the probe was read at every token and fired on the girl story's " Once", " a", " time").
  const last = doc.texts.map((t) => model.encode(t).length - 1);
  expect(doc.hits.map((h) => [h.text, h.position, h.token])).toEqual([
    [0, last[0], '.'],
    [2, last[2], '.'],
  ]);
  expect(doc.scores[1]![last[1]!]!).toBeLessThan(0.5);
  expect(doc.scores[1]!.slice(0, -1).every((s) => s === null)).toBe(true);
  expect(fs.readFileSync(svg, 'utf8')).toMatch(/^<svg/);
  expect(gen.code).toBe(0);
  const g = JSON.parse(gen.stdout) as { stopped: boolean; hits: { token: string }[] };
  expect(g.stopped).toBe(true); // measured: the first generated sentence ("Tom loved ... toys.") fires
  expect(g.hits.at(-1)!.token).toBe('.');
}, 60_000);
