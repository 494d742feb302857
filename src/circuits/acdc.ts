// ACDC (Conmy et al. 2023): from the logits backwards, patch each edge in turn and drop it for good when
// the metric gets worse by less than the threshold. Tests are batched speculatively: most edges are
// dropped, so one patched run tests the next k edges of a receiver each assuming the ones before it were
// dropped; up to the first edge that is kept, every result is the one the sequential algorithm computes.
import { UsageError } from '../errors.js';
import { edgeOffsets } from './edge-run.js';
import type { CircuitGraph, Receiver } from './graph.js';
import { badness, faithfulness, patchedMetrics, variantsPerRun, type CircuitTask } from './task.js';

export interface AcdcOptions {
  threshold: number;
  /** Edges tested per patched run (default: as many as fit in memory, at most 64; more for later receivers). */
  batch?: number;
  onProgress?: (tested: number, total: number) => void;
  /**
   * Which receivers to test (default: all). The others keep every incoming edge untested (a benchmark
   * measures a slice of a large graph this way).
   */
  receivers?: (r: Receiver, index: number) => boolean;
}

export interface AcdcDecision {
  edge: string;
  /** badness(with the edge patched too) − badness(before): what dropping it costs. */
  delta: number;
  removed: boolean;
}

export interface AcdcResult {
  threshold: number;
  /** inCircuit[e] for every edge of graph.edges. */
  inCircuit: boolean[];
  /** The metric with every edge outside the circuit patched, and its faithfulness. */
  metric: number;
  faithfulness: number;
  /** Edge tests in the order ACDC made them (edges into dead nodes are dropped untested). */
  decisions: AcdcDecision[];
  /** Patched runs made (each tests up to `batch` edges). */
  runs: number;
}

export async function acdc(task: CircuitTask, opts: AcdcOptions): Promise<AcdcResult> {
  const { graph } = task;
  if (!Number.isFinite(opts.threshold) || opts.threshold < 0)
    throw new UsageError(`--threshold must be a number ≥ 0, got ${opts.threshold}`);
  const E = graph.edges.length;
  const L = task.model.cfg.nLayers;
  // A receiver's patched runs start at its block: the later the block, the more variants fit in a run.
  const batchAt = (layer: number) =>
    Math.max(1, opts.batch ?? Math.min(64, variantsPerRun(task, Math.min(layer, L - 1))));
  const offsets = edgeOffsets(graph);
  const patched = new Float32Array(E); // 1 = dropped from the circuit
  const outgoing = outgoingCounts(graph);
  const decisions: AcdcDecision[] = [];
  let current = badness(task, task.cleanMetric);
  let runs = 0;
  let tested = 0;
  for (let r = graph.receivers.length - 1; r >= 0; r--) {
    const rec = graph.receivers[r]!;
    if (opts.receivers && !opts.receivers(rec, r)) continue;
    const incoming = Array.from({ length: rec.upstream }, (_, s) => offsets[r]! + rec.upstream - 1 - s);
    if (!alive(graph, rec, outgoing)) {
      for (const e of incoming) drop(e);
      continue;
    }
    const batch = batchAt(rec.layer);
    let i = 0;
    while (i < incoming.length) {
      const trial = incoming.slice(i, i + batch);
      // Variant j drops trial[0..j] on top of the current circuit. A short trial is padded with copies
      // of its last variant: one run shape per receiver block, one compiled graph for all its runs.
      const values = new Float32Array(batch * E);
      for (let j = 0; j < batch; j++) {
        values.set(patched, j * E);
        for (let k = 0; k <= Math.min(j, trial.length - 1); k++) values[j * E + trial[k]!] = 1;
      }
      const metrics = await patchedMetrics(task, values, batch);
      runs++;
      for (let j = 0; j < trial.length; j++) {
        i++;
        tested++;
        const next = badness(task, metrics[j]!);
        const delta = next - current;
        const removed = delta < opts.threshold;
        decisions.push({ edge: graph.edges[trial[j]!]!.name, delta, removed });
        if (!removed) break;
        drop(trial[j]!);
        current = next;
      }
      opts.onProgress?.(tested, E);
    }
  }
  const [metric] = await patchedMetrics(task, patched, 1);
  return {
    threshold: opts.threshold,
    inCircuit: Array.from(patched, (p) => p === 0),
    metric: metric!,
    faithfulness: faithfulness(task, metric!),
    decisions,
    runs,
  };

  function drop(e: number): void {
    if (patched[e] === 1) return;
    patched[e] = 1;
    outgoing[graph.edges[e]!.sender]!--;
  }
}

/** Kept outgoing edges per sender (all of them at the start). */
function outgoingCounts(graph: CircuitGraph): number[] {
  const out = new Array<number>(graph.senders.length).fill(0);
  for (const e of graph.edges) out[e.sender]!++;
  return out;
}

/**
 * Whether a receiver still reaches the logits: a node it feeds has a kept outgoing edge (a KV head's k and v
 * inputs feed a group of query heads: alive while any of them is).
 */
function alive(graph: CircuitGraph, r: Receiver, outgoing: number[]): boolean {
  if (r.kind === 'logits') return true;
  return r.feeds.some((node) => outgoing[graph.senders.findIndex((s) => s.name === node)]! > 0);
}
