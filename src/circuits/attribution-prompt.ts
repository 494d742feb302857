// A prompt's attribution graph as every surface makes it (`sonde graph`, the explorer): the graph, its
// scores, circuit-tracer's pruning and the pruned graph as circuit-tracer's graph file.
import { UsageError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { SparseAutoencoder } from '../sae/sae.js';
import { attributionGraph, type AttributionGraph } from './attribution-graph.js';
import { graphFile, type GraphFile } from './attribution-file.js';
import { graphScores, pruneGraph, type GraphScores, type PrunedGraph } from './attribution-influence.js';

/** circuit-tracer's defaults, which `sonde graph` and the explorer share. */
export const GRAPH_DEFAULTS = {
  nodeThreshold: 0.8,
  edgeThreshold: 0.98,
  maxLogits: 10,
  logitProb: 0.95,
  batchSize: 64,
} as const;

export interface PromptGraphOptions {
  nodeThreshold?: number;
  edgeThreshold?: number;
  maxLogits?: number;
  logitProb?: number;
  batchSize?: number;
  /** The graph file's slug and scan (the transcoder set's name). */
  slug: string;
  scan: string;
  /** The prompt as text, when it was given as text (else its tokens joined). */
  prompt?: string | null;
  onProgress?: (done: number, total: number) => void;
}

export interface PromptGraph {
  graph: AttributionGraph;
  pruned: PrunedGraph;
  scores: GraphScores;
  /** Display strings of the prompt's tokens and of the logit tokens. */
  tokenStrings: string[];
  logitStrings: string[];
  file: GraphFile;
}

export async function promptGraph(
  model: HookedTransformer,
  transcoders: readonly SparseAutoencoder[],
  ids: number[],
  o: PromptGraphOptions,
): Promise<PromptGraph> {
  if (ids.length < 1) throw new UsageError('the prompt has no tokens');
  const nodeThreshold = o.nodeThreshold ?? GRAPH_DEFAULTS.nodeThreshold;
  const edgeThreshold = o.edgeThreshold ?? GRAPH_DEFAULTS.edgeThreshold;
  const graph = await attributionGraph(model, transcoders, Tensor.from(ids, [1, ids.length], 'int64'), {
    maxLogits: o.maxLogits ?? GRAPH_DEFAULTS.maxLogits,
    logitProb: o.logitProb ?? GRAPH_DEFAULTS.logitProb,
    batchSize: o.batchSize ?? GRAPH_DEFAULTS.batchSize,
    onProgress: o.onProgress,
  });
  const scores = await graphScores(graph);
  const pruned = await pruneGraph(graph, nodeThreshold, edgeThreshold);
  const tokenStrings = model.tokenStrings(graph.tokens);
  // Per-token strings, not decode(): decoding a lone token drops its leading space.
  const logitStrings = model.tokenStrings(graph.logits.map((l) => l.token));
  const file = graphFile(graph, pruned, {
    slug: o.slug,
    scan: o.scan,
    transcoderList: transcoders.map((t) => t.cfg.hookNameOut ?? t.cfg.hookName),
    prompt: o.prompt ?? tokenStrings.join(''),
    tokenStrings,
    logitStrings,
    dSae: Math.max(...transcoders.map((t) => t.dSae)),
    nodeThreshold,
  });
  return { graph, pruned, scores, tokenStrings, logitStrings, file };
}
