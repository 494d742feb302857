import { ShapeError } from '../errors.js';
import type { HookedTransformer, InputOptions, ModelInput } from '../hooks/hooked-transformer.js';
import { unembedDirection } from '../hooks/resid-stacks.js';
import {
  checkPos,
  componentsAt,
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
export function directLogitAttributionMany(
  model: HookedTransformer,
  input: ModelInput,
  targets: DlaTarget[],
  opts: InputOptions = {},
): DlaManyResult {
  if (targets.length === 0) throw new ShapeError('directLogitAttribution: no targets given');
  // Token arguments are checked before the forward pass.
  const resolved = targets.map((t) => ({
    a: singleToken(model, t.answer, 'answer'),
    w: t.wrong === undefined ? null : singleToken(model, t.wrong, 'wrong'),
  }));
  const { tokens, logits, cache } = runForDecomposition(model, input, opts);
  const [B, P] = tokens.shape as [number, number];
  const { dModel: d, vocabSize: V, normalization, normEps } = model.cfg;
  const bU = model.weights.get('unembed.b_U')?.f32Sync();
  const lnW = model.weights.get('ln_final.w')?.f32Sync();
  const lnB = model.weights.get('ln_final.b')?.f32Sync();
  const center = normalization === 'LN' || normalization === 'LNPre';
  const normed = normalization !== 'none';
  // DLA is linear in the residual: it explains the logits before Gemma 2's final soft-cap.
  const cap = model.cfg.finalSoftcap;
  const lg = cap ? logits.f32Sync().map((x) => cap * Math.atanh(x / cap)) : logits.f32Sync();
  const ids = tokens.toArraySync();
  const results: DlaResult[] = [];
  for (const [k, t] of targets.entries()) {
    const b = t.batch ?? 0;
    if (!Number.isInteger(b) || b < 0 || b >= B) throw new ShapeError(`batch ${b} is outside [0, ${B})`);
    const pos = checkPos(t.pos, P);
    const { a, w } = resolved[k]!;
    // The unembedding direction, with ln_final.w folded in.
    const dir = unembedDirection(model, a, w);
    const wdir = dir.map((x, i) => x * (lnW ? lnW[i]! : 1));
    let wdirSum = 0;
    for (let i = 0; i < d; i++) wdirSum += wdir[i]!;
    // The scale from the actual final residual, as ln_final computes it.
    const x = finalResidualAt(model, cache, b, pos);
    let scale = 1;
    if (normed) {
      let m = 0;
      if (center) {
        for (let i = 0; i < d; i++) m += x[i]!;
        m /= d;
      }
      let ss = 0;
      for (let i = 0; i < d; i++) ss += (x[i]! - m) ** 2;
      scale = Math.sqrt(ss / d + normEps);
    }
    const components: DlaComponent[] = componentsAt(model, cache, b, pos).map((c) => {
      let dot = 0;
      let s = 0;
      for (let i = 0; i < d; i++) {
        dot += c.vector[i]! * wdir[i]!;
        s += c.vector[i]!;
      }
      if (center) dot -= (s / d) * wdirSum;
      return { name: c.name, kind: c.kind, layer: c.layer, head: c.head, contribution: dot / scale };
    });
    if (normed && lnB) {
      let dot = 0;
      for (let i = 0; i < d; i++) dot += lnB[i]! * dir[i]!;
      components.push({ name: 'ln_final.b', kind: 'ln_bias', layer: null, head: null, contribution: dot });
    }
    if (bU) {
      const c = bU[a]! - (w === null ? 0 : bU[w]!);
      components.push({
        name: 'unembed.b_U',
        kind: 'unembed_bias',
        layer: null,
        head: null,
        contribution: c,
      });
    }
    let total = 0;
    for (const c of components) total += c.contribution;
    const base = (b * P + pos) * V;
    const logitDiff = lg[base + a]! - (w === null ? 0 : lg[base + w]!);
    const [as, ws] = model.tokenStrings(w === null ? [a] : [a, w]);
    results.push({
      batch: b,
      pos,
      answer: { id: a, token: as! },
      wrong: w === null ? null : { id: w, token: ws! },
      components,
      total,
      logitDiff,
      error: Math.abs(total - logitDiff),
      scale,
    });
  }
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

export interface DlaOptions extends InputOptions, DlaTarget {}

/** Direct logit attribution at one position: see directLogitAttributionMany. */
export function directLogitAttribution(
  model: HookedTransformer,
  input: ModelInput,
  opts: DlaOptions,
): DlaResult & { tokens: number[] } {
  const { pos, batch, answer, wrong, ...inputOpts } = opts;
  const r = directLogitAttributionMany(model, input, [{ pos, batch, answer, wrong }], inputOpts);
  return { tokens: r.tokens[r.targets[0]!.batch]!, ...r.targets[0]! };
}

/** Components sorted by |contribution|, largest first. */
export function rankComponents(components: DlaComponent[]): DlaComponent[] {
  return [...components].sort((x, y) => Math.abs(y.contribution) - Math.abs(x.contribution));
}
