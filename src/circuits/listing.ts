// The full circuit graph of a model as `sonde circuit --list` shows it: every node, receiver and edge,
// with counts by kind (so a graph's size can be checked against a hand count or a paper's).
import type { ModelConfig } from '../models/config.js';
import { circuitGraph, type Receiver } from './graph.js';

export type NodeKind = 'input' | 'head' | 'mlp' | 'logits';
export type ReceiverKind = Receiver['kind'];

export interface GraphListing {
  /** Senders in forward order, then the logits. Layer: -1 for the input, nLayers for the logits. */
  nodes: { name: string; kind: NodeKind; layer: number }[];
  receivers: {
    name: string;
    node: string;
    kind: ReceiverKind;
    layer: number;
    upstream: number;
    /** The nodes it feeds: its own, or under GQA every query head of its KV head's group. */
    feeds: string[];
  }[];
  edges: { edge: string; source: string; target: string }[];
  counts: {
    nodes: number;
    receivers: number;
    edges: number;
    nodesByKind: Record<NodeKind, number>;
    receiversByKind: Record<ReceiverKind, number>;
    /** Edges by the kind of their receiver. */
    edgesByKind: Record<ReceiverKind, number>;
  };
  /** What shapes the graph: GQA (k, v per KV head), parallel blocks (an MLP reads no head of its layer). */
  layout: { layers: number; heads: number; kvHeads: number; mlps: boolean; parallelBlocks: boolean };
}

export function circuitListing(cfg: ModelConfig): GraphListing {
  const graph = circuitGraph(cfg);
  const nodes = [
    ...graph.senders.map((s) => ({ name: s.name, kind: s.kind as NodeKind, layer: s.layer })),
    { name: 'logits', kind: 'logits' as const, layer: cfg.nLayers },
  ];
  const feeds = graph.receivers.map((r) => r.feeds);
  const receivers = graph.receivers.map((r, i) => ({
    name: r.name,
    node: r.node,
    kind: r.kind,
    layer: r.layer,
    upstream: r.upstream,
    feeds: feeds[i]!,
  }));
  const edges = graph.edges.map((e) => ({
    edge: e.name,
    source: graph.senders[e.sender]!.name,
    target: graph.receivers[e.receiver]!.name,
  }));
  const byKind = <K extends string>(keys: readonly K[], kinds: K[], weights?: number[]) => {
    const out = Object.fromEntries(keys.map((k) => [k, 0])) as Record<K, number>;
    kinds.forEach((k, i) => (out[k] += weights?.[i] ?? 1));
    return out;
  };
  const receiverKinds = ['q', 'k', 'v', 'mlp', 'logits'] as const;
  return {
    nodes,
    receivers,
    edges,
    counts: {
      nodes: nodes.length,
      receivers: receivers.length,
      edges: edges.length,
      nodesByKind: byKind(
        ['input', 'head', 'mlp', 'logits'] as const,
        nodes.map((n) => n.kind),
      ),
      receiversByKind: byKind(
        receiverKinds,
        receivers.map((r) => r.kind),
      ),
      edgesByKind: byKind(
        receiverKinds,
        receivers.map((r) => r.kind),
        receivers.map((r) => r.upstream),
      ),
    },
    layout: {
      layers: cfg.nLayers,
      heads: cfg.nHeads,
      kvHeads: cfg.nKvHeads,
      mlps: !cfg.attnOnly,
      parallelBlocks: !cfg.attnOnly && cfg.parallelAttnMlp === true,
    },
  };
}
