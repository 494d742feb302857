// The computational graph circuit methods work on, named as EAP-IG and the MIB benchmark name it: senders
// `input`, `a{l}.h{h}`, `m{l}`; receivers `a{l}.h{h}<q|k|v>`, `m{l}`, `logits`; edges `sender->receiver`.
import type { ModelConfig } from '../models/config.js';

/** What writes to the residual stream: the embeddings, one attention head, one MLP. */
export interface Sender {
  name: string;
  kind: 'input' | 'head' | 'mlp';
  /** -1 for the input. */
  layer: number;
  head?: number;
}

/** What reads the residual stream: one head's query, key or value input, an MLP, the unembedding. */
export interface Receiver {
  name: string;
  /** The node the receiver belongs to ('a1.h2' for 'a1.h2<k>'). */
  node: string;
  kind: 'q' | 'k' | 'v' | 'mlp' | 'logits';
  /** nLayers for the logits. */
  layer: number;
  /** The head (q) or KV head (k, v). */
  head?: number;
  /** The nodes it feeds: its own, except that a KV head's k and v inputs feed every query head of its group. */
  feeds: string[];
  /**
   * How many senders are upstream of it: they are always the first `upstream` senders, so a receiver's
   * incoming edges are a prefix of the sender list.
   */
  upstream: number;
}

export interface Edge {
  name: string;
  /** Index into graph.senders. */
  sender: number;
  /** Index into graph.receivers. */
  receiver: number;
}

export interface CircuitGraph {
  senders: Sender[];
  receivers: Receiver[];
  /** Every edge, by receiver in forward order, then by sender. */
  edges: Edge[];
  /** Edge index by name. */
  index: Map<string, number>;
  /** nodes: every sender node plus 'logits'. */
  nodes: string[];
}

export const headName = (l: number, h: number): string => `a${l}.h${h}`;
export const mlpName = (l: number): string => `m${l}`;
export const edgeName = (sender: string, receiver: string): string => `${sender}->${receiver}`;

/** The full graph of a model (GQA: k/v receivers per KV head; parallel blocks: an MLP reads no head of its layer). */
export function circuitGraph(cfg: ModelConfig): CircuitGraph {
  const senders: Sender[] = [{ name: 'input', kind: 'input', layer: -1 }];
  const receivers: Receiver[] = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    const before = senders.length;
    const group = cfg.nHeads / cfg.nKvHeads;
    for (const kind of ['q', 'k', 'v'] as const) {
      const n = kind === 'q' ? cfg.nHeads : cfg.nKvHeads;
      for (let h = 0; h < n; h++) {
        const feeds =
          kind === 'q'
            ? [headName(l, h)]
            : Array.from({ length: group }, (_, i) => headName(l, h * group + i));
        receivers.push({
          name: `${headName(l, h)}<${kind}>`,
          node: headName(l, h),
          kind,
          layer: l,
          head: h,
          upstream: before,
          feeds,
        });
      }
    }
    for (let h = 0; h < cfg.nHeads; h++)
      senders.push({ name: headName(l, h), kind: 'head', layer: l, head: h });
    if (cfg.attnOnly) continue;
    const upstream = cfg.parallelAttnMlp ? before : senders.length;
    receivers.push({
      name: mlpName(l),
      node: mlpName(l),
      kind: 'mlp',
      layer: l,
      upstream,
      feeds: [mlpName(l)],
    });
    senders.push({ name: mlpName(l), kind: 'mlp', layer: l });
  }
  receivers.push({
    name: 'logits',
    node: 'logits',
    kind: 'logits',
    layer: cfg.nLayers,
    upstream: senders.length,
    feeds: ['logits'],
  });
  const edges: Edge[] = [];
  receivers.forEach((r, ri) => {
    for (let s = 0; s < r.upstream; s++)
      edges.push({ name: edgeName(senders[s]!.name, r.name), sender: s, receiver: ri });
  });
  return {
    senders,
    receivers,
    edges,
    index: new Map(edges.map((e, i) => [e.name, i] as const)),
    nodes: [...senders.map((s) => s.name), 'logits'],
  };
}
