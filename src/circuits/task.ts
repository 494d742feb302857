// A circuit-discovery task: a model, its graph, clean/corrupt pairs and a metric, with what every method
// needs computed once (each batch's clean and corrupt sender outputs, clean logits, the metric's ends).
import { UsageError } from '../errors.js';
import { add, mul } from '../engine/ops/elementwise.js';
import { sum } from '../engine/ops/reduce.js';
import { reshape } from '../engine/ops/shape.js';
import { Tensor, noGrad } from '../engine/tensor.js';
import { lazily } from '../engine/lazy.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { edgeRun } from './edge-run.js';
import { circuitGraph, type CircuitGraph } from './graph.js';
import { higherIsBetter, rowMetric, type CircuitMetric, type RowMetric } from './metric.js';
import { pairBatches, type CircuitPair, type PairBatch } from './pairs.js';

/** What a patched edge carries instead of its sender's output: the corrupt run's value, or zero. */
export type Ablation = 'corrupt' | 'zero';

export interface TaskBatch {
  batch: PairBatch;
  /** Sender outputs per sender group on the clean and the corrupt tokens, [n, pos, count, d_model]. */
  cleanSenders: Tensor[];
  corruptSenders: Tensor[];
  metric: RowMetric;
}

export interface CircuitTask {
  model: HookedTransformer;
  graph: CircuitGraph;
  metric: CircuitMetric;
  ablation: Ablation;
  pairs: CircuitPair[];
  batches: TaskBatch[];
  /** The metric of the clean run and of the run with every edge patched, averaged over the pairs. */
  cleanMetric: number;
  corruptMetric: number;
}

export interface TaskOptions {
  metric: CircuitMetric;
  ablation?: Ablation;
  /** Pairs run together (default 32). */
  batchSize?: number;
}

export async function circuitTask(
  model: HookedTransformer,
  pairs: CircuitPair[],
  opts: TaskOptions,
): Promise<CircuitTask> {
  const graph = circuitGraph(model.cfg);
  const ablation = opts.ablation ?? 'corrupt';
  if (ablation !== 'corrupt' && ablation !== 'zero')
    throw new UsageError(`unknown ablation '${String(ablation)}': use corrupt or zero`);
  const batches = noGrad(() =>
    pairBatches(pairs, opts.batchSize ?? 32).map((batch): TaskBatch => {
      const clean = lazily(() => edgeRun(model, batch.clean, { graph, corrupt: null }));
      const corrupt = lazily(() => edgeRun(model, batch.corrupt, { graph, corrupt: null }));
      return {
        batch,
        cleanSenders: clean.senders,
        corruptSenders: corrupt.senders,
        metric: rowMetric(opts.metric, batch, clean.logits),
      };
    }),
  );
  const task: CircuitTask = {
    model,
    graph,
    metric: opts.metric,
    ablation,
    pairs,
    batches,
    cleanMetric: 0,
    corruptMetric: 0,
  };
  const E = graph.edges.length;
  const ends = new Float32Array(2 * E);
  ends.fill(1, E);
  const [clean, corrupt] = await patchedMetrics(task, ends, 2);
  task.cleanMetric = clean!;
  task.corruptMetric = corrupt!;
  if (!(Math.abs(task.cleanMetric - task.corruptMetric) > 1e-9))
    throw new UsageError(
      `the metric is the same with and without every edge patched (${task.cleanMetric}): these pairs give the circuit nothing to explain`,
    );
  return task;
}

/** The metric a run gives when lower is better (kl, loss) or minus it (logit-diff): ACDC minimises it. */
export function badness(task: CircuitTask, metric: number): number {
  return higherIsBetter(task.metric) ? -metric : metric;
}

/** (m − corrupt) / (clean − corrupt): 1 = the clean model's metric, 0 = every edge patched. */
export function faithfulness(task: CircuitTask, metric: number): number {
  return (metric - task.corruptMetric) / (task.cleanMetric - task.corruptMetric);
}

/** Bytes one variant of a patched run holds in its stacked sender differences (to size batches). */
function bytesPerVariant(task: CircuitTask): number {
  const { cfg } = task.model;
  const rows = Math.max(...task.batches.map((b) => b.batch.pairs.length * b.batch.pairs[0]!.clean.length));
  return rows * cfg.dModel * task.graph.senders.length * 4 * 2;
}

/** How many variants a patched run takes at once within `budget` bytes (default 256 MiB). */
export function variantsPerRun(task: CircuitTask, budget = 256 * 2 ** 20): number {
  return Math.max(1, Math.floor(budget / bytesPerVariant(task)));
}

/**
 * The metric, averaged over the pairs, of V patched runs: values[v * edges + e] is how much of edge e
 * variant v patches (1 = all). Runs in chunks of variants; reads once per chunk.
 */
export async function patchedMetrics(task: CircuitTask, values: Float32Array, V: number): Promise<number[]> {
  const E = task.graph.edges.length;
  const N = task.pairs.length;
  const chunk = variantsPerRun(task);
  const out: number[] = [];
  for (let v0 = 0; v0 < V; v0 += chunk) {
    const Vc = Math.min(chunk, V - v0);
    const part = values.subarray(v0 * E, (v0 + Vc) * E);
    const total = noGrad(() =>
      lazily(() => {
        let acc: Tensor | null = null;
        for (const b of task.batches) {
          const n = b.batch.pairs.length;
          const { logits } = edgeRun(task.model, b.batch.clean, {
            graph: task.graph,
            corrupt: task.ablation === 'corrupt' ? b.corruptSenders : null,
            patch: { values: part, variants: Vc },
          });
          const perVariant = mul(sum(reshape(b.metric(logits), [Vc, n]), 1), 1 / N);
          acc = acc ? add(acc, perVariant) : perVariant;
        }
        return acc!;
      }),
    );
    out.push(...(await total.toArray()));
  }
  return out;
}
