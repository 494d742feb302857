import { HookError } from '../errors.js';
import { div, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { mean } from '../engine/ops/reduce.js';
import { gather, permute, reshape, slice, stack } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { ActivationCache } from './cache.js';
import type { HookedTransformer } from './hooked-transformer.js';

/**
 * TransformerLens's ActivationCache helpers over a cache and the model that made it. Stacks have a
 * leading component axis: [components, batch, pos, d_model], with a label per component.
 */
export interface LabelledStack {
  stack: Tensor;
  labels: string[];
}

function checkLayer(model: HookedTransformer, layer: number | undefined): number {
  const L = model.cfg.nLayers;
  const l = layer ?? L;
  if (!Number.isInteger(l) || l < 0 || l > L)
    throw new HookError(`layer ${l} is outside [0, ${L}] (${L} means after the last block)`);
  return l;
}

/**
 * The residual stream before each block up to `layer` (default: all, then the final resid_post), as
 * accumulated_resid: labels '0_pre', ('0_mid',) '1_pre', ..., 'final_post'. With `applyLn`, each is
 * normalised as the norm that reads `layer` does (applyLnToStack).
 */
export function accumulatedResid(
  model: HookedTransformer,
  cache: ActivationCache,
  layer?: number,
  opts: { inclMid?: boolean; applyLn?: boolean } = {},
): LabelledStack {
  const l = checkLayer(model, layer);
  const L = model.cfg.nLayers;
  const names: string[] = [];
  const labels: string[] = [];
  for (let i = 0; i <= Math.min(l, L - 1); i++) {
    names.push(`blocks.${i}.hook_resid_pre`);
    labels.push(`${i}_pre`);
    if (opts.inclMid && i < l && cache.has(`blocks.${i}.hook_resid_mid`)) {
      names.push(`blocks.${i}.hook_resid_mid`);
      labels.push(`${i}_mid`);
    }
  }
  if (l === L) {
    names.push(`blocks.${L - 1}.hook_resid_post`);
    labels.push('final_post');
  }
  const s = stack(names.map((n) => cache.get(n)));
  return { stack: opts.applyLn ? applyLnToStack(model, cache, s, l) : s, labels };
}

/**
 * The residual stream before `layer` (default: the final one) split into what each part wrote, as
 * decompose_resid: 'embed', 'pos_embed', then '{l}_attn_out' and '{l}_mlp_out' per block. They sum to
 * blocks.{layer}.hook_resid_pre (or the final resid_post).
 */
export function decomposeResid(
  model: HookedTransformer,
  cache: ActivationCache,
  layer?: number,
  opts: { applyLn?: boolean; inclEmbeds?: boolean } = {},
): LabelledStack {
  const l = checkLayer(model, layer);
  const parts: [string, string][] = [];
  if (opts.inclEmbeds ?? true) {
    parts.push(['hook_embed', 'embed']);
    if (model.cfg.positional === 'learned') parts.push(['hook_pos_embed', 'pos_embed']);
  }
  for (let i = 0; i < l; i++) {
    parts.push([`blocks.${i}.hook_attn_out`, `${i}_attn_out`]);
    if (!model.cfg.attnOnly) parts.push([`blocks.${i}.hook_mlp_out`, `${i}_mlp_out`]);
  }
  const ref = cache.get(`blocks.0.hook_resid_pre`);
  // hook_pos_embed is [1, pos, d_model] when the batch shares positions: broadcast it.
  const s = stack(parts.map(([n]) => broadcastTo(cache.get(n), ref)));
  return {
    stack: opts.applyLn ? applyLnToStack(model, cache, s, l) : s,
    labels: parts.map(([, label]) => label),
  };
}

/**
 * Every head's output (blocks.L.attn.hook_result, from a cache made with useAttnResult) of the blocks
 * before `layer` (default: all): [layers*heads, batch, pos, d_model], labels 'L0H0', 'L0H1', ... Gemma
 * 2/3's ln1_post comes after these, so there they do not sum to hook_attn_out.
 */
export function stackHeadResults(
  model: HookedTransformer,
  cache: ActivationCache,
  layer?: number,
  opts: { applyLn?: boolean } = {},
): LabelledStack {
  const l = checkLayer(model, layer);
  const H = model.cfg.nHeads;
  const perLayer: Tensor[] = [];
  const labels: string[] = [];
  for (let i = 0; i < l; i++) {
    const name = `blocks.${i}.attn.hook_result`;
    if (!cache.has(name))
      throw new HookError(`stackHeadResults needs '${name}': run runWithCache with useAttnResult: true`);
    perLayer.push(permute(cache.get(name), [2, 0, 1, 3])); // [head, batch, pos, d_model]
    for (let h = 0; h < H; h++) labels.push(`L${i}H${h}`);
  }
  if (perLayer.length === 0) throw new HookError('stackHeadResults: no blocks before layer 0');
  const first = perLayer[0]!;
  const s = reshape(stack(perLayer), [l * H, ...first.shape.slice(1)]);
  return { stack: opts.applyLn ? applyLnToStack(model, cache, s, l) : s, labels };
}

/**
 * apply_ln_to_stack: each component [..., batch, pos, d_model] centred (LayerNorm) and divided by the
 * scale the forward pass computed for the norm that reads `layer` (ln_final's by default, else
 * blocks.{layer}.ln1's), so the parts stay additive. The norm's weight and bias are not applied (as in
 * TransformerLens, where they are folded into the next weights); logitAttrs applies ln_final.w.
 */
export function applyLnToStack(
  model: HookedTransformer,
  cache: ActivationCache,
  residStack: Tensor,
  layer?: number,
): Tensor {
  const l = checkLayer(model, layer);
  const { normalization, nLayers: L } = model.cfg;
  if (normalization === 'none') return residStack;
  const scale = cache.get(l === L ? 'ln_final.hook_scale' : `blocks.${l}.ln1.hook_scale`); // [batch, pos, 1]
  const centred =
    normalization === 'LN' || normalization === 'LNPre'
      ? sub(residStack, mean(residStack, -1, true))
      : residStack;
  return div(centred, scale);
}

/**
 * logit_attrs: each component's direct contribution to logit(answer) - logit(wrong) (or logit(answer)):
 * residStack [..., d_model] (already through applyLnToStack) dotted with ln_final.w * (W_U[:, answer] -
 * W_U[:, wrong]); result [...]. Tokens are ids or text of exactly one token.
 */
export function logitAttrs(
  model: HookedTransformer,
  residStack: Tensor,
  answer: number | string,
  wrong?: number | string,
): Tensor {
  const a = model.toSingleToken(answer, 'answer');
  const w = wrong === undefined ? null : model.toSingleToken(wrong, 'wrong');
  const d = model.cfg.dModel;
  const d0 = residStack.shape[residStack.rank - 1];
  if (d0 !== d) throw new HookError(`logitAttrs: the stack's last axis is ${d0}, expected d_model ${d}`);
  // W_U[:, answer] (- W_U[:, wrong]) times ln_final.w, as a [d_model, 1] column on the engine.
  const cols = gather(
    model.weights.get('unembed.W_U')!,
    1,
    Tensor.from(w === null ? [a] : [a, w], undefined, 'int64'),
  );
  let dir = w === null ? cols : sub(slice(cols, 1, 0, 1), slice(cols, 1, 1, 2));
  const lnW = model.cfg.normalization === 'none' ? undefined : model.weights.get('ln_final.w');
  if (lnW) dir = mul(dir, reshape(lnW, [d, 1]));
  const lead = residStack.shape.slice(0, -1);
  const flat = reshape(residStack, [lead.reduce((x, y) => x * y, 1), d]);
  return reshape(matmul(flat, dir), lead);
}

/** W_U[:, answer] - W_U[:, wrong] (or W_U[:, answer] without `wrong`): [d_model], in float64. */
export function unembedDirection(
  model: HookedTransformer,
  answer: number,
  wrong: number | null,
): Float64Array {
  const { dModel: d, vocabSize: V } = model.cfg;
  const WU = model.weights.get('unembed.W_U')!.f32Sync(); // [d_model, vocab]
  const dir = new Float64Array(d);
  for (let i = 0; i < d; i++) dir[i] = WU[i * V + answer]! - (wrong === null ? 0 : WU[i * V + wrong]!);
  return dir;
}

function broadcastTo(x: Tensor, like: Tensor): Tensor {
  if (x.shape[0] === like.shape[0]) return x;
  return stack(Array.from({ length: like.shape[0]! }, () => reshape(x, x.shape.slice(1))));
}
