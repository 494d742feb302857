// The drawn circuit: rows by layer (input, each layer's heads then MLP, logits), one line per pair of
// nodes weighted by the largest |score| of its edges, GQA k/v edges drawn to the query heads they feed.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { discoverCircuit, type DiscoveryResult } from '../../src/circuits/discover.js';
import { circuitDrawing, graphDrawing } from '../../src/circuits/drawing.js';
import { circuitGraph } from '../../src/circuits/graph.js';
import { readPairs } from '../../src/circuits/pairs.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { circuitSpec } from '../../src/plot/circuit.js';
import { renderSvg } from '../../src/plot/vega.js';
import { fixtureDir } from '../helpers/fixtures.js';

describe('circuitDrawing', () => {
  it('the hand-set induction circuit: four lines, v and q into a1.h0 merged to the stronger', async () => {
    const dir = fixtureDir('circuit-induction-handset');
    const model = HookedTransformer.load(dir, { compile: 'never' });
    const pairs = readPairs(model, path.join(dir, 'data.jsonl'));
    const r = await discoverCircuit(model, pairs, { method: 'acdc', metric: 'kl', threshold: 0.01 });
    const d = circuitDrawing(r, model.cfg);
    expect(d.nodes).toEqual([
      { id: 'input', layer: 0, kind: 'input' },
      { id: 'a0.h0', layer: 1, kind: 'head' },
      { id: 'a1.h0', layer: 3, kind: 'head' },
      { id: 'logits', layer: 5, kind: 'logits' },
    ]);
    const score = (edge: string) => r.edges.find((e) => e.edge === edge)!.score!;
    // input->a1.h0<v> costs the whole corrupt kl, input->a1.h0<q> less: the line carries the v score.
    expect(Math.abs(score('input->a1.h0<v>'))).toBeGreaterThan(Math.abs(score('input->a1.h0<q>')));
    expect(d.edges).toEqual([
      { source: 'input', target: 'a0.h0', weight: score('input->a0.h0<v>') },
      { source: 'input', target: 'a1.h0', weight: score('input->a1.h0<v>') },
      { source: 'a0.h0', target: 'a1.h0', weight: score('a0.h0->a1.h0<k>') },
      { source: 'a1.h0', target: 'logits', weight: score('a1.h0->logits') },
    ]);
    expect(d.rowLabels!.get(3)).toBe('layer 1 heads');
    const svg = await renderSvg(circuitSpec(d));
    expect(svg).toMatch(/^<svg/);
    for (const label of ['a0.h0', 'a1.h0', 'logits', 'layer 0 heads']) expect(svg).toContain(label);
  });

  it("GQA: a KV head's k edge is drawn to the query heads of its group that are in the circuit", () => {
    const cfg = HookedTransformer.load(fixtureDir('llama-tiny'), { compile: 'never' }).cfg;
    const graph = circuitGraph(cfg);
    const kept = ['input->a0.h1<k>', 'a0.h4->logits'];
    const r = {
      method: 'eap',
      metric: 'logit-diff',
      graph: { nodes: graph.nodes.length, edges: graph.edges.length },
      edges: graph.edges.map((e) => ({ edge: e.name, score: e.name === kept[0] ? -2 : 3 })),
      circuit: { edges: kept, nodes: ['input', 'a0.h4', 'logits'], metric: 1, faithfulness: 0.5 },
    } as unknown as DiscoveryResult;
    const d = circuitDrawing(r, cfg);
    expect(d.edges).toEqual([
      { source: 'input', target: 'a0.h4', weight: -2 },
      { source: 'a0.h4', target: 'logits', weight: 3 },
    ]);
    // Rows: the input, layer 0's heads, the logits above layer 1's MLP (2L + 1).
    expect(d.nodes.map((n) => n.layer)).toEqual([0, 1, 5]);
  });
});

describe('graphDrawing', () => {
  it('places every node of the graph by the circuit drawing’s rows and keeps every edge with its score and fed nodes', () => {
    const cfg = HookedTransformer.load(fixtureDir('llama-tiny'), { compile: 'never' }).cfg;
    const graph = circuitGraph(cfg);
    const r = {
      method: 'eap',
      metric: 'kl',
      graph: { nodes: graph.nodes.length, edges: graph.edges.length },
      edges: graph.edges.map((e, i) => ({ edge: e.name, score: i / 10, inCircuit: i % 2 === 0 })),
      circuit: { edges: [], nodes: [], metric: 0, faithfulness: 0 },
    } as unknown as DiscoveryResult;
    const d = graphDrawing(r, cfg);
    expect(d.nodes.map((n) => n.id).sort()).toEqual([...graph.nodes].sort());
    // Rows bottom to top: embeddings, then each layer's heads and MLP, then the logits.
    expect(d.rows.map((x) => x.label)).toEqual([
      'embeddings',
      ...Array.from({ length: cfg.nLayers }, (_, l) => [`layer ${l} heads`, `layer ${l} MLP`]).flat(),
      'logits',
    ]);
    const y = (id: string) => d.nodes.find((n) => n.id === id)!.y;
    expect([y('input'), y('a0.h0'), y('m0'), y('logits')]).toEqual([0, 1, 2, 2 * cfg.nLayers + 1]);
    expect(d.edges.map((e) => [e.edge, e.score, e.inCircuit])).toEqual(
      r.edges.map((e) => [e.edge, e.score, e.inCircuit]),
    );
    // A KV head's k input feeds its group of query heads.
    const k = d.edges.find((e) => e.edge === 'input->a0.h1<k>')!;
    expect(k.targets).toEqual(graph.receivers.find((x) => x.name === 'a0.h1<k>')!.feeds);
    expect(k.targets.length).toBe(cfg.nHeads / cfg.nKvHeads);
  });
});
