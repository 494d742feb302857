// ACDC: speculative batches decide exactly as the sequential algorithm, every recorded decision is what
// re-running the patched metric from the state it was made in gives, the thresholds' ends keep all that
// matters / nothing, and on the trained induction organism ACDC and EAP-IG find the induction circuit.
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { acdc, type AcdcResult } from '../../src/circuits/acdc.js';
import { edgeAttribution } from '../../src/circuits/eap.js';
import type { CircuitMetric } from '../../src/circuits/metric.js';
import type { CircuitPair } from '../../src/circuits/pairs.js';
import { badness, circuitTask, patchedMetrics, type CircuitTask } from '../../src/circuits/task.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { headScores } from '../../src/methods/heads.js';
import { inductionPairs, randomPairs } from '../helpers/circuit-pairs.js';
import { fixtureDir } from '../helpers/fixtures.js';

const induction = HookedTransformer.load(fixtureDir('induction-2l'), { compile: 'never' });
const gpt2 = HookedTransformer.load(fixtureDir('gpt2-tiny'), { compile: 'never' });
const llama = HookedTransformer.load(fixtureDir('llama-tiny'), { compile: 'never' }); // GQA: KV heads serve 3 heads
const inductionData = inductionPairs(
  induction.cfg.bosTokenId!,
  induction.cfg.vocabSize,
  [
    [8, 8],
    [8, 10],
  ],
  5,
);

const SETUPS: [string, HookedTransformer, CircuitPair[], CircuitMetric, number][] = [
  // Fewer pairs than the circuit check below: these tests make many patched runs.
  ['induction-2l', induction, inductionData.filter((_, i) => i % 2 === 0), 'loss', 0.1],
  ['gpt2-tiny', gpt2, randomPairs(gpt2.cfg.vocabSize, 11), 'logit-diff', 0.02],
  ['llama-tiny', llama, randomPairs(llama.cfg.vocabSize, 13), 'loss', 0.005],
];

/**
 * Re-runs every decision of an ACDC result from the state it was made in (edges it had dropped before,
 * and the untested edges of receivers it had passed): the metric with and without the edge patched.
 * Also checks that untested edges go into nodes nothing in the circuit reads.
 */
async function replay(task: CircuitTask, r: AcdcResult): Promise<number[]> {
  const { graph } = task;
  const E = graph.edges.length;
  const index = new Map(graph.edges.map((e, i) => [e.name, i] as const));
  const tested = new Set(r.decisions.map((d) => index.get(d.edge)!));
  const untested = graph.edges.map((_, i) => i).filter((i) => !tested.has(i));
  for (const e of untested) expect(r.inCircuit[e]).toBe(false);
  const group = task.model.cfg.nHeads / task.model.cfg.nKvHeads;
  const reads = (node: string) =>
    graph.edges.some((e, i) => r.inCircuit[i] && graph.senders[e.sender]!.name === node);
  for (const e of untested) {
    const rec = graph.receivers[graph.edges[e]!.receiver]!;
    const nodes =
      rec.kind === 'k' || rec.kind === 'v'
        ? Array.from({ length: group }, (_, j) => `a${rec.layer}.h${rec.head! * group + j}`)
        : [rec.node];
    expect(nodes.some(reads), `${graph.edges[e]!.name} was dropped untested`).toBe(false);
  }
  // Variant 2i: the state before decision i; 2i+1: with its edge patched too.
  const values = new Float32Array(2 * r.decisions.length * E);
  const dropped = new Set<number>();
  r.decisions.forEach((d, i) => {
    const e = index.get(d.edge)!;
    const receiver = graph.edges[e]!.receiver;
    for (const u of untested) if (graph.edges[u]!.receiver > receiver) dropped.add(u);
    for (const x of dropped) {
      values[2 * i * E + x] = 1;
      values[(2 * i + 1) * E + x] = 1;
    }
    values[(2 * i + 1) * E + e] = 1;
    if (d.removed) dropped.add(e);
  });
  // In runs of 32 variants: patched runs of many more variants get slower per variant on induction-2l
  // (its logits, V·n·pos·vocab, are not counted by variantsPerRun).
  const m: number[] = [];
  for (let v = 0; v < 2 * r.decisions.length; v += 32) {
    const V = Math.min(32, 2 * r.decisions.length - v);
    m.push(...(await patchedMetrics(task, values.subarray(v * E, (v + V) * E), V)));
  }
  return r.decisions.map((_, i) => badness(task, m[2 * i + 1]!) - badness(task, m[2 * i]!));
}

describe.each(SETUPS)('ACDC on %s', (_name, model, pairs, metric, threshold) => {
  const taskP = circuitTask(model, pairs, { metric });

  it('speculative batches make exactly the decisions of one edge per run', async () => {
    const task = await taskP;
    const seq = await acdc(task, { threshold, batch: 1 });
    const fast = await acdc(task, { threshold });
    expect(fast.runs).toBeLessThan(seq.runs);
    expect(fast.decisions.map((d) => [d.edge, d.removed])).toEqual(
      seq.decisions.map((d) => [d.edge, d.removed]),
    );
    fast.decisions.forEach((d, i) => expect(d.delta).toBeCloseTo(seq.decisions[i]!.delta, 5));
    expect(fast.inCircuit).toEqual(seq.inCircuit);
    expect(fast.metric).toBeCloseTo(seq.metric, 5);
    // Both kept something and dropped something: the comparison says something.
    expect(seq.inCircuit.filter(Boolean).length).toBeGreaterThan(2);
    expect(seq.decisions.filter((d) => d.removed).length).toBeGreaterThan(2);
  });

  it('threshold 0 keeps exactly the edges whose removal makes the metric worse, as re-run from its state', async () => {
    const task = await taskP;
    const r = await acdc(task, { threshold: 0 });
    const deltas = await replay(task, r);
    const scale = Math.abs(task.cleanMetric - task.corruptMetric);
    r.decisions.forEach((d, i) => {
      expect(Math.abs(d.delta - deltas[i]!), d.edge).toBeLessThan(1e-5 * scale);
      // Away from the threshold the re-run decides the same (float noise may flip a delta of ~0).
      if (Math.abs(deltas[i]!) > 1e-5 * scale) expect(d.removed, d.edge).toBe(deltas[i]! < 0);
    });
    expect(r.decisions.some((d) => !d.removed)).toBe(true);
    const [circuit] = await patchedMetrics(
      task,
      Float32Array.from(r.inCircuit, (k) => (k ? 0 : 1)),
      1,
    );
    expect(r.metric).toBeCloseTo(circuit!, 5);
  });

  it('a huge threshold keeps nothing: only the edges into the logits are tested', async () => {
    const task = await taskP;
    const r = await acdc(task, { threshold: 1e9 });
    expect(r.inCircuit.some(Boolean)).toBe(false);
    const intoLogits = task.graph.edges.filter((e) => task.graph.receivers[e.receiver]!.kind === 'logits');
    expect(r.decisions.map((d) => d.edge).sort()).toEqual(intoLogits.map((e) => e.name).sort());
    expect(r.metric).toBeCloseTo(task.corruptMetric, 5);
    expect(r.faithfulness).toBeCloseTo(0, 5);
  });
});

describe('the induction organism (test/fixtures/induction-2l)', () => {
  it('ACDC and EAP-IG (kl and loss over the second half) keep prev-token head -> induction head <k> and induction heads -> logits', async () => {
    // The heads by their scores on repeated random tokens, relative to the best of each kind.
    const s = await headScores(induction, { seqLen: 20, batch: 8, seed: 1 });
    const strong = (xs: number[]) => xs.flatMap((x, h) => (x >= Math.max(...xs) / 2 ? [h] : []));
    const prev = strong(s.previousToken[0]!);
    const ind = strong(s.induction[1]!);
    expect(prev).toEqual([1, 2]); // as the fixture's README says: L0H1, L0H2
    expect(ind.length).toBeGreaterThanOrEqual(2);
    const named = [
      ...prev.flatMap((p) => ind.map((i) => `a0.h${p}->a1.h${i}<k>`)),
      ...ind.map((i) => `a1.h${i}->logits`),
    ];
    for (const [metric, threshold] of [
      ['kl', 0.03],
      ['loss', 0.1],
    ] as const) {
      const task = await circuitTask(induction, inductionData, { metric });
      const r = await acdc(task, { threshold });
      const kept = new Set(task.graph.edges.filter((_, e) => r.inCircuit[e]).map((e) => e.name));
      for (const e of named) expect(kept.has(e), `ACDC (${metric}) keeps ${e}`).toBe(true);
      expect(r.faithfulness, metric).toBeGreaterThan(0.8);
      expect(kept.size).toBeLessThan(task.graph.edges.length / 2);
      // EAP-IG keeps as many edges as ACDC did, the largest |score|.
      const ig = await edgeAttribution(task, { steps: 5 });
      const top = new Set(
        Array.from(ig.keys())
          .sort((a, b) => Math.abs(ig[b]!) - Math.abs(ig[a]!))
          .slice(0, kept.size)
          .map((e) => task.graph.edges[e]!.name),
      );
      for (const e of named) expect(top.has(e), `EAP-IG (${metric}) keeps ${e}`).toBe(true);
    }
  });
});
