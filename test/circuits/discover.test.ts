// Circuit discovery as surfaces report it, on the hand-set induction transformer whose circuit is known by
// construction (scripts/reference/make_circuit_fixture.py), and the graph listing against hand counts.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import {
  checkOptions,
  discoverCircuit,
  pruneCircuit,
  type DiscoverOptions,
} from '../../src/circuits/discover.js';
import { circuitGraph } from '../../src/circuits/graph.js';
import { circuitListing } from '../../src/circuits/listing.js';
import { readPairs } from '../../src/circuits/pairs.js';
import { circuitTask, patchedMetrics } from '../../src/circuits/task.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { UsageError } from '../../src/errors.js';
import { fixtureDir } from '../helpers/fixtures.js';

interface Reference {
  edges: string[];
  cleanMetric: Record<'logit-diff' | 'kl', number>;
  corruptMetric: Record<'logit-diff' | 'kl', number>;
  eap: Record<'logit-diff' | 'kl', Record<string, number>>;
  eapIg5: Record<'logit-diff' | 'kl', Record<string, number>>;
  knownCircuit: string[];
  knownCircuitZero: string[];
  acdc: { circuitMetric: Record<'logit-diff' | 'kl', number> };
}

const DIR = fixtureDir('circuit-induction-handset');
const ref = JSON.parse(fs.readFileSync(path.join(DIR, 'reference.json'), 'utf8')) as Reference;
const model = HookedTransformer.load(DIR, { compile: 'never' });
const pairs = readPairs(model, path.join(DIR, 'data.jsonl'));
const sorted = (xs: string[]) => [...xs].sort();

describe('discoverCircuit on the hand-set induction transformer', () => {
  it('ACDC (kl, threshold 0.01) keeps exactly the known circuit, faithful, with a sweep', async () => {
    const r = await discoverCircuit(model, pairs, {
      method: 'acdc',
      metric: 'kl',
      threshold: 0.01,
      sweep: [0.01, 100],
    });
    expect(sorted(r.circuit.edges)).toEqual(sorted(ref.knownCircuit));
    expect(r.circuit.nodes).toEqual(['input', 'a0.h0', 'a1.h0', 'logits']);
    expect(r.circuit.faithfulness).toBeCloseTo(1, 5);
    expect(r.circuit.metric).toBeCloseTo(ref.acdc.circuitMetric.kl, 5);
    expect(r.cleanMetric).toBeCloseTo(ref.cleanMetric.kl, 5);
    expect(r.corruptMetric).toBeCloseTo(ref.corruptMetric.kl, 4);
    expect(r.prunedEdges).toBe(0);
    // Every edge once, in the reference's (graph) order; inCircuit agrees with circuit.edges.
    expect(r.edges.map((e) => e.edge)).toEqual(ref.edges);
    expect(r.edges.filter((e) => e.inCircuit).map((e) => e.edge)).toEqual(r.circuit.edges);
    for (const e of r.edges) expect(e.edge).toBe(`${e.source}->${e.target}`);
    // ACDC tests the logits' edges first, with nothing else patched: patching a1.h0->logits alone gives
    // the corrupt kl (the circuit's one path), so its score (kl kept − kl patched) is −corrupt kl.
    const out = r.edges.find((e) => e.edge === 'a1.h0->logits')!;
    expect(out.score).toBeCloseTo(-ref.corruptMetric.kl, 4);
    // Edges into a1.h1 are dropped untested once a1.h1->logits is out.
    expect(r.edges.find((e) => e.edge === 'input->a1.h1<q>')!.score).toBeNull();
    expect(r.sweep!.map((s) => s.threshold)).toEqual([0.01, 100]);
    expect(r.sweep![0]).toEqual({ threshold: 0.01, ...r.circuit });
    // A threshold above every effect keeps nothing: the metric of the run with every edge patched.
    expect(r.sweep![1]!.edges).toEqual([]);
    expect(r.sweep![1]!.nodes).toEqual([]);
    expect(r.sweep![1]!.faithfulness).toBeCloseTo(0, 6);
  });

  it('ACDC with zero ablation keeps the known zero-ablation circuit', async () => {
    const r = await discoverCircuit(model, pairs, {
      method: 'acdc',
      metric: 'kl',
      threshold: 0.01,
      ablation: 'zero',
    });
    expect(sorted(r.circuit.edges)).toEqual(sorted(ref.knownCircuitZero));
    expect(r.ablation).toBe('zero');
  });

  it('EAP (logit-diff) top 5 is the known circuit, its scores the reference EAP, faithful by real patching', async () => {
    const r = await discoverCircuit(model, pairs, { method: 'eap', metric: 'logit-diff', top: 5 });
    expect(sorted(r.circuit.edges)).toEqual(sorted(ref.knownCircuit));
    expect(r.steps).toBe(1);
    const scale = Math.max(...Object.values(ref.eap['logit-diff']).map(Math.abs));
    for (const e of r.edges)
      expect(Math.abs(e.score! - ref.eap['logit-diff'][e.edge]!)).toBeLessThan(1e-5 * scale);
    expect(r.circuit.metric).toBeCloseTo(ref.acdc.circuitMetric['logit-diff'], 4);
    expect(r.circuit.faithfulness).toBeCloseTo(1, 5);
    expect(r.warnings).toEqual([]);
  });

  it('EAP-IG (kl, 5 steps) top 5 is the known circuit and faithful; a score threshold keeps the same', async () => {
    const r = await discoverCircuit(model, pairs, { method: 'eap-ig', metric: 'kl', top: 5 });
    expect(r.steps).toBe(5);
    expect(sorted(r.circuit.edges)).toEqual(sorted(ref.knownCircuit));
    const want = ref.eapIg5.kl;
    const scale = Math.max(...Object.values(want).map(Math.abs));
    for (const e of r.edges) expect(Math.abs(e.score! - want[e.edge]!)).toBeLessThan(1e-5 * scale);
    expect(r.circuit.faithfulness).toBeCloseTo(1, 5);
    // The same circuit by |score| ≥ a threshold between the 5th and 6th largest |score|.
    const sizes = r.edges.map((e) => Math.abs(e.score!)).sort((a, b) => b - a);
    const byScore = await discoverCircuit(model, pairs, {
      method: 'eap-ig',
      metric: 'kl',
      scoreThreshold: (sizes[4]! + sizes[5]!) / 2,
    });
    expect(byScore.circuit).toEqual(r.circuit);
    expect([byScore.top, byScore.scoreThreshold]).toEqual([null, (sizes[4]! + sizes[5]!) / 2]);
  });

  it("a circuit's metric is that of the run with every other edge patched", async () => {
    // Top 3 by EAP: a1.h0->logits, input->a1.h0<v> and one of the three K-composition path edges (their
    // scores tie up to float32); pruning drops it unless it is input->a1.h0<q>.
    const r = await discoverCircuit(model, pairs, { method: 'eap', metric: 'logit-diff', top: 3 });
    expect(r.circuit.edges).toEqual(
      expect.arrayContaining(['input->a1.h0<v>', 'a1.h0->logits']) as unknown as string[],
    );
    expect(r.prunedEdges).toBe(3 - r.circuit.edges.length);
    const task = await circuitTask(model, pairs, { metric: 'logit-diff' });
    const values = Float32Array.from(task.graph.edges, (e) => (r.circuit.edges.includes(e.name) ? 0 : 1));
    const [metric] = await patchedMetrics(task, values, 1);
    expect(r.circuit.metric).toBeCloseTo(metric!, 5);
    expect(r.circuit.faithfulness).toBeCloseTo(
      (metric! - task.corruptMetric) / (task.cleanMetric - task.corruptMetric),
      5,
    );
  });

  it('EAP on kl warns that its gradient vanishes at the clean run', async () => {
    const r = await discoverCircuit(model, pairs, { method: 'eap', metric: 'kl', top: 5 });
    expect(r.warnings).toHaveLength(1);
    expect(Math.max(...r.edges.map((e) => Math.abs(e.score!)))).toBeLessThan(1e-4);
  });
});

describe('pruneCircuit', () => {
  const graph = circuitGraph(model.cfg);
  const chose = (names: string[]) => graph.edges.map((e) => names.includes(e.name));

  it('drops edges off every input -> logits path and names the nodes on them', () => {
    const extra = [
      'a0.h1->logits', // a0.h1 receives nothing: it computes its corrupt output
      'input->a1.h1<q>', // a1.h1 reaches no logits
    ];
    const { inCircuit, nodes } = pruneCircuit(graph, chose([...ref.knownCircuit, ...extra]));
    expect(sorted(graph.edges.filter((_, i) => inCircuit[i]).map((e) => e.name))).toEqual(
      sorted(ref.knownCircuit),
    );
    expect(nodes).toEqual(['input', 'a0.h0', 'a1.h0', 'logits']);
    // Without a1.h0->logits nothing connects.
    const cut = pruneCircuit(graph, chose(ref.knownCircuit.filter((e) => e !== 'a1.h0->logits')));
    expect(cut.inCircuit.some(Boolean)).toBe(false);
    expect(cut.nodes).toEqual([]);
  });

  it("GQA: a KV head's k and v inputs feed its group of query heads", () => {
    const llama = HookedTransformer.load(fixtureDir('llama-tiny'), { compile: 'never' });
    const g = circuitGraph(llama.cfg); // 6 heads, 2 KV heads: KV head 1 serves heads 3..5
    const pick = (names: string[]) => g.edges.map((e) => names.includes(e.name));
    const kept = pruneCircuit(g, pick(['input->a0.h1<k>', 'a0.h4->logits']));
    expect(kept.nodes).toEqual(['input', 'a0.h4', 'logits']);
    expect(kept.inCircuit.filter(Boolean)).toHaveLength(2);
    // KV head 0 serves heads 0..2, not head 4.
    const none = pruneCircuit(g, pick(['input->a0.h0<k>', 'a0.h4->logits']));
    expect(none.inCircuit.some(Boolean)).toBe(false);
  });
});

describe('circuitListing counts the graph as by hand', () => {
  // Nodes: input, heads, MLPs, logits. Receivers: per layer q per head, k and v per KV head, the MLP;
  // then the logits. Edges: each receiver's upstream senders.
  it('gpt2-tiny: 2 layers, 4 heads, sequential MLPs', () => {
    const cfg = HookedTransformer.load(fixtureDir('gpt2-tiny'), { compile: 'never' }).cfg;
    const { counts } = circuitListing(cfg);
    // Senders: 1 + (4 + 1) * 2 = 11. Edges: layer 0 q/k/v 12 x 1, m0 5 (input + 4 heads), layer 1 q/k/v
    // 12 x 6, m1 10, logits 11.
    expect(counts).toEqual({
      nodes: 12,
      receivers: 27,
      edges: 12 + 5 + 72 + 10 + 11,
      nodesByKind: { input: 1, head: 8, mlp: 2, logits: 1 },
      receiversByKind: { q: 8, k: 8, v: 8, mlp: 2, logits: 1 },
      edgesByKind: { q: 4 + 24, k: 4 + 24, v: 4 + 24, mlp: 15, logits: 11 },
    });
  });

  it("pythia-tiny: parallel blocks, so an MLP does not receive from its layer's heads", () => {
    const cfg = HookedTransformer.load(fixtureDir('pythia-tiny'), { compile: 'never' }).cfg;
    const l = circuitListing(cfg);
    // Senders: 1 + (2 + 1) * 2 = 7. Edges: layer 0 q/k/v 6 x 1, m0 1 (input only), layer 1 q/k/v 6 x 4,
    // m1 4 (input, a0.h0, a0.h1, m0), logits 7.
    expect(l.counts.edges).toBe(6 + 1 + 24 + 4 + 7);
    expect(l.counts.edgesByKind).toEqual({ q: 10, k: 10, v: 10, mlp: 5, logits: 7 });
    expect(l.counts.nodes).toBe(8);
    expect(l.layout.parallelBlocks).toBe(true);
    expect(l.edges.filter((e) => e.target === 'm1').map((e) => e.source)).toEqual([
      'input',
      'a0.h0',
      'a0.h1',
      'm0',
    ]);
  });

  it('llama-tiny: GQA, k and v receivers per KV head', () => {
    const cfg = HookedTransformer.load(fixtureDir('llama-tiny'), { compile: 'never' }).cfg;
    const l = circuitListing(cfg);
    // 6 heads, 2 KV heads. Per layer: 6 q + 2 k + 2 v + 1 MLP receivers. Senders: 1 + (6 + 1) * 2 = 15.
    // Edges: layer 0 10 x 1, m0 7, layer 1 10 x 8, m1 14, logits 15.
    expect(l.counts).toMatchObject({
      nodes: 16,
      receivers: 23,
      edges: 10 + 7 + 80 + 14 + 15,
      receiversByKind: { q: 12, k: 4, v: 4, mlp: 2, logits: 1 },
      edgesByKind: { q: 6 + 48, k: 2 + 16, v: 2 + 16, mlp: 21, logits: 15 },
    });
    expect(l.receivers.find((r) => r.name === 'a1.h1<v>')!.feeds).toEqual(['a1.h3', 'a1.h4', 'a1.h5']);
    expect(l.edges).toHaveLength(l.counts.edges);
  });
});

describe('checkOptions', () => {
  const refused = (o: Partial<DiscoverOptions>) => {
    try {
      checkOptions({ method: 'acdc', metric: 'kl', ...o } as DiscoverOptions);
    } catch (e) {
      expect(e).toBeInstanceOf(UsageError);
      return (e as Error).message;
    }
    return null;
  };
  it('refuses options of another method, and asks for what a method needs', () => {
    expect(refused({ threshold: 0.1 })).toBeNull();
    expect(refused({ sweep: [0.1] })).toBeNull();
    expect(refused({})).toMatch(/acdc needs --threshold/);
    expect(refused({ threshold: 0.1, top: 5 })).toMatch(/--top is for eap and eap-ig, not --method acdc/);
    expect(refused({ method: 'eap', top: 5 })).toBeNull();
    expect(refused({ method: 'eap' })).toMatch(/either --top N or --score-threshold/);
    expect(refused({ method: 'eap', top: 5, scoreThreshold: 1 })).toMatch(/either --top/);
    expect(refused({ method: 'eap', top: 5, steps: 3 })).toMatch(/--steps is for eap-ig/);
    expect(refused({ method: 'eap-ig', top: 5, threshold: 1 })).toMatch(/--threshold is for acdc/);
    expect(refused({ method: 'eap-ig' as const, top: 0 })).toMatch(/--top must be a whole number/);
    expect(refused({ method: 'nope' as 'eap' })).toMatch(/unknown method 'nope'/);
  });
});
