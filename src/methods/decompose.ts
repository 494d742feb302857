import { ShapeError } from '../errors.js';
import { add, div, mul, sqrt, sub } from '../engine/ops/elementwise.js';
import { mean } from '../engine/ops/reduce.js';
import { concat, reshape, slice } from '../engine/ops/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { ActivationCache } from '../hooks/cache.js';
import type { HookedTransformer, InputOptions, ModelInput } from '../hooks/hooked-transformer.js';

/** One additive piece of the residual stream (TransformerLens's decompose_resid at head resolution). */
export interface ResidComponent {
  /** 'embed', 'pos_embed', 'L1H3', 'L1.attn.b_O', 'L1.mlp'. */
  name: string;
  kind: 'embed' | 'pos_embed' | 'head' | 'attn_bias' | 'mlp';
  layer: number | null;
  head: number | null;
}

export interface ResidualDecomposition {
  tokens: number[];
  pos: number;
  batch: number;
  components: (ResidComponent & { vector: Float64Array })[];
  /** The final residual stream (blocks.{L-1}.hook_resid_post) at that position. */
  residual: Float64Array;
  /** max |sum of the components - residual|. */
  maxError: number;
}

export interface DecomposeOptions extends InputOptions {
  /** Position (negative counts from the end; default the last). */
  pos?: number;
  /** Sequence of a batch (default 0). */
  batch?: number;
}

/** The hook points the decomposition needs, for runWithCache({ names, useAttnResult: true }). */
export function decompositionHooks(model: HookedTransformer): string[] {
  const { nLayers: L, positional, attnOnly } = model.cfg;
  const names = ['hook_embed'];
  if (positional === 'learned') names.push('hook_pos_embed');
  for (let l = 0; l < L; l++) {
    names.push(`blocks.${l}.attn.hook_result`);
    if (model.cfg.postNorms) names.push(`blocks.${l}.ln1_post.hook_scale`);
    if (!attnOnly) names.push(`blocks.${l}.hook_mlp_out`);
  }
  names.push(`blocks.${L - 1}.hook_resid_post`);
  return names;
}

/** Runs the model once, caching what the decomposition needs. */
export function runForDecomposition(
  model: HookedTransformer,
  input: ModelInput,
  opts: InputOptions = {},
): { tokens: Tensor; logits: Tensor; cache: ActivationCache } {
  const { tokens, attentionMask } = model.toTokens(input, opts);
  const { logits, cache } = model.runWithCache(tokens, {
    ...opts,
    attentionMask: attentionMask ?? undefined,
    names: decompositionHooks(model),
    useAttnResult: true,
  });
  return { tokens, logits, cache };
}

/** A position index checked against the sequence length; negative counts from the end. */
export function checkPos(pos: number | undefined, P: number, label = 'pos'): number {
  const p = pos ?? P - 1;
  const q = p < 0 ? P + p : p;
  if (!Number.isInteger(p) || q < 0 || q >= P)
    throw new ShapeError(`${label} ${p} is outside the sequence of ${P} tokens (0..${P - 1})`);
  return q;
}

/** Row [b, pos] of a [batch, pos, ...] activation, as [...] (batch 1 broadcasts, as hook_pos_embed is). */
function rowAt(t: Tensor, b: number, pos: number): Tensor {
  const bb = t.shape[0] === 1 ? 0 : b;
  return reshape(slice(slice(t, 0, bb, bb + 1), 1, pos, pos + 1), t.shape.slice(2));
}

/**
 * Gemma 2/3 normalise the attention output (ln1_post, an RMSNorm) before it joins the residual stream.
 * With its scale frozen at the value the forward pass computed, as apply_ln_to_stack does, the norm is
 * linear: each head's share is result_h / scale * w, and the shares still sum to hook_attn_out.
 */
function postNormOf(
  model: HookedTransformer,
  cache: ActivationCache,
  l: number,
  b: number,
  pos: number,
): (v: Tensor) => Tensor {
  if (!model.cfg.postNorms) return (v) => v;
  const scale = rowAt(cache.get(`blocks.${l}.ln1_post.hook_scale`), b, pos); // [1]
  const w = model.weights.get(`blocks.${l}.ln1_post.w`);
  return (v) => (w ? mul(div(v, scale), w) : div(v, scale));
}

/**
 * The components of the final residual stream at (b, pos), in the order the forward pass adds them, and
 * their vectors stacked as [components, d_model] (nothing is read).
 */
export function componentStack(
  model: HookedTransformer,
  cache: ActivationCache,
  b: number,
  pos: number,
): { components: ResidComponent[]; vectors: Tensor } {
  const { nLayers: L, nHeads: H, dModel: d, positional, attnOnly } = model.cfg;
  const components: ResidComponent[] = [];
  const rows: Tensor[] = [];
  const push = (c: ResidComponent, v: Tensor) => {
    components.push(c);
    rows.push(reshape(v, [-1, d]));
  };
  push({ name: 'embed', kind: 'embed', layer: null, head: null }, rowAt(cache.get('hook_embed'), b, pos));
  if (positional === 'learned') {
    const v = rowAt(cache.get('hook_pos_embed'), b, pos);
    push({ name: 'pos_embed', kind: 'pos_embed', layer: null, head: null }, v);
  }
  for (let l = 0; l < L; l++) {
    const post = postNormOf(model, cache, l, b, pos);
    // hook_result [batch, pos, head, d_model]: every head's share at once.
    components.push(
      ...Array.from({ length: H }, (_, h) => ({
        name: `L${l}H${h}`,
        kind: 'head' as const,
        layer: l,
        head: h,
      })),
    );
    rows.push(post(rowAt(cache.get(`blocks.${l}.attn.hook_result`), b, pos)));
    const bO = model.weights.get(`blocks.${l}.attn.b_O`);
    if (bO) push({ name: `L${l}.attn.b_O`, kind: 'attn_bias', layer: l, head: null }, post(bO));
    if (!attnOnly) {
      const v = rowAt(cache.get(`blocks.${l}.hook_mlp_out`), b, pos);
      push({ name: `L${l}.mlp`, kind: 'mlp', layer: l, head: null }, v);
    }
  }
  return { components, vectors: concat(rows, 0) };
}

/**
 * The final residual stream at one position split into embeddings, each head's output (hook_result),
 * each attention output bias b_O and each MLP's output (hook_mlp_out, its bias included). They sum to
 * blocks.{L-1}.hook_resid_post.
 */
export async function residualDecomposition(
  model: HookedTransformer,
  input: ModelInput,
  opts: DecomposeOptions = {},
): Promise<ResidualDecomposition> {
  const { tokens, cache } = runForDecomposition(model, input, opts);
  const [B, P] = tokens.shape as [number, number];
  const b = opts.batch ?? 0;
  if (!Number.isInteger(b) || b < 0 || b >= B) throw new ShapeError(`batch ${b} is outside [0, ${B})`);
  const pos = checkPos(opts.pos, P);
  const { components, vectors } = componentStack(model, cache, b, pos);
  const [v, res, ids] = await Promise.all([
    vectors.f32(),
    finalResidualAt(model, cache, b, pos).f32(),
    slice(tokens, 0, b, b + 1).toArray(),
  ]);
  const d = model.cfg.dModel;
  const parts = components.map((c, i) => ({
    ...c,
    vector: Float64Array.from(v.subarray(i * d, (i + 1) * d)),
  }));
  const residual = Float64Array.from(res);
  // The check, in float64 on the values returned.
  let maxError = 0;
  for (let i = 0; i < d; i++) {
    let s = 0;
    for (const c of parts) s += c.vector[i]!;
    maxError = Math.max(maxError, Math.abs(s - residual[i]!));
  }
  return { tokens: ids, pos, batch: b, components: parts, residual, maxError };
}

/** The final residual at (b, pos): blocks.{L-1}.hook_resid_post, [d_model]. */
export function finalResidualAt(
  model: HookedTransformer,
  cache: ActivationCache,
  b: number,
  pos: number,
): Tensor {
  return rowAt(cache.get(`blocks.${model.cfg.nLayers - 1}.hook_resid_post`), b, pos);
}

/**
 * ln_final as the model applies it (LayerNorm, RMSNorm, their folded 'Pre' forms, or nothing), with the
 * scale recomputed from `x` [..., d_model] itself: the logit lens's normalization.
 */
export function applyFinalNorm(model: HookedTransformer, x: Tensor): Tensor {
  const { normalization, normEps } = model.cfg;
  if (normalization === 'none') return x;
  const rms = normalization === 'RMS' || normalization === 'RMSPre';
  const centered = rms ? x : sub(x, mean(x, -1, true));
  const scale = sqrt(add(mean(mul(centered, centered), -1, true), normEps));
  let y = div(centered, scale);
  const w = model.weights.get('ln_final.w');
  const bias = model.weights.get('ln_final.b');
  if (w) y = mul(y, w);
  if (bias) y = add(y, bias);
  return y;
}
