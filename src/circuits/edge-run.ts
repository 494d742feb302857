// One forward pass over the circuit graph: it records every sender's output and gives each receiver its own
// input (the model's split inputs), from which the patched edges' contributions are swapped for their
// corrupt values. Which edges are patched is a tensor input (a coefficient per variant and edge), so every
// patched run of a sweep has one structure and runs as one compiled graph.
import { div, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { concat, expand, permute, reshape } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { runModel } from '../hooks/run-model.js';
import type { CircuitGraph } from './graph.js';

/** Receivers read at one hook: one layer's q (or k, v) inputs, one MLP's input, the logits' input. */
export interface ReceiverGroup {
  hook: string;
  /** Index of its first receiver in graph.receivers; its receivers are consecutive. */
  first: number;
  count: number;
  /** Its receivers' upstream senders (the same for all of them). */
  upstream: number;
}

/** Senders written at one hook, consecutive in graph.senders: the input, one layer's heads, one MLP. */
export interface SenderGroup {
  first: number;
  count: number;
}

export function receiverGroups(graph: CircuitGraph, nLayers: number): ReceiverGroup[] {
  const groups: ReceiverGroup[] = [];
  graph.receivers.forEach((r, i) => {
    const hook =
      r.kind === 'logits'
        ? `blocks.${nLayers - 1}.hook_resid_post`
        : r.kind === 'mlp'
          ? `blocks.${r.layer}.hook_mlp_in`
          : `blocks.${r.layer}.hook_${r.kind}_input`;
    const last = groups[groups.length - 1];
    if (last && last.hook === hook) last.count++;
    else groups.push({ hook, first: i, count: 1, upstream: r.upstream });
  });
  return groups;
}

export function senderGroups(graph: CircuitGraph): SenderGroup[] {
  const groups: SenderGroup[] = [];
  graph.senders.forEach((s, i) => {
    const last = groups[groups.length - 1];
    if (
      last &&
      s.kind === 'head' &&
      graph.senders[last.first]!.kind === 'head' &&
      graph.senders[last.first]!.layer === s.layer
    )
      last.count++;
    else groups.push({ first: i, count: 1 });
  });
  return groups;
}

/** Where each receiver's incoming edges start in graph.edges (they are consecutive, senders in order). */
export function edgeOffsets(graph: CircuitGraph): number[] {
  const out: number[] = [];
  let o = 0;
  for (const r of graph.receivers) {
    out.push(o);
    o += r.upstream;
  }
  return out;
}

export interface EdgeRunSpec {
  graph: CircuitGraph;
  /**
   * The corrupt run's sender outputs per sender group, [n, pos, count, d_model]; null: zero ablation (a
   * patched edge then carries nothing).
   */
  corrupt: Tensor[] | null;
  /**
   * How much of each edge is patched, per variant: values[v * edges + e] (1 patched, 0 kept). The run's
   * batch is the variants times the n pairs. Null: nothing is patched (one variant).
   */
  patch?: { values: Float32Array; variants: number } | null;
  /** Replaces the input sender's output [batch, pos, d_model] (EAP-IG's interpolation). */
  input?: (embedded: Tensor) => Tensor;
  /** Sees each receiver group's input [batch, pos, count, d_model] as it is formed (for its gradient). */
  onReceiver?: (group: ReceiverGroup, x: Tensor) => void;
  /**
   * Replaces each receiver group's input [batch, pos, count, d_model], given the sender outputs recorded
   * so far in this run (per sender group, in order; the group's upstream ones come first): causal
   * scrubbing builds receiver inputs from other rows' senders.
   */
  receive?: (group: ReceiverGroup, x: Tensor, senders: readonly Tensor[]) => Tensor;
}

export interface EdgeRunResult {
  /** [variants * n, pos, vocab] */
  logits: Tensor;
  /** This run's sender outputs per sender group, [variants * n, pos, count, d_model]. */
  senders: Tensor[];
}

/** Runs the model on tokens [n, pos] (repeated for each variant) with the spec's edges patched. */
export function edgeRun(model: HookedTransformer, tokens: Tensor, spec: EdgeRunSpec): EdgeRunResult {
  const { cfg } = model;
  const { graph } = spec;
  const [n, P] = tokens.shape as [number, number];
  const V = spec.patch?.variants ?? 1;
  const B = V * n;
  const D = cfg.dModel;
  const L = cfg.nLayers;
  const E = graph.edges.length;
  const offsets = edgeOffsets(graph);
  const groups = new Map(receiverGroups(graph, L).map((g) => [g.hook, g] as const));
  const senders: Tensor[] = [];
  const heads = new Map<number, { result?: Tensor; scale?: Tensor }>();

  // What patching sender group g's edges takes away, laid out for one matmul per receiver group:
  // [V, n*pos, d_model, senders so far].
  let stack: Tensor | null = null;
  let stacked = 0;
  const grow = (upstream: number) => {
    const parts: Tensor[] = stack ? [stack] : [];
    let width = stack?.shape[3] ?? 0;
    // Only the receiver's upstream groups: in a parallel block the MLP's input does not see its layer's heads.
    for (; width < upstream && stacked < senders.length; stacked++) {
      const cur = senders[stacked]!;
      const c = cur.shape[2]!;
      const corr = spec.corrupt?.[stacked];
      const diff = corr ? sub(reshape(cur, [V, n, P, c, D]), corr) : cur;
      parts.push(permute(reshape(diff, [V, n * P, c, D]), [0, 1, 3, 2]));
      width += c;
    }
    stack = parts.length === 1 ? parts[0]! : concat(parts, 3);
    if (width !== upstream) throw new Error(`edge run: ${width} senders stacked, ${upstream} expected`);
    return stack;
  };
  const correction = (g: ReceiverGroup): Tensor => {
    const values = spec.patch!.values;
    const m = new Float32Array(V * g.upstream * g.count);
    for (let v = 0; v < V; v++)
      for (let j = 0; j < g.count; j++) {
        const o = v * E + offsets[g.first + j]!;
        for (let s = 0; s < g.upstream; s++) m[(v * g.upstream + s) * g.count + j] = values[o + s]!;
      }
    const mask = new Tensor(m, [V, 1, g.upstream, g.count]);
    const out = matmul(grow(g.upstream), mask); // [V, n*pos, d_model, count]
    return reshape(permute(out, [0, 1, 3, 2]), [B, P, g.count, D]);
  };

  const hook = model.hookPoint({
    fwd: [
      {
        name: () => true,
        fn: (x, { name }) => {
          if (name === 'blocks.0.hook_resid_pre') {
            const input = spec.input ? spec.input(x) : x;
            senders.push(reshape(input, [B, P, 1, D]));
            return input;
          }
          const m =
            /^blocks\.(\d+)\.(attn\.hook_result|ln1_post\.hook_scale|hook_attn_out|hook_mlp_out)$/.exec(name);
          if (m) {
            const l = Number(m[1]);
            const h = heads.get(l) ?? {};
            heads.set(l, h);
            if (m[2] === 'attn.hook_result') h.result = x;
            else if (m[2] === 'ln1_post.hook_scale') h.scale = x;
            else if (m[2] === 'hook_attn_out') senders.push(headOutputs(h, model, l));
            else senders.push(reshape(x, [B, P, 1, D]));
            return x;
          }
          const g = groups.get(name);
          if (!g) return x;
          const wide = g.hook.endsWith('_input') ? x : reshape(x, [B, P, 1, D]);
          const corrected = spec.patch ? sub(wide, correction(g)) : wide;
          const patched = spec.receive ? spec.receive(g, corrected, senders) : corrected;
          spec.onReceiver?.(g, patched);
          return g.hook.endsWith('_input') ? patched : reshape(patched, [B, P, D]);
        },
      },
    ],
  });
  const ids = V === 1 ? tokens : reshape(expand(reshape(tokens, [1, n, P]), [V, n, P]), [B, P]);
  const logits = runModel(model, ids, { hook, useAttnResult: true, useSplitInputs: true });
  return { logits, senders };
}

/**
 * Layer l's heads' writes [batch, pos, heads, d_model]. After a post-norm (Gemma 2/3) each head's share is
 * its result through the norm with the scale of the whole attention output: the shares sum to hook_attn_out.
 */
function headOutputs(h: { result?: Tensor; scale?: Tensor }, model: HookedTransformer, l: number): Tensor {
  if (!h.result) throw new Error(`edge run: blocks.${l}.attn.hook_result was not reached`);
  if (!model.cfg.postNorms) return h.result;
  const [B, P, , D] = h.result.shape as [number, number, number, number];
  const scale = reshape(h.scale!, [B, P, 1, 1]);
  const w = model.weights.get(`blocks.${l}.ln1_post.w`);
  const normed = div(h.result, scale);
  return w ? mul(normed, reshape(w, [1, 1, 1, D])) : normed;
}
