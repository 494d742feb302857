// Circuit discovery as every surface reports it: ACDC, EAP or EAP-IG over a task, the circuit they keep
// (pruned to what connects the input to the logits) measured by real patching, and every edge's score.
import { UsageError } from '../errors.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { acdc, type AcdcResult } from './acdc.js';
import { edgeAttribution } from './eap.js';
import type { CircuitGraph, Edge } from './graph.js';
import { higherIsBetter, type CircuitMetric } from './metric.js';
import type { CircuitPair } from './pairs.js';
import { circuitTask, faithfulness, patchedMetrics, type Ablation, type CircuitTask } from './task.js';

export const DISCOVERY_METHODS = ['acdc', 'eap', 'eap-ig'] as const;
export type DiscoveryMethod = (typeof DISCOVERY_METHODS)[number];

export function checkMethod(name: string): DiscoveryMethod {
  if (!(DISCOVERY_METHODS as readonly string[]).includes(name))
    throw new UsageError(`unknown method '${name}': use one of ${DISCOVERY_METHODS.join(', ')}`);
  return name as DiscoveryMethod;
}

/** The methods as papers write them. */
export const METHOD_NAMES: Record<DiscoveryMethod, string> = { acdc: 'ACDC', eap: 'EAP', 'eap-ig': 'EAP-IG' };

/** EAP-IG's integration steps when none are given (Hanna et al. use 5 or more). */
export const DEFAULT_IG_STEPS = 5;

export interface DiscoverOptions {
  method: DiscoveryMethod;
  metric: CircuitMetric;
  ablation?: Ablation;
  /** ACDC: drop an edge when patching it costs less than this (in metric units). */
  threshold?: number;
  /** ACDC: more thresholds, each a full run, reported in `sweep`. */
  sweep?: number[];
  /** EAP, EAP-IG: keep the N edges of largest |score| ... */
  top?: number;
  /** ... or every edge with |score| ≥ this. */
  scoreThreshold?: number;
  /** EAP-IG: integration steps (default 5). */
  steps?: number;
  /** Pairs run together. */
  batchSize?: number;
  /** `stage` names what is counted: 'acdc 0.01' (edges tested), 'eap-ig' (gradient runs). */
  onProgress?: (stage: string, done: number, total: number) => void;
}

/** One edge as reported. `score` is the metric lost by patching it, metric(kept) − metric(patched). */
export interface EdgeReport {
  edge: string;
  source: string;
  target: string;
  /** EAP/EAP-IG: the first-order estimate; ACDC: measured when tested (null: dropped untested, dead). */
  score: number | null;
  inCircuit: boolean;
}

export interface CircuitSummary {
  /** The circuit's edges, in graph order. */
  edges: string[];
  /** Its nodes: those on a path of circuit edges from the input to the logits. */
  nodes: string[];
  /** The metric with every edge outside the circuit patched, averaged over the pairs. */
  metric: number;
  /** (metric − corrupt) / (clean − corrupt). */
  faithfulness: number;
}

export interface SweepPoint extends CircuitSummary {
  threshold: number;
}

export interface DiscoveryResult {
  method: DiscoveryMethod;
  metric: CircuitMetric;
  ablation: Ablation;
  /** ACDC's threshold of the reported circuit. */
  threshold: number | null;
  top: number | null;
  scoreThreshold: number | null;
  /** Gradient runs per batch (EAP: 1). */
  steps: number | null;
  pairs: number;
  cleanMetric: number;
  corruptMetric: number;
  /** Every edge of the graph, in graph order. */
  edges: EdgeReport[];
  circuit: CircuitSummary;
  /** Edges the method kept that lie on no input → logits path (left out of the circuit). */
  prunedEdges: number;
  /** ACDC: one circuit per threshold of the sweep, in the order given. */
  sweep: SweepPoint[] | null;
  /** ACDC: patched runs made for the reported circuit. */
  runs: number | null;
  graph: { nodes: number; edges: number };
  /** Caveats about these numbers (for example a metric whose gradient vanishes at the clean run). */
  warnings: string[];
}

export async function discoverCircuit(
  model: HookedTransformer,
  pairs: CircuitPair[],
  opts: DiscoverOptions,
): Promise<DiscoveryResult> {
  checkOptions(opts);
  const task = await circuitTask(model, pairs, {
    metric: opts.metric,
    ablation: opts.ablation,
    batchSize: opts.batchSize,
  });
  return opts.method === 'acdc' ? await discoverAcdc(task, opts) : await discoverEap(task, opts);
}

/** Refuses options that do not belong to the method, before any model runs. */
export function checkOptions(opts: DiscoverOptions): void {
  const method = checkMethod(opts.method);
  const given = (k: keyof DiscoverOptions) => opts[k] !== undefined;
  const flag: Partial<Record<keyof DiscoverOptions, string>> = {
    threshold: '--threshold',
    sweep: '--sweep',
    top: '--top',
    scoreThreshold: '--score-threshold',
    steps: '--steps',
  };
  const refuse = (k: keyof DiscoverOptions, use: string) => {
    if (given(k)) throw new UsageError(`${flag[k]} is for ${use}, not --method ${method}`);
  };
  if (method === 'acdc') {
    refuse('top', 'eap and eap-ig');
    refuse('scoreThreshold', 'eap and eap-ig');
    refuse('steps', 'eap-ig');
    if (!given('threshold') && !opts.sweep?.length)
      throw new UsageError(
        'acdc needs --threshold T (drop edges whose patching costs less than T in metric units) or --sweep T1,T2,...',
      );
    for (const t of [opts.threshold, ...(opts.sweep ?? [])])
      if (t !== undefined && !(Number.isFinite(t) && t >= 0))
        throw new UsageError(`ACDC thresholds must be numbers ≥ 0, got ${t}`);
    return;
  }
  refuse('threshold', 'acdc');
  refuse('sweep', 'acdc');
  if (method === 'eap') refuse('steps', 'eap-ig (eap is one step)');
  if (given('top') === given('scoreThreshold'))
    throw new UsageError(
      `${method} keeps the top edges: give either --top N or --score-threshold T (on |score|)`,
    );
  if (given('top') && !(Number.isInteger(opts.top) && opts.top! >= 1))
    throw new UsageError(`--top must be a whole number ≥ 1, got ${opts.top}`);
  if (given('scoreThreshold') && !(Number.isFinite(opts.scoreThreshold) && opts.scoreThreshold! >= 0))
    throw new UsageError(`--score-threshold must be a number ≥ 0, got ${opts.scoreThreshold}`);
}

async function discoverAcdc(task: CircuitTask, opts: DiscoverOptions): Promise<DiscoveryResult> {
  const { graph } = task;
  const threshold = opts.threshold ?? opts.sweep![0]!;
  // One ACDC run and its measured circuit per threshold (the main one may also be in the sweep).
  const runs = new Map<number, Promise<{ acdc: AcdcResult; kept: Measured }>>();
  const run = (t: number) => {
    if (!runs.has(t))
      runs.set(
        t,
        (async () => {
          const r = await acdc(task, {
            threshold: t,
            onProgress: (done, total) => opts.onProgress?.(`acdc ${t}`, done, total),
          });
          return { acdc: r, kept: await measure(task, r.inCircuit, r.metric) };
        })(),
      );
    return runs.get(t)!;
  };
  const main = await run(threshold);
  const scores: (number | null)[] = new Array<number | null>(graph.edges.length).fill(null);
  // ACDC's delta is how much worse the metric gets; as a score, the metric lost by patching the edge.
  const sign = higherIsBetter(task.metric) ? 1 : -1;
  for (const d of main.acdc.decisions) scores[graph.index.get(d.edge)!] = sign * d.delta;
  let sweep: SweepPoint[] | null = null;
  if (opts.sweep?.length) {
    sweep = [];
    for (const t of opts.sweep) sweep.push({ threshold: t, ...(await run(t)).kept.summary });
  }
  return {
    ...header(task, opts),
    threshold,
    edges: edgeReports(graph, scores, main.kept.inCircuit),
    circuit: main.kept.summary,
    prunedEdges: main.kept.pruned,
    sweep,
    runs: main.acdc.runs,
    warnings: [],
  };
}

async function discoverEap(task: CircuitTask, opts: DiscoverOptions): Promise<DiscoveryResult> {
  const { graph } = task;
  const steps = opts.method === 'eap' ? 1 : (opts.steps ?? DEFAULT_IG_STEPS);
  const scores = await edgeAttribution(task, {
    steps,
    onProgress: (done, total) => opts.onProgress?.(opts.method, done, total),
  });
  const E = graph.edges.length;
  const chosen = new Array<boolean>(E).fill(false);
  if (opts.top !== undefined) {
    // Ties keep graph order (sort is stable).
    const order = Array.from({ length: E }, (_, i) => i).sort(
      (a, b) => Math.abs(scores[b]!) - Math.abs(scores[a]!),
    );
    for (const i of order.slice(0, opts.top)) chosen[i] = true;
  } else for (let i = 0; i < E; i++) chosen[i] = Math.abs(scores[i]!) >= opts.scoreThreshold!;
  const kept = await measure(task, chosen, null);
  const warnings: string[] = [];
  if (opts.method === 'eap' && task.metric === 'kl')
    warnings.push(
      'the gradient of kl is zero at the clean run (KL is smallest there), so EAP scores for kl are ~0 and ' +
        'rank edges by noise: use --method eap-ig, or --metric logit-diff',
    );
  return {
    ...header(task, opts),
    top: opts.top ?? null,
    scoreThreshold: opts.scoreThreshold ?? null,
    steps,
    edges: edgeReports(graph, Array.from(scores), kept.inCircuit),
    circuit: kept.summary,
    prunedEdges: kept.pruned,
    sweep: null,
    runs: null,
    warnings,
  };
}

/** The fields every method reports alike (method-specific ones null until set). */
function header(task: CircuitTask, opts: DiscoverOptions) {
  return {
    method: opts.method,
    metric: task.metric,
    ablation: task.ablation,
    threshold: null,
    top: null,
    scoreThreshold: null,
    steps: null,
    pairs: task.pairs.length,
    cleanMetric: task.cleanMetric,
    corruptMetric: task.corruptMetric,
    graph: { nodes: task.graph.nodes.length, edges: task.graph.edges.length },
  };
}

interface Measured {
  inCircuit: boolean[];
  pruned: number;
  summary: CircuitSummary;
}

/**
 * A kept edge set pruned to the input → logits paths, and its metric by real patching (every other edge
 * patched). `known` is the metric of the unpruned set when already measured (reused if pruning drops nothing).
 */
async function measure(task: CircuitTask, chosen: boolean[], known: number | null): Promise<Measured> {
  const { graph } = task;
  const { inCircuit, nodes } = pruneCircuit(graph, chosen);
  const pruned = chosen.filter(Boolean).length - inCircuit.filter(Boolean).length;
  let metric = known;
  if (metric === null || pruned > 0) {
    const values = Float32Array.from(inCircuit, (k) => (k ? 0 : 1));
    [metric] = (await patchedMetrics(task, values, 1)) as [number];
  }
  return {
    inCircuit,
    pruned,
    summary: {
      edges: graph.edges.filter((_, i) => inCircuit[i]).map((e) => e.name),
      nodes,
      metric,
      faithfulness: faithfulness(task, metric),
    },
  };
}

/**
 * Keeps the edges on a path from the input to the logits: an edge stays when its sender is reached from
 * the input and a node its receiver feeds reaches the logits, both through chosen edges. The rest change
 * nothing downstream (a node that reaches no logits) or carry what patching would (a node all of whose
 * inputs are patched computes its corrupt output). Returns the kept edges and the nodes on those paths.
 */
export function pruneCircuit(
  graph: CircuitGraph,
  chosen: boolean[],
): { inCircuit: boolean[]; nodes: string[] } {
  const feeds = graph.receivers.map((r) => r.feeds);
  const sender = (e: Edge) => graph.senders[e.sender]!.name;
  const edges = graph.edges.filter((_, i) => chosen[i]);
  // Edges run forward in graph order (by receiver), so one pass each way settles reachability.
  const fromInput = new Set<string>(['input']);
  for (const e of edges) if (fromInput.has(sender(e))) for (const n of feeds[e.receiver]!) fromInput.add(n);
  const toLogits = new Set<string>(['logits']);
  for (let i = edges.length - 1; i >= 0; i--) {
    const e = edges[i]!;
    if (feeds[e.receiver]!.some((n) => toLogits.has(n))) toLogits.add(sender(e));
  }
  const inCircuit = graph.edges.map(
    (e, i) =>
      chosen[i] === true && fromInput.has(sender(e)) && feeds[e.receiver]!.some((n) => toLogits.has(n)),
  );
  return { inCircuit, nodes: graph.nodes.filter((n) => fromInput.has(n) && toLogits.has(n)) };
}

function edgeReports(graph: CircuitGraph, scores: (number | null)[], inCircuit: boolean[]): EdgeReport[] {
  return graph.edges.map((e, i) => ({
    edge: e.name,
    source: graph.senders[e.sender]!.name,
    target: graph.receivers[e.receiver]!.name,
    score: scores[i]!,
    inCircuit: inCircuit[i]!,
  }));
}
