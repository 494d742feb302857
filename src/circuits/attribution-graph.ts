// Attribution graphs (Ameisen et al. 2025, "Circuit tracing"): the direct linear effect between every active
// transcoder feature, error node, input token and top logit of one prompt, in the frozen local replacement
// model (replacement-model.ts). A target's row comes from one backward pass through that affine model with
// the features' activations as stop-gradient inputs: the effect of source s on target t is
// (value of s) · ∂t/∂s, exact because t is affine in the sources. Targets are batched: each batch row
// back-propagates a different target.
import { UsageError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { indexTensor, take } from '../engine/ops/intervene.js';
import { matmul, softmax } from '../engine/ops/nn.js';
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
  type ReplacementProbes,
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

/**
 * Back-propagates batches of targets through the frozen replacement model and reads the direct effects.
 * The gradient of a target at layer l's MLP output, g, gives every source written there: a feature's
 * effect is its activation times W_dec[f] · g at its position, an error node's is its vector · g; the
 * gradient at the embeddings gives the tokens'. Only the sources' entry points are batched.
 */
class Attributor {
  /**
   * Per layer with active features: what each writes to the residual stream, laid out so that one matmul
   * with the flattened gradient [batch, pos · d_model] gives every feature's effect: column j holds
   * activation_j · W_dec[f_j] at feature j's position, zeros elsewhere [pos · d_model, k].
   */
  private readonly writes: (Tensor | null)[];
  private readonly src: ReplacementSources;

  constructor(
    private readonly model: HookedTransformer,
    private readonly transcoders: readonly SparseAutoencoder[],
    private readonly lr: LocalReplacement,
    features: readonly FeatureNode[],
  ) {
    this.src = promptSources(lr);
    const P = lr.nPos;
    this.writes = transcoders.map((tc, l) => {
      const fs = features.filter((f) => f.layer === l);
      const k = fs.length;
      if (!k) return null;
      const d = tc.cfg.dOut;
      const flat = indexTensor(fs.map((f) => f.pos * tc.dSae + f.index));
      const acts = gather(reshape(lr.acts[l]!, [P * tc.dSae]), 0, flat); // [k]
      const rows = take(tc.param('W_dec'), 0, indexTensor(fs.map((f) => f.index))); // [k, d_model]
      const onehot = new Float32Array(k * P);
      fs.forEach((f, j) => (onehot[j * P + f.pos] = 1));
      const placed = mul(new Tensor(onehot, [k, P, 1]), reshape(mul(rows, reshape(acts, [k, 1])), [k, 1, d]));
      return transpose(reshape(placed, [k, P * d])); // [pos · d_model, k]
    });
  }

  /** Rows of logit targets, given their demeaned unembedding directions [k, d_model]. */
  async logitRows(directions: Tensor): Promise<Float32Array[]> {
    const k = directions.shape[0]!;
    const { probes, out } = this.run(k);
    const P = this.lr.nPos;
    const lastPos = slice(out.final, 1, P - 1, P); // [k, 1, d_model]
    const objective = sum(mul(lastPos, reshape(directions, [k, 1, directions.shape[1]!])));
    return this.rows(objective, probes, k);
  }

  /** Rows of feature targets: their pre-activations. */
  async featureRows(batch: readonly FeatureNode[]): Promise<Float32Array[]> {
    const B = batch.length;
    const { probes, out } = this.run(B);
    const P = this.lr.nPos;
    let objective: Tensor | null = null;
    for (let l = 0; l < this.transcoders.length; l++) {
      if (!batch.some((f) => f.layer === l)) continue;
      const tc = this.transcoders[l]!;
      // Each row's target position and feature as one-hot masks, built from indices alone and fed as inputs.
      const posMask = new Float32Array(B * P);
      const featMask = new Float32Array(B * tc.dSae);
      batch.forEach((f, b) => {
        if (f.layer !== l) return;
        posMask[b * P + f.pos] = 1;
        featMask[b * tc.dSae + f.index] = 1;
      });
      const x = sum(mul(out.inputs[l]!, new Tensor(posMask, [B, P, 1])), 1); // [B, d_in]
      const term = sum(mul(tc.encodePre(x), new Tensor(featMask, [B, tc.dSae])));
      objective = objective ? add(objective, term) : term;
    }
    return this.rows(objective!, probes, B);
  }

  private run(B: number) {
    const zero = () => Tensor.zeros([B, this.lr.nPos, this.model.cfg.dModel]).requireGrad();
    const probes: ReplacementProbes = { embed: zero(), mlpOut: this.transcoders.map(zero) };
    return { probes, out: replacementForward(this.model, this.transcoders, this.lr, this.src, probes) };
  }

  /** Back-propagates the sum of the batch's targets (row b depends on batch row b only) and reads the rows. */
  private async rows(objective: Tensor, probes: ReplacementProbes, B: number): Promise<Float32Array[]> {
    objective.backward();
    const lr = this.lr;
    const grad = (t: Tensor) => t.grad ?? Tensor.zeros(t.shape as number[]);
    const parts: Tensor[] = [];
    this.writes.forEach((w, l) => {
      if (w) parts.push(matmul(reshape(grad(probes.mlpOut[l]!), [B, w.shape[0]!]), w)); // [B, k]
    });
    lr.errors.forEach((e, l) => parts.push(sum(mul(grad(probes.mlpOut[l]!), e), -1)));
    parts.push(sum(mul(grad(probes.embed), lr.embed), -1));
    const all = await concat(parts, 1).f32(); // [B, sources]
    const n = all.length / B;
    return Array.from({ length: B }, (_, b) => all.slice(b * n, (b + 1) * n));
  }
}
