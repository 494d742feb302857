// Patched runs take shortcuts (they start at the first patched block on the clean run's activations,
// share the earlier senders' differences between variants, unembed only the scored positions): each
// must give what the plain edge run gives, and the hand-set fixture's float64 reference.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { noGrad } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { acdc } from '../../src/circuits/acdc.js';
import { edgeAttribution } from '../../src/circuits/eap.js';
import { edgeRun } from '../../src/circuits/edge-run.js';
import type { CircuitMetric } from '../../src/circuits/metric.js';
import { readPairs, toPairs } from '../../src/circuits/pairs.js';
import { circuitTask, patchedMetrics, startLayer, type CircuitTask } from '../../src/circuits/task.js';
import { ARCHITECTURE_FIXTURES, fixtureDir } from '../helpers/fixtures.js';

/** The metric of each variant by the plain route: a full edge run per variant, logits at every position. */
async function plainMetrics(task: CircuitTask, values: Float32Array, V: number): Promise<number[]> {
  const E = task.graph.edges.length;
  const out: number[] = [];
  for (let v = 0; v < V; v++) {
    let total = 0;
    for (const b of task.batches) {
      const rows = noGrad(() =>
        b.metric(
          edgeRun(task.model, b.batch.clean, {
            graph: task.graph,
            corrupt: task.ablation === 'corrupt' ? b.corruptSenders : null,
            patch: { values: values.slice(v * E, (v + 1) * E), variants: 1 },
          }).logits,
        ),
      );
      total += (await rows.f32()).reduce((s, x) => s + x, 0);
    }
    out.push(total / task.pairs.length);
  }
  return out;
}

/** Seeded edge sets: variant v patches random edges into receivers from block `from[v]` on. */
function randomSets(task: CircuitTask, from: number[]): Float32Array {
  const { graph } = task;
  const E = graph.edges.length;
  const values = new Float32Array(from.length * E);
  let s = 7;
  const rand = () => ((s = (s * 48271) % 2147483647), s / 2147483647);
  from.forEach((layer, v) =>
    graph.edges.forEach((e, i) => {
      if (graph.receivers[e.receiver]!.layer >= layer && rand() < 0.3)
        values[v * E + i] = rand() < 0.8 ? 1 : 0.5;
    }),
  );
  return values;
}

const PAIRS = [
  { clean_ids: [3, 17, 9, 22, 5, 40, 11], corrupt_ids: [3, 17, 9, 25, 5, 41, 11], answer: 7, wrong: 12 },
  { clean_ids: [8, 1, 30, 12, 7, 2, 19], corrupt_ids: [8, 6, 30, 12, 33, 2, 19], answer: 4, wrong: 9 },
  { clean_ids: [5, 6, 2, 28], corrupt_ids: [5, 6, 3, 28], answer: 1, wrong: 2, positions: [1, 2] },
];

describe.each(ARCHITECTURE_FIXTURES)('patched runs on %s', (name) => {
  const model = HookedTransformer.load(fixtureDir(name), { compile: 'never' });
  const pairs = toPairs(model, PAIRS);
  const L = model.cfg.nLayers;

  it.each([
    ['kl', 'corrupt'],
    ['logit-diff', 'corrupt'],
    ['loss', 'zero'],
  ] as const)('%s, %s ablation: equal to a full edge run per variant', async (metric, ablation) => {
    const task = await circuitTask(model, pairs, { metric, ablation });
    // Variants from the first block on (a full run) and from the last block on (the shortcut).
    const early = randomSets(task, [0, 1]);
    const late = randomSets(task, [L - 1, L]);
    expect(startLayer(task, early, 2)).toBe(0);
    expect(startLayer(task, late, 2)).toBe(L - 1);
    for (const values of [early, late]) {
      const fast = await patchedMetrics(task, values, 2);
      const plain = await plainMetrics(task, values, 2);
      const scale = Math.abs(task.cleanMetric - task.corruptMetric);
      fast.forEach((m, v) => expect(Math.abs(m - plain[v]!)).toBeLessThan(1e-4 * scale + 1e-6));
      // The patched variants differ from the clean run (the check is not vacuous).
      expect(Math.max(...plain.map((m) => Math.abs(m - task.cleanMetric)))).toBeGreaterThan(1e-3 * scale);
    }
  });
});

interface Reference {
  edges: string[];
  effects: Record<CircuitMetric, Record<string, number>>;
  effectsZero: Record<CircuitMetric, Record<string, number>>;
  eap: Record<CircuitMetric, Record<string, number>>;
  eapIg5: Record<CircuitMetric, Record<string, number>>;
  cleanMetric: Record<CircuitMetric, number>;
  acdc: {
    threshold: number;
    edges: string[];
    decisions: { edge: string; removed: boolean; delta: number }[];
  };
}

describe('patched runs on the hand-set induction circuit, against its float64 reference', () => {
  const DIR = fixtureDir('circuit-induction-handset');
  const ref = JSON.parse(fs.readFileSync(path.join(DIR, 'reference.json'), 'utf8')) as Reference;
  const model = HookedTransformer.load(DIR, { compile: 'never' });
  const pairs = readPairs(model, path.join(DIR, 'data.jsonl'));

  it.each([
    ['kl', 'corrupt'],
    ['logit-diff', 'corrupt'],
    ['logit-diff', 'zero'],
  ] as const)('each edge patched alone: %s, %s ablation', async (metric, ablation) => {
    const task = await circuitTask(model, pairs, { metric, ablation });
    const E = task.graph.edges.length;
    const values = new Float32Array(E * E);
    for (let e = 0; e < E; e++) values[e * E + e] = 1;
    const metrics = await patchedMetrics(task, values, E);
    const want = (ablation === 'zero' ? ref.effectsZero : ref.effects)[metric];
    task.graph.edges.forEach((e, i) => expect(metrics[i]! - task.cleanMetric).toBeCloseTo(want[e.name]!, 4));
  });

  it('EAP and EAP-IG (5 steps), kl and logit-diff', async () => {
    for (const metric of ['kl', 'logit-diff'] as const) {
      const task = await circuitTask(model, pairs, { metric });
      const eap = await edgeAttribution(task);
      const ig = await edgeAttribution(task, { steps: 5 });
      task.graph.edges.forEach((e, i) => {
        expect(eap[i]!).toBeCloseTo(ref.eap[metric][e.name]!, 4);
        expect(ig[i]!).toBeCloseTo(ref.eapIg5[metric][e.name]!, 4);
      });
    }
  });

  it.each([1, 3, undefined])('ACDC (batch %s) keeps exactly the known circuit', async (batch) => {
    const task = await circuitTask(model, pairs, { metric: 'kl' });
    const r = await acdc(task, { threshold: ref.acdc.threshold, batch });
    const kept = task.graph.edges.filter((_, i) => r.inCircuit[i]).map((e) => e.name);
    expect(kept.sort()).toEqual([...ref.acdc.edges].sort());
    // Sonde drops edges into dead nodes untested; every edge it tests, it decides as the reference.
    const refRemoved = new Map(ref.acdc.decisions.map((d) => [d.edge, d.removed] as const));
    expect(r.decisions.length).toBeGreaterThan(10);
    for (const d of r.decisions) expect([d.edge, d.removed]).toEqual([d.edge, refRemoved.get(d.edge)]);
  });
});
