// One forward pass over the circuit graph: it records every sender's output and gives each receiver its own
// input (the model's split inputs), from which the patched edges' contributions are swapped for their
// corrupt values. Which edges are patched is a tensor input (a coefficient per variant and edge), so every
// patched run of a sweep has one structure and runs as one compiled graph.
import { add, div, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { concat, expand, permute, reshape, slice } from '../engine/ops/shape.js';
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
  /** Rows repeated this many times when nothing is patched (EAP-IG's steps, told apart by `input`). */
  variants?: number;
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
  /**
   * Start at block `layer` from an unpatched run of the same tokens: its blocks.L.hook_resid_pre
   * [n, pos, d_model] and its sender groups before that block. Valid when no variant patches an edge into
   * a receiver before the block; the blocks before it are then the same in every variant, so they are
   * not run again, and the earlier senders' differences are shared by the variants.
   */
  start?: { layer: number; residual: Tensor; senders: Tensor[] };
  /** The logits only at these positions (a metric's scored positions): [batch, positions, vocab]. */
  positions?: number[];
}

export interface EdgeRunResult {
  /** [variants * n, pos (or positions), vocab] */
  logits: Tensor;
  /**
   * Sender outputs per sender group, [variants * n, pos, count, d_model]; with `start`, the groups
   * before it are start.senders as given ([n, pos, count, d_model]).
   */
  senders: Tensor[];
  /** Each block's hook_resid_pre [variants * n, pos, d_model] (from the start block on; the rest undefined). */
  residuals: Tensor[];
}

/** Runs the model on tokens [n, pos] (repeated for each variant) with the spec's edges patched. */
export function edgeRun(model: HookedTransformer, tokens: Tensor, spec: EdgeRunSpec): EdgeRunResult {
  const { cfg } = model;
  const { graph } = spec;
  const [n, P] = tokens.shape as [number, number];
  const V = spec.patch?.variants ?? spec.variants ?? 1;
  const B = V * n;
  const D = cfg.dModel;
  const L = cfg.nLayers;
  const E = graph.edges.length;
  const offsets = edgeOffsets(graph);
  const groups = new Map(receiverGroups(graph, L).map((g) => [g.hook, g] as const));
  const prefix = spec.start?.senders ?? [];
  const senders: Tensor[] = [...prefix];
  const residuals: Tensor[] = [];
  const heads = new Map<number, { result?: Tensor; scale?: Tensor }>();
  const diffOf = (i: number, x: Tensor): Tensor => {
    const corr = spec.corrupt?.[i];
    return corr ? sub(x, corr) : x;
  };

  // What patching takes away is mask @ stack, one matmul per receiver group, with the differences
  // (this run's output − corrupt) laid out sender-major, [senders, rows * d_model]: a group's upstream
  // senders are then a prefix of the rows, and the product needs no per-group re-layout of the stack.
  // The start's senders are the same in every variant: [senders, n*pos*d_model], once for all of them.
  const shared = (() => {
    if (prefix.length === 0) return null;
    const parts = prefix.map((x, i) => {
      const c = x.shape[2]!;
      return reshape(permute(diffOf(i, x), [2, 0, 1, 3]), [c, n * P * D]);
    });
    return parts.length === 1 ? parts[0]! : concat(parts, 0);
  })();
  const sharedWidth = shared?.shape[0] ?? 0;
  // This run's senders, per variant: [V, senders so far, n*pos*d_model], grown as the forward goes.
  let stack: Tensor | null = null;
  let stacked = prefix.length;
  const grow = (width: number): Tensor => {
    const parts: Tensor[] = stack ? [stack] : [];
    let have = stack?.shape[1] ?? 0;
    // Only the receiver's upstream groups: in a parallel block the MLP's input does not see its layer's heads.
    for (; have < width && stacked < senders.length; stacked++) {
      const c = senders[stacked]!.shape[2]!;
      const diff = diffOf(stacked, reshape(senders[stacked]!, [V, n, P, c, D]));
      parts.push(reshape(permute(diff, [0, 3, 1, 2, 4]), [V, c, n * P * D]));
      have += c;
    }
    stack = parts.length === 1 ? parts[0]! : concat(parts, 1);
    if (have !== width) throw new Error(`edge run: ${have} senders stacked, ${width} expected`);
    return stack;
  };
  const correction = (g: ReceiverGroup): Tensor => {
    const values = spec.patch!.values;
    const own = g.upstream - sharedWidth;
    // mask[v, j, s]: how much of upstream sender s variant v patches into the group's receiver j.
    const pre = new Float32Array(V * g.count * sharedWidth);
    const run = new Float32Array(V * g.count * own);
    for (let v = 0; v < V; v++)
      for (let j = 0; j < g.count; j++) {
        const o = v * E + offsets[g.first + j]!;
        const row = v * g.count + j;
        pre.set(values.subarray(o, o + sharedWidth), row * sharedWidth);
        run.set(values.subarray(o + sharedWidth, o + g.upstream), row * own);
      }
    let out: Tensor | null = null; // [V, count, n*pos*d_model]
    if (shared)
      out = reshape(matmul(new Tensor(pre, [V * g.count, sharedWidth]), shared), [V, g.count, n * P * D]);
    if (own > 0) {
      const mine = matmul(new Tensor(run, [V, g.count, own]), grow(own));
      out = out ? add(out, mine) : mine;
    }
    return reshape(permute(reshape(out!, [V, g.count, n, P, D]), [0, 2, 3, 1, 4]), [B, P, g.count, D]);
  };
  // A block's q, k and v inputs read the same residual stream and are consecutive receivers: one
  // product for the three reads the stacked differences once instead of three times.
  const split = new Map<string, Tensor>();
  const correctionOf = (g: ReceiverGroup): Tensor => {
    const done = split.get(g.hook);
    if (done) return done;
    const block = /^(blocks\.\d+)\.hook_[qkv]_input$/.exec(g.hook)?.[1];
    if (!block) return correction(g);
    const parts = (['q', 'k', 'v'] as const).map((k) => groups.get(`${block}.hook_${k}_input`)!);
    const count = parts.reduce((c, p) => c + p.count, 0);
    const all = correction({ hook: block, first: parts[0]!.first, count, upstream: g.upstream });
    let at = 0;
    for (const p of parts) {
      split.set(p.hook, slice(all, 2, at, at + p.count));
      at += p.count;
    }
    return split.get(g.hook)!;
  };

  const hook = model.hookPoint({
    fwd: [
      {
        name: () => true,
        fn: (x, { name }) => {
          const pre = /^blocks\.(\d+)\.hook_resid_pre$/.exec(name);
          if (pre) {
            const l = Number(pre[1]);
            let out = x;
            if (l === 0) {
              out = spec.input ? spec.input(x) : x;
              senders.push(reshape(out, [B, P, 1, D]));
            }
            residuals[l] = out;
            return out;
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
          const corrected = spec.patch ? sub(wide, correctionOf(g)) : wide;
          const patched = spec.receive ? spec.receive(g, corrected, senders) : corrected;
          spec.onReceiver?.(g, patched);
          return g.hook.endsWith('_input') ? patched : reshape(patched, [B, P, D]);
        },
      },
    ],
  });
  const repeat = (x: Tensor) =>
    V === 1 ? x : reshape(expand(reshape(x, [1, ...x.shape]), [V, ...x.shape]), [B, ...x.shape.slice(1)]);
  const logits = runModel(model, repeat(tokens), {
    hook,
    useAttnResult: true,
    useSplitInputs: true,
    ...(spec.start && spec.start.layer > 0
      ? { startAtLayer: spec.start.layer, residual: repeat(spec.start.residual) }
      : {}),
    ...(spec.positions
      ? { logitPositions: new Tensor(BigInt64Array.from(spec.positions, BigInt), [spec.positions.length]) }
      : {}),
  });
  return { logits, senders, residuals };
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
