// A discovered circuit as a drawing: the input at the bottom, each layer's heads and then its MLP above,
// the logits on top; an edge per pair of nodes, weighted by its score (src/plot/circuit.ts draws it).
import type { ModelConfig } from '../models/config.js';
import { placeCircuit, type CircuitPlot, type CircuitPlotEdge, type PlacedCircuit } from '../plot/circuit.js';
import { METHOD_NAMES, type DiscoveryResult } from './discover.js';
import { circuitGraph } from './graph.js';

/** Rows: 0 the input, 2l+1 layer l's heads, 2l+2 its MLP, 2L+1 the logits. */
function nodeRow(node: string, nLayers: number): number {
  if (node === 'input') return 0;
  if (node === 'logits') return 2 * nLayers + 1;
  const m = /^(?:a(\d+)\.h\d+|m(\d+))$/.exec(node)!;
  return m[1] !== undefined ? 2 * Number(m[1]) + 1 : 2 * Number(m[2]) + 2;
}

const nodeKind = (node: string) =>
  node === 'input' || node === 'logits' ? node : node.startsWith('m') ? 'mlp' : 'head';

function rowLabels(nLayers: number): Map<number, string> {
  const labels = new Map<number, string>([
    [0, 'embeddings'],
    [2 * nLayers + 1, 'logits'],
  ]);
  for (let l = 0; l < nLayers; l++) {
    labels.set(2 * l + 1, `layer ${l} heads`);
    labels.set(2 * l + 2, `layer ${l} MLP`);
  }
  return labels;
}

const title = (r: DiscoveryResult) =>
  `${METHOD_NAMES[r.method]} circuit: ${r.circuit.edges.length} of ${r.graph.edges} edges, faithfulness ${r.circuit.faithfulness.toFixed(3)}`;

export function circuitDrawing(r: DiscoveryResult, cfg: ModelConfig): CircuitPlot {
  const graph = circuitGraph(cfg);
  const inCircuit = new Set(r.circuit.nodes);
  const feeds = graph.receivers.map((r) => r.feeds);
  // q, k and v edges between the same two nodes are drawn as one line: the one of largest |score|.
  const lines = new Map<string, CircuitPlotEdge>();
  for (const name of r.circuit.edges) {
    const e = graph.edges[graph.index.get(name)!]!;
    const source = graph.senders[e.sender]!.name;
    const weight = r.edges[graph.index.get(name)!]!.score ?? 0;
    for (const target of feeds[e.receiver]!) {
      if (!inCircuit.has(target)) continue;
      const key = `${source}->${target}`;
      const have = lines.get(key);
      if (!have || Math.abs(weight) > Math.abs(have.weight)) lines.set(key, { source, target, weight });
    }
  }
  const c = r.circuit;
  return {
    title: title(r),
    subtitle: `edge weight: ${r.metric}(kept) - ${r.metric}(patched); q, k, v edges of a pair of nodes drawn as one`,
    nodes: c.nodes.map((id) => ({ id, layer: nodeRow(id, cfg.nLayers), kind: nodeKind(id) })),
    edges: [...lines.values()],
    rowLabels: rowLabels(cfg.nLayers),
  };
}

/** One scored edge of the whole graph, with the nodes it is drawn to. */
export interface DrawnEdge {
  edge: string;
  source: string;
  /** The receiver's nodes: its own, or under GQA every query head its k or v input feeds. */
  targets: string[];
  score: number | null;
  inCircuit: boolean;
}

/**
 * The whole graph placed as the circuit drawing places it (every node, not only the circuit's) and every
 * edge with its score: what the explorer draws, so that it can filter the edges by |score| itself.
 */
export interface GraphDrawing extends PlacedCircuit {
  edges: DrawnEdge[];
}

export function graphDrawing(r: DiscoveryResult, cfg: ModelConfig): GraphDrawing {
  const graph = circuitGraph(cfg);
  const placed = placeCircuit({
    title: title(r),
    subtitle: `edge score: ${r.metric}(kept) - ${r.metric}(patched)`,
    nodes: graph.nodes.map((id) => ({ id, layer: nodeRow(id, cfg.nLayers), kind: nodeKind(id) })),
    edges: [],
    rowLabels: rowLabels(cfg.nLayers),
  });
  const edges = graph.edges.map((e, i) => ({
    edge: e.name,
    source: graph.senders[e.sender]!.name,
    targets: graph.receivers[e.receiver]!.feeds,
    score: r.edges[i]!.score,
    inCircuit: r.edges[i]!.inCircuit,
  }));
  return { ...placed, edges };
}
