// Sonde's circuit methods against the float64 reference of the hand-set induction transformer
// (scripts/reference/make_circuit_fixture.py): per-edge patching effects, EAP, EAP-IG and ACDC, and that
// EAP/EAP-IG rank the circuit it was built with above every other edge.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { acdc } from '../../src/circuits/acdc.js';
import { edgeAttribution } from '../../src/circuits/eap.js';
import type { CircuitMetric } from '../../src/circuits/metric.js';
import { readPairs } from '../../src/circuits/pairs.js';
import { circuitTask, patchedMetrics, type Ablation, type CircuitTask } from '../../src/circuits/task.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { fixtureDir } from '../helpers/fixtures.js';
import { rocAuc } from '../helpers/roc-auc.js';

type Metric = 'kl' | 'logit-diff';
type PerEdge = Record<Metric, Record<string, number>>;

interface Reference {
  edges: string[];
  cleanMetric: Record<Metric, number>;
  corruptMetric: Record<Metric, number>;
  /** metric(edge patched) − metric(clean), per ablation. */
  effects: PerEdge;
  effectsZero: PerEdge;
  eap: PerEdge;
  eapIg5: PerEdge;
  knownCircuit: string[];
  /** With zero ablation a0.h0 also needs its own q and k inputs (its attention pattern). */
  knownCircuitZero: string[];
  acdc: {
    metric: Metric;
    threshold: number;
    edges: string[];
    circuitMetric: Record<Metric, number>;
    decisions: { edge: string; removed: boolean; delta?: number; reason?: string }[];
  };
}

const DIR = fixtureDir('circuit-induction-handset');
const ref = JSON.parse(fs.readFileSync(path.join(DIR, 'reference.json'), 'utf8')) as Reference;
const METRICS: Metric[] = ['kl', 'logit-diff'];
/** Float32 against float64 on metrics up to ~14 (max errors seen: 6e-7 for effects, 3e-6 for EAP). */
const TOL = 2e-5;

describe('circuit methods on the hand-set induction transformer match the float64 reference', () => {
  const model = HookedTransformer.load(DIR, { compile: 'never' });
  const pairs = readPairs(model, path.join(DIR, 'data.jsonl'));
  const tasks = new Map<string, Promise<CircuitTask>>();
  const task = (metric: CircuitMetric, ablation: Ablation = 'corrupt') => {
    const key = `${metric}|${ablation}`;
    if (!tasks.has(key)) tasks.set(key, circuitTask(model, pairs, { metric, ablation }));
    return tasks.get(key)!;
  };
  const attributions = new Map<string, Promise<Float32Array>>();
  const eap = (metric: CircuitMetric, steps: number) => {
    const key = `${metric}|${steps}`;
    if (!attributions.has(key))
      attributions.set(
        key,
        task(metric).then((t) => edgeAttribution(t, { steps })),
      );
    return attributions.get(key)!;
  };
  const known = (names: string[]) => ref.edges.map((e) => names.includes(e));

  it('has the reference graph, edge for edge, and its clean and corrupt metrics', async () => {
    for (const metric of METRICS) {
      const t = await task(metric);
      expect(t.graph.edges.map((e) => e.name)).toEqual(ref.edges);
      expect(t.cleanMetric).toBeCloseTo(ref.cleanMetric[metric], 4);
      expect(t.corruptMetric).toBeCloseTo(ref.corruptMetric[metric], 4);
    }
  });

  it.each([
    ['corrupt', 'effects'],
    ['zero', 'effectsZero'],
  ] as const)(
    'patching one edge at a time (%s ablation) changes the metric as in the reference',
    async (ablation, key) => {
      for (const metric of METRICS) {
        const t = await task(metric, ablation);
        const E = ref.edges.length;
        // Variant e patches edge e alone: one patched run for the whole sweep.
        const values = new Float32Array(E * E);
        for (let e = 0; e < E; e++) values[e * E + e] = 1;
        const got = await patchedMetrics(t, values, E);
        const diffs = ref.edges.map((name, e) => Math.abs(got[e]! - t.cleanMetric - ref[key][metric][name]!));
        expect(Math.max(...diffs), `${metric}, ${ablation}`).toBeLessThan(TOL);
      }
    },
  );

  it.each([
    [1, 'eap'],
    [5, 'eapIg5'],
  ] as const)('edge attribution with %i step(s) gives the reference scores', async (steps, key) => {
    for (const metric of METRICS) {
      const scores = await eap(metric, steps);
      const diffs = ref.edges.map((name, e) => Math.abs(scores[e]! - ref[key][metric][name]!));
      expect(Math.max(...diffs), `${metric}, ${steps} steps`).toBeLessThan(TOL);
    }
  });

  it('ACDC at the reference threshold keeps exactly the known circuit, deciding as the reference does', async () => {
    const { metric, threshold } = ref.acdc;
    expect(ref.acdc.edges.slice().sort()).toEqual(ref.knownCircuit.slice().sort());
    const t = await task(metric);
    for (const batch of [1, undefined]) {
      const r = await acdc(t, { threshold, batch });
      expect(ref.edges.filter((_, e) => r.inCircuit[e])).toEqual(
        ref.edges.filter((e) => ref.knownCircuit.includes(e)),
      );
      // Sonde records tested edges only; the reference also lists edges into dead nodes ('unused').
      const tested = ref.acdc.decisions.filter((d) => d.reason !== 'unused');
      expect(r.decisions.map((d) => [d.edge, d.removed])).toEqual(tested.map((d) => [d.edge, d.removed]));
      r.decisions.forEach((d, i) => expect(Math.abs(d.delta - tested[i]!.delta!), d.edge).toBeLessThan(TOL));
      expect(r.metric).toBeCloseTo(ref.acdc.circuitMetric[metric], 4);
      expect(r.faithfulness).toBeCloseTo(1, 4);
    }
  });

  it('ACDC with zero ablation keeps exactly the zero-ablation circuit', async () => {
    const r = await acdc(await task('kl', 'zero'), { threshold: ref.acdc.threshold });
    expect(ref.edges.filter((_, e) => r.inCircuit[e])).toEqual(
      ref.edges.filter((e) => ref.knownCircuitZero.includes(e)),
    );
    expect(r.faithfulness).toBeCloseTo(1, 4);
  });

  it('rocAuc counts ordered pairs, ties as half', () => {
    expect(rocAuc([3, 2, 1], [true, false, false])).toBe(1);
    expect(rocAuc([1, 2, 3], [true, false, false])).toBe(0);
    expect(rocAuc([2, 2, 1, 3], [true, false, false, true])).toBe(0.875);
  });

  it('|EAP| (logit-diff) and |EAP-IG| (kl, logit-diff) rank the known circuit above every other edge', async () => {
    const positive = known(ref.knownCircuit);
    const cases: [CircuitMetric, number][] = [
      ['logit-diff', 1],
      ['logit-diff', 5],
      ['kl', 5],
    ];
    for (const [metric, steps] of cases) {
      const scores = await eap(metric, steps);
      expect(rocAuc(scores.map(Math.abs), positive), `${metric}, ${steps} steps`).toBe(1);
    }
    // The reference's own float64 scores agree (the fixture is what the claim rests on).
    expect(
      rocAuc(
        ref.edges.map((e) => Math.abs(ref.eapIg5.kl[e]!)),
        positive,
      ),
    ).toBe(1);
  });
});
