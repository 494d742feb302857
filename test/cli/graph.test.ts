// `sonde graph` end to end (spawned as the other CLI tests).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { sonde } from '../helpers/cli.js';

const PROMPT = 'Once upon a time, there was a little girl named Lily. She';

describe('sonde graph', () => {
  it('--json --out --plot: summary, a circuit-tracer graph file and a drawing', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-graph-'));
    const file = path.join(dir, 'lily.json');
    const svg = path.join(dir, 'lily.svg');
    const r = await sonde(
      'graph',
      '--prompt',
      PROMPT,
      '--json',
      '--out',
      file,
      '--plot',
      svg,
      '--batch-size',
      '100',
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.tokens).toHaveLength(17);
    expect(doc.errorNodes).toBe(5 * 17);
    expect(doc.nodes).toBe(doc.activeFeatures + 6 * 17 + doc.logits.length);
    // The top logits: the fewest (at most 10) whose probabilities reach 0.95, most probable first.
    const probs = doc.logits.map((l: { prob: number }) => l.prob);
    expect(probs.slice(0, -1).reduce((a: number, b: number) => a + b, 0)).toBeLessThan(0.95);
    expect([...probs].sort((a, b) => b - a)).toEqual(probs);
    expect(doc.replacementScore).toBeGreaterThan(0);
    expect(doc.replacementScore).toBeLessThan(1);
    expect(doc.completenessScore).toBeGreaterThan(doc.replacementScore);
    expect(doc.completenessScore).toBeLessThanOrEqual(1);
    for (const p of doc.paths) expect(p.nodes.at(-1)).toBe(`logit ${JSON.stringify(doc.logits[0].string)}`);

    const g = JSON.parse(fs.readFileSync(file, 'utf8'));
    expect(g.metadata.slug).toBe('lily');
    expect(g.metadata.prompt).toBe(PROMPT);
    expect(g.metadata.prompt_tokens).toEqual(doc.tokenStrings);
    expect(g.metadata.node_threshold).toBe(0.8);
    expect(g.links).toHaveLength(doc.pruned.links);
    expect(g.nodes).toHaveLength(doc.pruned.nodes);
    expect(g.nodes.filter((n: { feature_type: string }) => n.feature_type === 'embedding')).toHaveLength(17);
    expect(g.nodes.filter((n: { feature_type: string }) => n.feature_type === 'logit')).toHaveLength(
      doc.logits.length,
    );
    // Listed in the folder's index for circuit-tracer's viewer.
    const index = JSON.parse(fs.readFileSync(path.join(dir, 'graph-metadata.json'), 'utf8'));
    expect(index.graphs).toEqual([g.metadata]);
    const svgText = fs.readFileSync(svg, 'utf8');
    expect(svgText).toMatch(/^<svg/);
    expect(svgText).toContain(`Attribution graph: ${JSON.stringify(PROMPT)}`);
    expect(svgText).toContain('>logits</text>');

    // An existing --out is refused without --force, before any work.
    const again = await sonde('graph', '--prompt', PROMPT, '--out', file);
    expect(again.code).not.toBe(0);
    expect(again.stderr).toContain(`--out: '${file}' already exists (add --force to overwrite it)`);
  });

  it('the text report names thresholds, scores and paths; bad thresholds and transcoder folders are refused', async () => {
    const r = await sonde(
      'graph',
      '--prompt',
      PROMPT,
      '--node-threshold',
      '0.5',
      '--edge-threshold',
      '0.9',
      '--top',
      '3',
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/replacement score 0\.\d{3}, completeness score 0\.\d{3}/);
    expect(r.stdout).toContain('pruned (nodes 0.5, edges 0.9)');
    expect(r.stdout).toMatch(/Strongest paths into " lo"/);
    const bad = await sonde('graph', '--prompt', PROMPT, '--node-threshold', '1.5');
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('--node-threshold must be in [0, 1], got 1.5');
    const noTc = await sonde('graph', '--prompt', PROMPT, '--transcoders', 'test/fixtures');
    expect(noTc.code).not.toBe(0);
    expect(noTc.stderr).toMatch(/not a transcoder|no transcoder for layers/);
  });
});
