// sonde scrub end to end: the hand-set induction circuit, its outputs, and one-line errors for bad input.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sonde, type CliResult } from '../helpers/cli.js';

const HANDSET = ['--model', 'test/fixtures/circuit-induction-handset'];
const DATA = ['--data', 'examples/scrub/handset.jsonl'];

function oneLineError(r: CliResult): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-scrub-'));
const write = (name: string, text: string) => {
  const p = path.join(tmp, name);
  fs.writeFileSync(p, text);
  return p;
};

describe.concurrent('sonde scrub', () => {
  it('--json, --out and --plot on the hand-set circuit; an existing --out is refused', async () => {
    const out = path.join(tmp, 'result.json');
    const plot = path.join(tmp, 'hist.svg');
    const args = [...HANDSET, 'scrub', 'examples/scrub/handset-correct.json', ...DATA, '--samples', '1'];
    const r = await sonde(...args, '--json', '--out', out, '--plot', plot);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown> & {
      examples: { lossRecovered: number }[];
      distribution: { count: number; histogram: { counts: number[] } };
    };
    expect(doc.lossRecovered as number).toBeGreaterThan(0.99);
    expect(doc.baseline).toBe('random');
    expect(doc.cleanLoss as number).toBeLessThan((doc.scrubbedLoss as number) + 1e-3);
    expect(doc.baselineLoss as number).toBeGreaterThan(1);
    expect(doc.examples).toHaveLength(40);
    expect(doc.distribution.count).toBe(40);
    expect(doc.distribution.histogram.counts.reduce((a, b) => a + b, 0)).toBe(40);
    const saved = JSON.parse(fs.readFileSync(out, 'utf8')) as Record<string, unknown>;
    expect(saved.lossRecovered).toBe(doc.lossRecovered);
    expect(saved.examples).toEqual(doc.examples);
    expect(fs.readFileSync(plot, 'utf8')).toMatch(/^<svg/);
    const again = await sonde(...args, '--out', out);
    expect(oneLineError(again)).toMatch(/--out: '.*result.json' already exists \(add --force/);
  });

  it('prints loss recovered, the named baseline and the per-example distribution', async () => {
    const r = await sonde(
      ...HANDSET,
      'scrub',
      'examples/scrub/handset-wrong-k.json',
      ...DATA,
      '--samples',
      '1',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^baseline: random \(every input resampled/m);
    const lr = Number(/loss recovered: (\S+)/.exec(r.stdout)![1]);
    expect(lr).toBeLessThan(0.7);
    expect(r.stdout).toMatch(/per example \(40\): mean \S+, std \S+, quantiles 5% /);
  });

  const cases: [string, string, RegExp][] = [
    ['unknown node', '{"output": ["a1.h9"]}', /'a1.h9' is not a node of this model/],
    [
      'unknown feature',
      '{"output": ["a1.h0"], "heads": {"a1.h0": {"q": {"from": ["input"], "agree": "colour"}}}}',
      /unknown feature "colour"/,
    ],
    ['malformed JSON', '{"output": ["a1.h0"],', /not valid JSON/],
    [
      'head not in the model',
      '{"output": ["a1.h0"], "heads": {"a3.h0": {}}}',
      /'a3.h0' is not a head of this model/,
    ],
  ];
  it.each(cases)('%s: one line, exit 1', async (name, text, message) => {
    const file = write(`${name.replace(/ /g, '-')}.json`, text);
    const line = oneLineError(await sonde(...HANDSET, 'scrub', file, ...DATA));
    expect(line).toMatch(/^sonde: /);
    expect(line).toMatch(message);
  });
});
