// A circuit-discovery task: a model, its graph, clean/corrupt pairs and a metric, with what every method
// needs computed once (each batch's clean and corrupt sender outputs, clean logits, the metric's ends).
import { UsageError } from '../errors.js';
import { add, mul } from '../engine/ops/elementwise.js';
import { sum } from '../engine/ops/reduce.js';
import { reshape } from '../engine/ops/shape.js';
import { Tensor, noGrad } from '../engine/tensor.js';
import { compiledReads, lazily, realize } from '../engine/lazy.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { edgeRun, senderGroups } from './edge-run.js';
import { circuitGraph, type CircuitGraph } from './graph.js';
import { higherIsBetter, metricPositions, rowMetric, type CircuitMetric, type RowMetric } from './metric.js';
import { pairBatches, type CircuitPair, type PairBatch } from './pairs.js';

/** What a patched edge carries instead of its sender's output: the corrupt run's value, or zero. */
export type Ablation = 'corrupt' | 'zero';

export interface TaskBatch {
  batch: PairBatch;
  /** Sender outputs per sender group on the clean and the corrupt tokens, [n, pos, count, d_model]. */
  cleanSenders: Tensor[];
  corruptSenders: Tensor[];
  /** The clean run's blocks.L.hook_resid_pre per block [n, pos, d_model]: patched runs start there. */
  cleanResiduals: Tensor[];
  /** The metric on logits at every position [rows, pos, vocab]. */
  metric: RowMetric;
  /** The positions some pair scores, and the metric on logits at those only [rows, positions, vocab]. */
  positions: number[];
  metricAt: RowMetric;
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
  const pending: Tensor[] = [];
  const batches = noGrad(() =>
    pairBatches(pairs, opts.batchSize ?? 32).map((batch): TaskBatch => {
      const clean = lazily(() => edgeRun(model, batch.clean, { graph, corrupt: null }));
      const corrupt = lazily(() => edgeRun(model, batch.corrupt, { graph, corrupt: null }));
      const positions = metricPositions(opts.metric, batch);
      pending.push(clean.logits, ...clean.senders, ...corrupt.senders, ...clean.residuals);
      return {
        batch,
        cleanSenders: clean.senders,
        corruptSenders: corrupt.senders,
        cleanResiduals: clean.residuals,
        metric: rowMetric(opts.metric, batch, clean.logits),
        positions,
        metricAt: rowMetric(opts.metric, batch, clean.logits, positions),
      };
    }),
  );
  // Computed now, once: left lazy, every patched run's graph would recompute them. Compiled on first
  // sight: kernel by kernel, a large model's edge run costs many compiled runs.
  await compiledReads(() => realize(...pending));
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

/**
 * The first block a patched run must compute: that of the earliest receiver any variant patches an edge
 * into (edges are ordered by receiver, in forward order). The blocks before it are the clean run's.
 */
export function startLayer(task: CircuitTask, values: Float32Array, V: number): number {
  const { graph } = task;
  const E = graph.edges.length;
  const L = task.model.cfg.nLayers;
  let first = E;
  for (let v = 0; v < V; v++) {
    const row = values.subarray(v * E, v * E + first);
    const e = row.findIndex((x) => x !== 0);
    if (e >= 0) first = e;
  }
  // The logits' receiver reads the last block's output: start at the last block.
  return first === E ? L - 1 : Math.min(graph.receivers[graph.edges[first]!.receiver]!.layer, L - 1);
}

/**
 * Bytes one variant of a patched run starting at block `start` holds: its senders' stacked differences
 * (the earlier senders' are shared) and the per-head copies of the residual stream in a block.
 */
function bytesPerVariant(task: CircuitTask, start: number): number {
  const { cfg } = task.model;
  const rows = Math.max(...task.batches.map((b) => b.batch.pairs.length * b.batch.pairs[0]!.clean.length));
  const own = task.graph.senders.filter((s) => s.layer >= start).length;
  return rows * cfg.dModel * 4 * (2 * own + 4 * cfg.nHeads);
}

/** How many variants a patched run starting at block `start` takes at once within `budget` bytes (default 1 GiB). */
export function variantsPerRun(task: CircuitTask, start = 0, budget = 2 ** 30): number {
  return Math.max(1, Math.floor(budget / bytesPerVariant(task, start)));
}

/**
 * The metric, averaged over the pairs, of V patched runs: values[v * edges + e] is how much of edge e
 * variant v patches (1 = all). The runs start at the first block a variant patches (the clean run's
 * activations stand for the blocks before) and unembed only the scored positions. Runs in chunks of
 * variants; reads once per chunk.
 */
export async function patchedMetrics(task: CircuitTask, values: Float32Array, V: number): Promise<number[]> {
  const E = task.graph.edges.length;
  const N = task.pairs.length;
  const layer = startLayer(task, values, V);
  const chunk = variantsPerRun(task, layer);
  const first = task.graph.senders.findIndex((s) => s.layer >= layer);
  // Sender groups (the input, then per layer its heads and its MLP) before the start block are shared.
  const groups = senderGroups(task.graph);
  const out: number[] = [];
  for (let v0 = 0; v0 < V; v0 += chunk) {
    const Vc = Math.min(chunk, V - v0);
    const part = values.subarray(v0 * E, (v0 + Vc) * E);
    const total = noGrad(() =>
      lazily(() => {
        let acc: Tensor | null = null;
        for (const b of task.batches) {
          const n = b.batch.pairs.length;
          const before = b.cleanSenders.filter((_, g) => groups[g]!.first < first);
          const { logits } = edgeRun(task.model, b.batch.clean, {
            graph: task.graph,
            corrupt: task.ablation === 'corrupt' ? b.corruptSenders : null,
            patch: { values: part, variants: Vc },
            ...(layer > 0 ? { start: { layer, residual: b.cleanResiduals[layer]!, senders: before } } : {}),
            positions: b.positions,
          });
          const perVariant = mul(sum(reshape(b.metricAt(logits), [Vc, n]), 1), 1 / N);
          acc = acc ? add(acc, perVariant) : perVariant;
        }
        return acc!;
      }),
    );
    out.push(...(await compiledReads(() => total.toArray())));
  }
  return out;
}
