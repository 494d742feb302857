// Attribution graphs (Ameisen et al. 2025, "Circuit tracing"): the direct linear effect between every active
// transcoder feature, error node, input token and top logit of one prompt, in the frozen local replacement
// model (replacement-model.ts). A target's row comes from one backward pass through that affine model with
// the features' activations as stop-gradient inputs: the effect of source s on target t is
// (value of s) · ∂t/∂s, exact because t is affine in the sources. Targets are batched: each batch row
// back-propagates a different target.
import { UsageError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { indexTensor, take } from '../engine/ops/intervene.js';
import { softmax } from '../engine/ops/nn.js';
import { mean, sum, topk } from '../engine/ops/reduce.js';
import { concat, gather, reshape, slice, transpose } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { SparseAutoencoder } from '../sae/sae.js';
import {
  localReplacement,
  promptSources,
  replacementForward,
  type LocalReplacement,
  type ReplacementSources,
} from './replacement-model.js';

export interface AttributionOptions {
  /** At most this many logits (default 10)... */
  maxLogits?: number;
  /** ...the fewest whose probabilities sum to at least this (default 0.95). */
  logitProb?: number;
  /** Targets back-propagated together (default 64). */
  batchSize?: number;
  /** Called after each batch with (targets done, targets in all). */
  onProgress?: (done: number, total: number) => void;
}

export interface FeatureNode {
  layer: number;
  pos: number;
  /** The feature's index in its layer's transcoder. */
  index: number;
  activation: number;
}

export interface LogitNode {
  token: number;
  prob: number;
}

/**
 * A prompt's attribution graph, unpruned. Nodes in circuit-tracer's order: features (by layer, position,
 * index), error nodes (layer-major: layer l position p at nFeatures + l·nPos + p), token embeddings (one per
 * position), logits (by probability). `adjacency[t·n + s]` is the direct effect of source s on target t
 * (rows of tokens and errors are zero: nothing feeds them).
 */
export interface AttributionGraph {
  tokens: number[];
  nLayers: number;
  nPos: number;
  features: FeatureNode[];
  logits: LogitNode[];
  n: number;
  adjacency: Float32Array;
}

export const errorNode = (g: AttributionGraph, layer: number, pos: number): number =>
  g.features.length + layer * g.nPos + pos;
export const tokenNode = (g: AttributionGraph, pos: number): number =>
  g.features.length + g.nLayers * g.nPos + pos;
export const logitNode = (g: AttributionGraph, k: number): number =>
  g.features.length + (g.nLayers + 1) * g.nPos + k;

/** Sources per row: features, then errors (layer-major), then tokens. */
const sourceCount = (g: Pick<AttributionGraph, 'features' | 'nLayers' | 'nPos'>) =>
  g.features.length + (g.nLayers + 1) * g.nPos;

/** The active features of the prompt (activation > 0), by layer, position and index. */
async function activeFeatures(lr: LocalReplacement): Promise<FeatureNode[]> {
  const out: FeatureNode[] = [];
  for (let l = 0; l < lr.acts.length; l++) {
    const a = lr.acts[l]!;
    const d = a.shape[2]!;
    const v = await a.f32();
    for (let i = 0; i < v.length; i++)
      if (v[i]! > 0) out.push({ layer: l, pos: Math.floor(i / d), index: i % d, activation: v[i]! });
  }
  return out;
}

/** The most probable next tokens at the last position: at most `max`, the fewest reaching `prob`. */
async function salientLogits(lr: LocalReplacement, max: number, prob: number): Promise<LogitNode[]> {
  const last = reshape(slice(lr.logits, 1, lr.nPos - 1, lr.nPos), [lr.logits.shape[2]!]);
  const k = Math.min(max, last.shape[0]!);
  const { values, indices } = topk(softmax(last), k);
  const p = await values.f32();
  const ids = await indices.toArray();
  const out: LogitNode[] = [];
  let total = 0;
  for (let i = 0; i < k && (i === 0 || total < prob); i++) {
    out.push({ token: Number(ids[i]), prob: p[i]! });
    total += p[i]!;
  }
  return out;
}

/**
 * The graph of `tokens` [1, pos] (int64) with `transcoders[l]` replacing layer l's MLP. Logit targets are
 * the demeaned logits (logit − mean logit over the vocabulary, before any soft-cap), as circuit-tracer.
 */
export async function attributionGraph(
  model: HookedTransformer,
  transcoders: readonly SparseAutoencoder[],
  tokens: Tensor,
  opts: AttributionOptions = {},
): Promise<AttributionGraph> {
  if (tokens.rank !== 2 || tokens.shape[0] !== 1)
    throw new UsageError(
      `an attribution graph is of one prompt: tokens must be [1, pos], got [${tokens.shape}]`,
    );
  const batchSize = opts.batchSize ?? 64;
  if (!(Number.isInteger(batchSize) && batchSize >= 1))
    throw new UsageError(`batch size must be a positive integer, got ${batchSize}`);
  const lr = localReplacement(model, transcoders, tokens);
  const features = await activeFeatures(lr);
  const logits = await salientLogits(lr, opts.maxLogits ?? 10, opts.logitProb ?? 0.95);
  const ids = await tokens.toArray();
  const g: AttributionGraph = {
    tokens: ids.map(Number),
    nLayers: model.cfg.nLayers,
    nPos: lr.nPos,
    features,
    logits,
    n: sourceCount({ features, nLayers: model.cfg.nLayers, nPos: lr.nPos }) + logits.length,
    adjacency: new Float32Array(0),
  };
  g.adjacency = new Float32Array(g.n * g.n);
  const attributor = new Attributor(model, transcoders, lr, features);
  const total = logits.length + features.length;
  let done = 0;
  const unembed = demeanedUnembed(model, logits);
  for (let i = 0; i < logits.length; i += batchSize) {
    const rows = await attributor.logitRows(slice(unembed, 0, i, Math.min(logits.length, i + batchSize)));
    rows.forEach((r, j) => g.adjacency.set(r, logitNode(g, i + j) * g.n));
    opts.onProgress?.((done += rows.length), total);
  }
  for (let i = 0; i < features.length; i += batchSize) {
    const batch = features.slice(i, i + batchSize);
    const rows = await attributor.featureRows(batch);
    rows.forEach((r, j) => g.adjacency.set(r, (i + j) * g.n));
    opts.onProgress?.((done += rows.length), total);
  }
  return g;
}

/** Unembedding directions of the logit nodes minus the vocabulary's mean direction: [k, d_model]. */
export function demeanedUnembed(model: HookedTransformer, logits: readonly LogitNode[]): Tensor {
  const WU = model.weights.get('unembed.W_U')!; // [d_model, vocab]
  const centred = sub(WU, mean(WU, 1, true));
  return transpose(take(centred, 1, indexTensor(logits.map((l) => l.token))));
}

/** Back-propagates batches of targets through the frozen replacement model and reads the direct effects. */
class Attributor {
  /** Per layer: flat (pos · d_sae + index) indices of its active features, as a tensor, or null. */
  private readonly active: (Tensor | null)[];

  constructor(
    private readonly model: HookedTransformer,
    private readonly transcoders: readonly SparseAutoencoder[],
    private readonly lr: LocalReplacement,
    private readonly features: readonly FeatureNode[],
  ) {
    this.active = transcoders.map((tc, l) => {
      const flat = features.filter((f) => f.layer === l).map((f) => f.pos * tc.dSae + f.index);
      return flat.length ? indexTensor(flat) : null;
    });
  }

  /** Rows of logit targets, given their demeaned unembedding directions [k, d_model]. */
  async logitRows(directions: Tensor): Promise<Float32Array[]> {
    const k = directions.shape[0]!;
    const { src, out } = this.run(k);
    const P = this.lr.nPos;
    const lastPos = slice(out.final, 1, P - 1, P); // [k, 1, d_model]
    const objective = sum(mul(lastPos, reshape(directions, [k, 1, directions.shape[1]!])));
    return this.rows(objective, src, k);
  }

  /** Rows of feature targets: their pre-activations. */
  async featureRows(batch: readonly FeatureNode[]): Promise<Float32Array[]> {
    const B = batch.length;
    const { src, out } = this.run(B);
    const P = this.lr.nPos;
    let objective: Tensor | null = null;
    for (let l = 0; l < this.transcoders.length; l++) {
      if (!batch.some((f) => f.layer === l)) continue;
      const d = this.transcoders[l]!.dSae;
      // One-hot selection of each row's target, built from indices alone and fed as an input.
      const mask = new Float32Array(B * P * d);
      batch.forEach((f, b) => {
        if (f.layer === l) mask[(b * P + f.pos) * d + f.index] = 1;
      });
      const term = sum(mul(out.pre[l]!, new Tensor(mask, [B, P, d])));
      objective = objective ? add(objective, term) : term;
    }
    return this.rows(objective!, src, B);
  }

  private run(B: number) {
    const leaf = (t: Tensor) => t.detach().requireGrad();
    const p = promptSources(this.lr, B);
    const src: ReplacementSources = {
      embed: leaf(p.embed),
      acts: p.acts.map(leaf),
      errors: p.errors.map(leaf),
    };
    return { src, out: replacementForward(this.model, this.transcoders, this.lr, src) };
  }

  /** Back-propagates the sum of the batch's targets (row b depends on batch row b only) and reads the rows. */
  private async rows(objective: Tensor, src: ReplacementSources, B: number): Promise<Float32Array[]> {
    objective.backward();
    const lr = this.lr;
    const P = lr.nPos;
    const effect = (leaf: Tensor, value: Tensor) =>
      leaf.grad ? mul(leaf.grad, value) : mul(Tensor.zeros(leaf.shape), value);
    const parts: Tensor[] = [];
    this.active.forEach((idx, l) => {
      if (!idx) return;
      const d = this.transcoders[l]!.dSae;
      parts.push(gather(reshape(effect(src.acts[l]!, lr.acts[l]!), [B, P * d]), 1, idx));
    });
    lr.errors.forEach((e, l) => parts.push(sum(effect(src.errors[l]!, e), -1)));
    parts.push(sum(effect(src.embed, lr.embed), -1));
    const all = await concat(parts, 1).f32(); // [B, sources]
    const n = all.length / B;
    return Array.from({ length: B }, (_, b) => all.slice(b * n, (b + 1) * n));
  }
}
