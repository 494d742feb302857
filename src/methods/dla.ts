import { ShapeError } from '../errors.js';
import type { HookedTransformer, InputOptions, ModelInput } from '../hooks/hooked-transformer.js';
import { add, div, log, mul, sqrt, sub } from '../engine/ops/elementwise.js';
import { mean, sum } from '../engine/ops/reduce.js';
import { concat, gather, reshape, slice } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import {
  checkPos,
  componentStack,
  finalResidualAt,
  runForDecomposition,
  type ResidComponent,
} from './decompose.js';
import { singleToken } from './tokens.js';

export interface DlaComponent {
  /** 'embed', 'pos_embed', 'L1H3', 'L1.attn.b_O', 'L1.mlp', 'ln_final.b', 'unembed.b_U'. */
  name: string;
  kind: ResidComponent['kind'] | 'ln_bias' | 'unembed_bias';
  layer: number | null;
  head: number | null;
  /** Direct contribution to logit(answer) - logit(wrong), or to logit(answer) without `wrong`. */
  contribution: number;
}

export interface DlaTarget {
  /** Position whose prediction is explained (negative counts from the end; default the last). */
  pos?: number;
  /** Sequence of a batch (default 0). */
  batch?: number;
  /** Token id, or text that is exactly one token. */
  answer: number | string;
  wrong?: number | string;
}

export interface DlaResult {
  batch: number;
  pos: number;
  answer: { id: number; token: string };
  wrong: { id: number; token: string } | null;
  /** In forward order; the contributions sum to `total`. */
  components: DlaComponent[];
  /** Sum of the contributions. */
  total: number;
  /**
   * The model's own logit(answer) - logit(wrong) (or logit(answer)) at that position; with a final
   * soft-cap (Gemma 2), of the logits before it, which the components sum to.
   */
  logitDiff: number;
  /** |total - logitDiff|. */
  error: number;
  /** ln_final's scale at that position, recomputed from the final residual (1 without a norm). */
  scale: number;
}

export interface DlaManyResult {
  tokens: number[][];
  targets: DlaResult[];
  /** Each component's contribution averaged over the targets (same order as in each target). */
  mean: DlaComponent[];
  meanLogitDiff: number;
  maxError: number;
}

/**
 * Direct logit attribution of several (batch, pos, answer, wrong) targets from one forward pass. The final
 * norm is applied to each component as TransformerLens's apply_ln_to_stack does, with the scale of the
 * actual final residual: LayerNorm centres each component and divides by the scale, RMSNorm divides by the
 * scale; then ln_final.w multiplies, and ln_final.b and unembed.b_U enter as components of their own.
 * Each component is then dotted with W_U[:, answer] - W_U[:, wrong]. The parts sum to the logit difference.
 */
export async function directLogitAttributionMany(
  model: HookedTransformer,
  input: ModelInput,
  targets: DlaTarget[],
  opts: InputOptions = {},
): Promise<DlaManyResult> {
  if (targets.length === 0) throw new ShapeError('directLogitAttribution: no targets given');
  // Token arguments are checked before the forward pass.
  const resolved = targets.map((t) => ({
    a: singleToken(model, t.answer, 'answer'),
    w: t.wrong === undefined ? null : singleToken(model, t.wrong, 'wrong'),
  }));
  const { tokens, logits, cache } = runForDecomposition(model, input, opts);
  const [B, P] = tokens.shape as [number, number];
  const V = model.cfg.vocabSize;
  // DLA is linear in the residual: it explains the logits before Gemma 2's final soft-cap.
  const cap = model.cfg.finalSoftcap;
  const uncapped = cap ? mul(atanh(div(logits, cap)), cap) : logits;
  const flatLogits = reshape(uncapped, [B * P, V]);
  const bU = model.weights.get('unembed.b_U');
  // Every number of every target is an engine op; all are read together at the end.
  const pending = targets.map(async (t, k) => {
    const b = t.batch ?? 0;
    if (!Number.isInteger(b) || b < 0 || b >= B) throw new ShapeError(`batch ${b} is outside [0, ${B})`);
    const pos = checkPos(t.pos, P);
    const { a, w } = resolved[k]!;
    const coeffs = signed(a, w); // (ids, [1, -1]): x[a] - x[w], or x[a]
    const { components, vectors } = componentStack(model, cache, b, pos);
    const { parts, scale } = directParts(model, vectors, finalResidualAt(model, cache, b, pos), a, w);
    const extra = [...(bU ? [pickDiff(bU, coeffs)] : [])];
    const logitDiff = pickDiff(reshape(slice(flatLogits, 0, b * P + pos, b * P + pos + 1), [V]), coeffs);
    const [contrib, numbers] = await Promise.all([
      concat([parts, ...extra.map((x) => reshape(x, [1]))], 0).f32(),
      concat([reshape(logitDiff, [1]), reshape(scale, [1])], 0).f32(),
    ]);
    const list: DlaComponent[] = components.map((c, i) => ({ ...c, contribution: contrib[i]! }));
    let i = components.length;
    if (parts.shape[0]! > components.length)
      list.push({
        name: 'ln_final.b',
        kind: 'ln_bias',
        layer: null,
        head: null,
        contribution: contrib[i++]!,
      });
    if (bU)
      list.push({
        name: 'unembed.b_U',
        kind: 'unembed_bias',
        layer: null,
        head: null,
        contribution: contrib[i]!,
      });
    let total = 0;
    for (const c of list) total += c.contribution;
    const [as, ws] = model.tokenStrings(w === null ? [a] : [a, w]);
    return {
      batch: b,
      pos,
      answer: { id: a, token: as! },
      wrong: w === null ? null : { id: w, token: ws! },
      components: list,
      total,
      logitDiff: numbers[0]!,
      error: Math.abs(total - numbers[0]!),
      scale: numbers[1]!,
    };
  });
  const [results, ids] = await Promise.all([Promise.all(pending), tokens.toArray()]);
  const n = results.length;
  const mean = results[0]!.components.map((c, i) => ({
    ...c,
    contribution: results.reduce((s, r) => s + r.components[i]!.contribution, 0) / n,
  }));
  return {
    tokens: Array.from({ length: B }, (_, b) => ids.slice(b * P, (b + 1) * P)),
    targets: results,
    mean,
    meanLogitDiff: results.reduce((s, r) => s + r.logitDiff, 0) / n,
    maxError: Math.max(...results.map((r) => r.error)),
  };
}

/** Ids and signs that pick x[a] - x[w] (or x[a]) out of a vector by gather and a dot product. */
function signed(a: number, w: number | null): { ids: Tensor; signs: Tensor } {
  const ids = w === null ? [a] : [a, w];
  return { ids: Tensor.from(ids, [ids.length], 'int64'), signs: Tensor.from(w === null ? [1] : [1, -1]) };
}

/** x[..., a] - x[..., w] of x [..., n]: [...]. */
function pickDiff(x: Tensor, c: { ids: Tensor; signs: Tensor }): Tensor {
  return sum(mul(gather(x, -1, c.ids), c.signs), -1);
}

/**
 * The direct contributions of component vectors [C, d_model] to logit(a) - logit(w), through the final
 * norm with the scale of the actual final residual x [d_model], as TransformerLens's apply_ln_to_stack:
 * LayerNorm centres each component and divides by the scale, RMSNorm divides by the scale; ln_final.w
 * multiplies; ln_final.b enters as one more part. Returns the parts ([C] or [C + 1]) and the scale.
 */
function directParts(
  model: HookedTransformer,
  vectors: Tensor,
  x: Tensor,
  a: number,
  w: number | null,
): { parts: Tensor; scale: Tensor } {
  const { normalization, normEps } = model.cfg;
  const center = normalization === 'LN' || normalization === 'LNPre';
  const normed = normalization !== 'none';
  const WU = model.weights.get('unembed.W_U')!; // [d_model, vocab]
  const dir = pickDiff(WU, signed(a, w)); // W_U[:, a] - W_U[:, w]: [d_model]
  const lnW = model.weights.get('ln_final.w');
  const lnB = model.weights.get('ln_final.b');
  const wdir = lnW ? mul(dir, lnW) : dir;
  const centred = (v: Tensor) => (center ? sub(v, mean(v, -1, true)) : v);
  const scale = normed ? sqrt(add(mean(square(centred(x)), -1), normEps)) : Tensor.scalar(1);
  const parts = div(sum(mul(centred(vectors), wdir), -1), scale); // [C]
  if (!(normed && lnB)) return { parts, scale };
  return { parts: concat([parts, reshape(sum(mul(lnB, dir)), [1])], 0), scale };
}

const square = (x: Tensor): Tensor => mul(x, x);

/** atanh(y) = log((1 + y) / (1 - y)) / 2. */
function atanh(y: Tensor): Tensor {
  return mul(log(div(add(y, 1), sub(1, y))), 0.5);
}

export interface DlaOptions extends InputOptions, DlaTarget {}

/** Direct logit attribution at one position: see directLogitAttributionMany. */
export async function directLogitAttribution(
  model: HookedTransformer,
  input: ModelInput,
  opts: DlaOptions,
): Promise<DlaResult & { tokens: number[] }> {
  const { pos, batch, answer, wrong, ...inputOpts } = opts;
  const r = await directLogitAttributionMany(model, input, [{ pos, batch, answer, wrong }], inputOpts);
  return { tokens: r.tokens[r.targets[0]!.batch]!, ...r.targets[0]! };
}

/** Components sorted by |contribution|, largest first. */
export function rankComponents(components: DlaComponent[]): DlaComponent[] {
  return [...components].sort((x, y) => Math.abs(y.contribution) - Math.abs(x.contribution));
}
