// An attribution graph in circuit-tracer's frontend format (the JSON its graph viewer and Neuronpedia load):
// `metadata`, `qParams`, `nodes` (node ids and feature_type values as circuit-tracer writes them) and `links`
// (`source`, `target`, signed `weight` = direct effect), restricted to the pruned graph.
import fs from 'node:fs';
import path from 'node:path';
import { tempSibling } from '../io/leftovers.js';
import { errorNode, logitNode, tokenNode, type AttributionGraph } from './attribution-graph.js';
import type { PrunedGraph } from './attribution-influence.js';
import { placeCircuit, type CircuitPlot, type PlacedCircuit } from '../plot/circuit.js';

export interface GraphFileNode {
  node_id: string;
  feature: number;
  layer: string;
  ctx_idx: number;
  feature_type: 'cross layer transcoder' | 'mlp reconstruction error' | 'embedding' | 'logit';
  token_prob: number;
  is_target_logit: boolean;
  run_idx: number;
  reverse_ctx_idx: number;
  jsNodeId: string;
  clerp: string;
  influence: number | null;
  activation: number | null;
}

export interface GraphFileLink {
  source: string;
  target: string;
  weight: number;
}

export interface GraphFile {
  metadata: {
    slug: string;
    scan: string;
    transcoder_list: string[];
    prompt_tokens: string[];
    prompt: string;
    node_threshold: number | null;
  };
  qParams: {
    pinnedIds: string[];
    supernodes: string[][];
    linkType: string;
    clickedId: string;
    sg_pos: string;
  };
  nodes: GraphFileNode[];
  links: GraphFileLink[];
}

export interface GraphFileOptions {
  slug: string;
  /** Names the transcoder set (circuit-tracer's scan). */
  scan: string;
  transcoderList?: string[];
  prompt: string;
  /** Display strings of the prompt's tokens and of the logit tokens. */
  tokenStrings: string[];
  logitStrings: string[];
  /** Width of the transcoders: feature numbers are index + layer · 10^ceil(log10(width)), unique per graph. */
  dSae: number;
  nodeThreshold: number;
}

/** As circuit-tracer shows tokens: newlines, tabs and carriage returns as visible symbols. */
export const displayToken = (t: string): string =>
  t.replace(/\n/g, '⏎').replace(/\t/g, '→').replace(/\r/g, '↵');

/** The node of each index kept by the pruning, keyed by adjacency index. */
function graphNodes(g: AttributionGraph, p: PrunedGraph, o: GraphFileOptions): Map<number, GraphFileNode> {
  const offset = 10 ** Math.ceil(Math.log10(o.dSae));
  const base = { token_prob: 0, is_target_logit: false, run_idx: 0, reverse_ctx_idx: 0, clerp: '' };
  const nodes = new Map<number, GraphFileNode>();
  const keep = (i: number, node: GraphFileNode) => p.nodes[i] && nodes.set(i, node);
  g.features.forEach((f, i) =>
    keep(i, {
      ...base,
      node_id: `${f.layer}_${f.index}_${f.pos}`,
      feature: f.index + offset * f.layer,
      layer: String(f.layer),
      ctx_idx: f.pos,
      feature_type: 'cross layer transcoder',
      jsNodeId: `${f.layer}_${f.index}-0`,
      influence: p.cumulativeInfluence[i]!,
      activation: f.activation,
    }),
  );
  for (let l = 0; l < g.nLayers; l++)
    for (let pos = 0; pos < g.nPos; pos++) {
      const i = errorNode(g, l, pos);
      keep(i, {
        ...base,
        node_id: `0_${l}_${pos}`,
        feature: -1,
        layer: String(l),
        ctx_idx: pos,
        feature_type: 'mlp reconstruction error',
        jsNodeId: `${l}_${pos}-0`,
        influence: p.cumulativeInfluence[i]!,
        activation: null,
      });
    }
  g.tokens.forEach((t, pos) => {
    const i = tokenNode(g, pos);
    keep(i, {
      ...base,
      node_id: `E_${t}_${pos}`,
      feature: pos,
      layer: 'E',
      ctx_idx: pos,
      feature_type: 'embedding',
      jsNodeId: `E_${t}-${pos}`,
      influence: p.cumulativeInfluence[i]!,
      activation: null,
    });
  });
  const logitLayer = String(g.nLayers + 1);
  const last = g.nPos - 1;
  g.logits.forEach((lg, k) => {
    const i = logitNode(g, k);
    keep(i, {
      ...base,
      node_id: `${logitLayer}_${lg.token}_${last}`,
      feature: lg.token,
      layer: logitLayer,
      ctx_idx: last,
      feature_type: 'logit',
      token_prob: lg.prob,
      is_target_logit: k === 0,
      jsNodeId: `L_${lg.token}-${last}`,
      clerp: `Output "${displayToken(o.logitStrings[k] ?? '')}" (p=${lg.prob.toFixed(3)})`,
      influence: null,
      activation: null,
    });
  });
  return nodes;
}

/** The pruned graph as circuit-tracer's graph file. Nodes left without links are dropped (tokens and logits kept). */
export function graphFile(g: AttributionGraph, p: PrunedGraph, o: GraphFileOptions): GraphFile {
  const nodes = graphNodes(g, p, o);
  const links: GraphFileLink[] = [];
  const linked = new Set<string>();
  for (let t = 0; t < g.n; t++)
    for (let s = 0; s < g.n; s++) {
      if (!p.edges[t * g.n + s]) continue;
      const src = nodes.get(s);
      const dst = nodes.get(t);
      if (!src || !dst) continue;
      links.push({ source: src.node_id, target: dst.node_id, weight: g.adjacency[t * g.n + s]! });
      linked.add(src.node_id).add(dst.node_id);
    }
  const used = [...nodes.values()].filter(
    (n) => linked.has(n.node_id) || n.feature_type === 'embedding' || n.feature_type === 'logit',
  );
  return {
    metadata: {
      slug: o.slug,
      scan: o.scan,
      transcoder_list: o.transcoderList ?? [],
      prompt_tokens: o.tokenStrings.map(displayToken),
      prompt: o.prompt,
      node_threshold: o.nodeThreshold,
    },
    qParams: { pinnedIds: [], supernodes: [], linkType: 'both', clickedId: '', sg_pos: '' },
    nodes: used,
    links,
  };
}

/** The graph file's nodes and links as a circuit drawing: rows embeddings, layers 0..L-1, logits. */
export function graphPlot(file: GraphFile, nLayers: number): CircuitPlot {
  const rowOf = (layer: string) => (layer === 'E' ? -1 : Number(layer));
  const kinds: Record<GraphFileNode['feature_type'], string> = {
    'cross layer transcoder': 'feature',
    'mlp reconstruction error': 'error',
    embedding: 'token',
    logit: 'logit',
  };
  const label = (n: GraphFileNode): string => {
    switch (n.feature_type) {
      case 'cross layer transcoder':
        return `#${n.node_id.split('_')[1]}`;
      case 'mlp reconstruction error':
        return 'error';
      case 'embedding':
        return file.metadata.prompt_tokens[n.ctx_idx] ?? '';
      case 'logit':
        return /^Output "(.*)" \(p=(.*)\)$/.exec(n.clerp)?.slice(1, 3).join(' ') ?? n.clerp;
    }
  };
  const rowLabels = new Map<number, string>([
    [-1, 'embeddings'],
    ...Array.from({ length: nLayers }, (_, l) => [l, `layer ${l}`] as [number, string]),
    [nLayers + 1, 'logits'],
  ]);
  return {
    title: `Attribution graph: ${JSON.stringify(file.metadata.prompt)}`,
    subtitle: `${file.nodes.length} nodes, ${file.links.length} links (pruned at node threshold ${file.metadata.node_threshold})`,
    nodes: file.nodes.map((n) => ({
      id: n.node_id,
      layer: rowOf(n.layer),
      position: n.ctx_idx,
      label: label(n),
      kind: kinds[n.feature_type],
    })),
    edges: file.links,
    rowLabels,
    columnLabels: file.metadata.prompt_tokens.map((t, i) => `${i} ${JSON.stringify(t)}`),
  };
}

/** The model's layer count a graph file implies: its logits sit one row above the last layer (L + 1). */
export function graphFileLayers(file: GraphFile): number {
  const logit = file.nodes.find((n) => n.feature_type === 'logit');
  if (logit) return Number(logit.layer) - 1;
  const layers = file.nodes.map((n) => Number(n.layer)).filter(Number.isFinite);
  return layers.length ? Math.max(...layers) + 1 : 0;
}

/** The graph file placed as its drawing places it (what the explorer draws). */
export function placeGraphFile(file: GraphFile): PlacedCircuit {
  return placeCircuit(graphPlot(file, graphFileLayers(file)));
}

/** The index circuit-tracer's viewer reads beside the graph files: `{"graphs": [metadata, ...]}`. */
export const GRAPH_INDEX = 'graph-metadata.json';

/**
 * Writes a graph file atomically (temp file, then rename) and lists it in the folder's graph-metadata.json
 * (replacing an entry of the same slug), so circuit-tracer's viewer serving that folder shows it.
 */
export function saveGraphFile(file: string, doc: GraphFile): void {
  const write = (target: string, value: unknown) => {
    const tmp = tempSibling(target);
    fs.writeFileSync(tmp, JSON.stringify(value) + '\n');
    fs.renameSync(tmp, target);
  };
  write(file, doc);
  const index = path.join(path.dirname(path.resolve(file)), GRAPH_INDEX);
  let graphs: { slug?: string }[] = [];
  try {
    const prev = JSON.parse(fs.readFileSync(index, 'utf8')) as { graphs?: unknown };
    if (Array.isArray(prev.graphs)) graphs = prev.graphs as { slug?: string }[];
  } catch {
    // no index yet (or an unreadable one, which is replaced)
  }
  write(index, { graphs: [...graphs.filter((x) => x.slug !== doc.metadata.slug), doc.metadata] });
}
