// sonde circuit end to end: the JSON fields the issue names, --out, --list, and one line per bad input.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sonde, type CliResult } from '../helpers/cli.js';
import { fixtureDir } from '../helpers/fixtures.js';

const HANDSET = fixtureDir('circuit-induction-handset');
const DATA = path.join(HANDSET, 'data.jsonl');
const KNOWN = JSON.parse(fs.readFileSync(path.join(HANDSET, 'reference.json'), 'utf8')) as {
  knownCircuit: string[];
};
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-circuit-cli-'));

/** A failure: exit 1, nothing on stdout, one line on stderr, no stack trace. */
function oneLineError(r: CliResult): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

function dataFile(name: string, lines: string[]): string {
  const file = path.join(tmp, name);
  fs.writeFileSync(file, lines.join('\n') + '\n');
  return file;
}

describe.concurrent('sonde circuit', () => {
  it('--json: every edge as {edge, source, target, score, inCircuit}, the circuit, clean and corrupt metrics; --out writes it, and refuses to overwrite', async () => {
    const file = path.join(tmp, 'acdc.json');
    const args = ['circuit', '--model', HANDSET, '--method', 'acdc', '--data', DATA, '--metric', 'kl'];
    const r = await sonde(...args, '--threshold', '0.01', '--sweep', '0.01,100', '--json', '--out', file);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as Record<string, unknown> & {
      edges: Record<string, unknown>[];
      circuit: Record<string, unknown> & { edges: string[]; faithfulness: number };
      sweep: { threshold: number; edges: string[] }[];
    };
    expect(doc).toMatchObject({ method: 'acdc', metric: 'kl', ablation: 'corrupt', threshold: 0.01 });
    expect(typeof doc.cleanMetric).toBe('number');
    expect(doc.corruptMetric).toBeCloseTo(6.8220889, 4);
    expect(doc.edges).toHaveLength(29);
    for (const e of doc.edges)
      expect(Object.keys(e)).toEqual(['edge', 'source', 'target', 'score', 'inCircuit']);
    expect(doc.edges[0]).toMatchObject({ edge: 'input->a0.h0<q>', source: 'input', target: 'a0.h0<q>' });
    expect(Object.keys(doc.circuit)).toEqual(['edges', 'nodes', 'metric', 'faithfulness']);
    expect([...doc.circuit.edges].sort()).toEqual([...KNOWN.knownCircuit].sort());
    expect(doc.circuit.faithfulness).toBeCloseTo(1, 5);
    expect(doc.sweep.map((s) => [s.threshold, s.edges.length])).toEqual([
      [0.01, 5],
      [100, 0],
    ]);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(doc);
    // A second run refuses the existing file before loading anything, and leaves it alone.
    const again = await sonde(...args, '--threshold', '0.5', '--out', file);
    expect(oneLineError(again)).toMatch(/--out: '.*acdc\.json' already exists \(add --force/);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))).toEqual(doc);
  });

  it('a human table: the method, the metrics, the circuit and the top edges by |score|; --plot draws it', async () => {
    const svg = path.join(tmp, 'eap-ig.svg');
    const r = await sonde(
      'circuit',
      '--model',
      HANDSET,
      '--method',
      'eap-ig',
      '--data',
      DATA,
      '--metric',
      'kl',
      '--top',
      '5',
      '--show',
      '3',
      '--plot',
      svg,
    );
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[0]).toBe('EAP-IG on 12 pairs: metric kl, corrupt ablation, 5 steps, top 5');
    expect(lines[1]).toBe('kl: clean 0, corrupt 6.822 (every edge patched)');
    expect(lines[2]).toMatch(/^circuit: 5 of 29 edges, 4 nodes; kl \S+, faithfulness 1\.000$/);
    expect(lines[3]).toBe('nodes: input a0.h0 a1.h0 logits');
    expect(lines[5]).toMatch(/^edge\s+score\s+in circuit$/);
    expect(lines[6]).toMatch(/^a1\.h0->logits\s+-5\.458\s+yes$/);
    expect(lines[9]).toBe('score: kl(kept) - kl(patched) (3 of 29 edges; --json lists all)');
    expect(lines[11]).toBe(`plot: ${svg}`);
    const drawn = fs.readFileSync(svg, 'utf8');
    expect(drawn).toMatch(/^<svg/);
    expect(drawn).toContain('EAP-IG circuit: 5 of 29 edges, faithfulness 1.000');
  });

  it('--list --json: every node, receiver and edge of the model with counts', async () => {
    const r = await sonde('circuit', '--list', '--model', fixtureDir('pythia-tiny'), '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as {
      nodes: { name: string }[];
      edges: { edge: string; source: string; target: string }[];
      counts: Record<string, unknown>;
    };
    expect(doc.nodes.map((n) => n.name)).toEqual([
      'input',
      'a0.h0',
      'a0.h1',
      'm0',
      'a1.h0',
      'a1.h1',
      'm1',
      'logits',
    ]);
    expect(doc.counts).toMatchObject({ nodes: 8, receivers: 15, edges: 42 });
    expect(doc.edges).toHaveLength(42);
    expect(doc.edges.at(-1)).toEqual({ edge: 'm1->logits', source: 'm1', target: 'logits' });
  });

  it('--list: a summary line per kind and one row per receiver', async () => {
    const r = await sonde('circuit', '--list', '--model', fixtureDir('llama-tiny'));
    expect(r.code).toBe(0);
    const lines = r.stdout.split('\n');
    expect(lines[1]).toBe('16 nodes (1 input, 12 heads, 2 MLPs, 1 logits), 23 receivers, 126 edges');
    expect(lines[2]).toBe('edges by receiver: q 54, k 18, v 18, mlp 21, logits 15');
    expect(r.stdout).toMatch(/^a1\.h1<k> \(a1\.h3\.\.a1\.h5\)\s+input a0\.h0\.\.a0\.h5 m0$/m);
    expect(r.stdout).toMatch(/^logits\s+input a0\.h0\.\.a0\.h5 m0 a1\.h0\.\.a1\.h5 m1$/m);
  });

  it('bad input: one line naming what is wrong', async () => {
    const model = ['--model', HANDSET];
    const base = ['circuit', ...model, '--method', 'acdc', '--threshold', '0.1'];
    const notJson = dataFile('not-json.jsonl', [
      '{"clean_ids": [0, 1, 2], "corrupt_ids": [0, 3, 2]}',
      '{"clean_ids": [0, 1, 2]',
    ]);
    const uneven = dataFile('uneven.jsonl', ['{"clean_ids": [0, 1, 2], "corrupt_ids": [0, 3]}']);
    const noAnswer = dataFile('no-answer.jsonl', ['{"clean_ids": [0, 1, 2], "corrupt_ids": [0, 3, 2]}']);
    const [missingData, metric, method, malformed, lengths, answer, flags] = await Promise.all([
      sonde(...base, '--metric', 'kl'),
      sonde(...base, '--data', DATA, '--metric', 'accuracy'),
      sonde('circuit', ...model, '--method', 'acdcx', '--data', DATA, '--metric', 'kl'),
      sonde(...base, '--data', notJson, '--metric', 'kl'),
      sonde(...base, '--data', uneven, '--metric', 'kl'),
      sonde(...base, '--data', noAnswer, '--metric', 'logit-diff'),
      sonde(...base, '--data', DATA, '--metric', 'kl', '--top', '5'),
    ]);
    expect(oneLineError(missingData)).toMatch(/missing --data FILE\.jsonl/);
    expect(oneLineError(metric)).toMatch(/unknown metric 'accuracy': use one of kl, logit-diff, loss/);
    expect(oneLineError(method)).toMatch(/unknown method 'acdcx': use one of acdc, eap, eap-ig/);
    expect(oneLineError(malformed)).toMatch(/not-json\.jsonl line 2: not JSON/);
    expect(oneLineError(lengths)).toMatch(/uneven\.jsonl line 1: clean has 3 tokens and corrupt 2/);
    expect(oneLineError(answer)).toMatch(/logit-diff needs "answer" and "wrong"/);
    expect(oneLineError(flags)).toMatch(/--top is for eap and eap-ig, not --method acdc/);
  });
});
