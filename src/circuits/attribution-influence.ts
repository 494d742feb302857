// Influence on the logits through an attribution graph, pruning, and the graph's replacement and completeness
// scores, as circuit-tracer defines them. The adjacency is normalised per target (|A| over each row's sum), so
// a row says what fraction of a node's direct input each source gives; influence is the logit probabilities
// pushed back through every path: w·(Â + Â² + ...). A graph is a DAG whose longest path has nLayers + 1
// edges, so the series stops there exactly.
import { UsageError } from '../errors.js';
import { abs, add, div, maximum, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { reshape, slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import { errorNode, logitNode, tokenNode, type AttributionGraph } from './attribution-graph.js';

/** |A| with each row divided by its sum (rows summing to 0 stay 0). */
function normalized(A: Tensor): Tensor {
  const a = abs(A);
  return div(a, maximum(sum(a, 1, true), Tensor.scalar(1e-10)));
}

/** w·(Â + Â² + ... + Â^depth) for a row vector w [1, n]. */
function influenceOf(An: Tensor, w: Tensor, depth: number): Tensor {
  let cur = matmul(w, An);
  let total = cur;
  for (let i = 1; i < depth; i++) {
    cur = matmul(cur, An);
    total = add(total, cur);
  }
  return total;
}

const adjacencyTensor = (g: AttributionGraph) => new Tensor(g.adjacency, [g.n, g.n]);
/** The logit probabilities on the logit nodes, 0 elsewhere: [1, n]. */
function logitWeights(g: AttributionGraph): Tensor {
  const w = new Float32Array(g.n);
  g.logits.forEach((l, k) => (w[logitNode(g, k)] = l.prob));
  return new Tensor(w, [1, g.n]);
}
/** Paths have at most nLayers + 1 edges (token → layer 0 → ... → layer L-1 → logit). */
const depthOf = (g: AttributionGraph) => g.nLayers + 1;

/** Every node's influence on the logits (indirect, through all paths). */
export async function nodeInfluence(g: AttributionGraph): Promise<Float32Array> {
  return influenceOf(normalized(adjacencyTensor(g)), logitWeights(g), depthOf(g)).f32();
}

/** The smallest score among the top scores that together hold `fraction` of the total (circuit-tracer's). */
export function thresholdFor(scores: ArrayLike<number>, fraction: number): number {
  const sorted = Float64Array.from(scores).sort().reverse();
  let total = 0;
  for (const s of sorted) total += s;
  let acc = 0;
  for (let i = 0; i < sorted.length; i++) {
    acc += sorted[i]!;
    if (acc / total >= fraction) return sorted[i]!;
  }
  return sorted[sorted.length - 1] ?? 0;
}

export interface PrunedGraph {
  /** Per node: kept. */
  nodes: Uint8Array;
  /** Per adjacency entry (target · n + source): kept. */
  edges: Uint8Array;
  /** Per node: the fraction of all influence held by the nodes at least as influential (circuit-tracer's). */
  cumulativeInfluence: Float32Array;
}

/**
 * Keeps the nodes holding `nodeThreshold` of the influence on the logits (tokens and logits always), then
 * the edges of the graph among them holding `edgeThreshold` of the edge influence, then drops feature and
 * error nodes left without outgoing edges, and features without incoming ones, until nothing changes.
 */
export async function pruneGraph(
  g: AttributionGraph,
  nodeThreshold = 0.8,
  edgeThreshold = 0.98,
): Promise<PrunedGraph> {
  for (const [name, v] of [
    ['node threshold', nodeThreshold],
    ['edge threshold', edgeThreshold],
  ] as const)
    if (!(v >= 0 && v <= 1)) throw new UsageError(`the ${name} must be in [0, 1], got ${v}`);
  const n = g.n;
  const nFeat = g.features.length;
  const firstToken = tokenNode(g, 0);
  const influence = await nodeInfluence(g);
  const t = thresholdFor(influence, nodeThreshold);
  const nodes = new Uint8Array(n);
  for (let i = 0; i < n; i++) nodes[i] = i >= firstToken || influence[i]! >= t ? 1 : 0;

  // Edge influence on the graph restricted to the kept nodes.
  const keep = new Tensor(Float32Array.from(nodes), [n]);
  const pruned = mul(adjacencyTensor(g), mul(reshape(keep, [n, 1]), reshape(keep, [1, n])));
  const An = normalized(pruned);
  const w = logitWeights(g);
  const rowWeight = reshape(add(influenceOf(An, w, depthOf(g)), w), [n, 1]);
  const scores = await mul(An, rowWeight).f32();
  const te = thresholdFor(scores, edgeThreshold);
  const edges = new Uint8Array(n * n);
  for (let i = 0; i < n * n; i++) edges[i] = scores[i]! >= te && scores[i]! > 0 ? 1 : 0;

  // Features and errors need an outgoing edge, features an incoming one; dropping one can strand others.
  for (let changed = true; changed;) {
    changed = false;
    for (let i = 0; i < firstToken; i++) {
      if (!nodes[i]) continue;
      let out = false;
      for (let r = 0; r < n && !out; r++) out = edges[r * n + i] === 1;
      let inc = i >= nFeat;
      for (let c = 0; c < n && !inc; c++) inc = edges[i * n + c] === 1;
      if (!out || !inc) {
        nodes[i] = 0;
        changed = true;
        for (let k = 0; k < n; k++) edges[i * n + k] = edges[k * n + i] = 0;
      }
    }
  }

  const order = Array.from(influence.keys()).sort((a, b) => influence[b]! - influence[a]!);
  let total = 0;
  for (const v of influence) total += v;
  const cumulativeInfluence = new Float32Array(n);
  let acc = 0;
  for (const i of order) cumulativeInfluence[i] = (acc += influence[i]!) / total;
  return { nodes, edges, cumulativeInfluence };
}

export interface GraphScores {
  /** Of the influence the tokens and error nodes have on the logits, the tokens' share. */
  replacement: number;
  /** Of all nodes' direct input (weighted by the node's influence on the logits), the share not from errors. */
  completeness: number;
}

/** circuit-tracer's replacement and completeness scores of the (unpruned) graph. */
export async function graphScores(g: AttributionGraph): Promise<GraphScores> {
  const An = normalized(adjacencyTensor(g));
  const w = logitWeights(g);
  const infl = influenceOf(An, w, depthOf(g)); // [1, n]
  const e0 = errorNode(g, 0, 0);
  const t0 = tokenNode(g, 0);
  const part = (x: Tensor, a: number, b: number) => sum(slice(x, 1, a, b));
  const tokenInfl = part(infl, t0, t0 + g.nPos);
  const errorInfl = part(infl, e0, t0);
  const replacement = div(tokenInfl, add(tokenInfl, errorInfl));
  const fromErrors = sum(slice(An, 1, e0, t0), 1, true); // [n, 1]
  const outInfl = add(infl, w); // [1, n]
  const completeness = div(sum(matmul(outInfl, sub(Tensor.scalar(1), fromErrors))), sum(outInfl));
  return { replacement: await replacement.item(), completeness: await completeness.item() };
}

/** A path of kept edges into a logit: node indices from a token or error node to the logit. */
export interface GraphPath {
  nodes: number[];
  /** Product along the path of each edge's share of its target's input (normalised |weight|). */
  strength: number;
}

/**
 * The k strongest paths of the pruned graph from a token or error node into logit node `logit`: the paths of
 * kept edges with the largest products of normalised edge weights (k best per node, by dynamic programming
 * from the logit backwards).
 */
export async function strongestPaths(
  g: AttributionGraph,
  p: PrunedGraph,
  logit: number,
  k = 5,
): Promise<GraphPath[]> {
  const n = g.n;
  const kept = mul(adjacencyTensor(g), new Tensor(Float32Array.from(p.edges), [n, n]));
  const An = await normalized(kept).f32();
  // best[s]: s's k strongest continuations to the logit, each (strength, next node, rank there).
  type Step = { strength: number; next: number; rank: number };
  const best: Step[][] = Array.from({ length: n }, () => []);
  best[logit] = [{ strength: 1, next: -1, rank: -1 }];
  // Every edge goes from a node to a logit or to a feature of a later layer: settle later layers first.
  const layerOf = (i: number) =>
    i < g.features.length
      ? g.features[i]!.layer
      : i < tokenNode(g, 0)
        ? Math.floor((i - g.features.length) / g.nPos)
        : -1;
  const order = Array.from({ length: logitNode(g, 0) }, (_, i) => i).sort((a, b) => layerOf(b) - layerOf(a));
  for (const s of order) {
    const options: Step[] = [];
    for (let t = 0; t < n; t++) {
      const w = An[t * n + s]!;
      if (w > 0) best[t]!.forEach((b, rank) => options.push({ strength: w * b.strength, next: t, rank }));
    }
    best[s] = options.sort((a, b) => b.strength - a.strength).slice(0, k);
  }
  const starts: { s: number; rank: number; strength: number }[] = [];
  for (let s = errorNode(g, 0, 0); s < logitNode(g, 0); s++)
    best[s]!.forEach((b, rank) => starts.push({ s, rank, strength: b.strength }));
  return starts
    .sort((a, b) => b.strength - a.strength)
    .slice(0, k)
    .map(({ s, rank, strength }) => {
      const nodes = [s];
      for (let i = s, r = rank; i !== logit;) {
        const step = best[i]![r]!;
        nodes.push(step.next);
        [i, r] = [step.next, step.rank];
      }
      return { nodes, strength };
    });
}
