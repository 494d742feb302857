// A discovered circuit as a drawing: the input at the bottom, each layer's heads and then its MLP above,
// the logits on top; an edge per pair of nodes, weighted by its score (src/plot/circuit.ts draws it).
import type { ModelConfig } from '../models/config.js';
import type { CircuitPlot, CircuitPlotEdge } from '../plot/circuit.js';
import { METHOD_NAMES, type DiscoveryResult } from './discover.js';
import { circuitGraph } from './graph.js';

export function circuitDrawing(r: DiscoveryResult, cfg: ModelConfig): CircuitPlot {
  const graph = circuitGraph(cfg);
  const L = cfg.nLayers;
  // Rows: 0 the input, 2l+1 layer l's heads, 2l+2 its MLP, 2L+1 the logits.
  const row = (node: string): number => {
    if (node === 'input') return 0;
    if (node === 'logits') return 2 * L + 1;
    const m = /^(?:a(\d+)\.h\d+|m(\d+))$/.exec(node)!;
    return m[1] !== undefined ? 2 * Number(m[1]) + 1 : 2 * Number(m[2]) + 2;
  };
  const kind = (node: string) =>
    node === 'input' || node === 'logits' ? node : node.startsWith('m') ? 'mlp' : 'head';
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
  const rowLabels = new Map<number, string>([
    [0, 'embeddings'],
    [2 * L + 1, 'logits'],
  ]);
  for (let l = 0; l < L; l++) {
    rowLabels.set(2 * l + 1, `layer ${l} heads`);
    rowLabels.set(2 * l + 2, `layer ${l} MLP`);
  }
  const c = r.circuit;
  return {
    title: `${METHOD_NAMES[r.method]} circuit: ${c.edges.length} of ${r.graph.edges} edges, faithfulness ${c.faithfulness.toFixed(3)}`,
    subtitle: `edge weight: ${r.metric}(kept) - ${r.metric}(patched); q, k, v edges of a pair of nodes drawn as one`,
    nodes: c.nodes.map((id) => ({ id, layer: row(id), kind: kind(id) })),
    edges: [...lines.values()],
    rowLabels,
  };
}
