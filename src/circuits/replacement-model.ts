// The local replacement model of a prompt (Ameisen et al. 2025): per-layer transcoders stand in for the MLPs,
// with an error term per layer and position (true MLP output − transcoder output) so that it reproduces the
// model exactly, and the attention patterns and norm scales frozen at their values on the prompt. Frozen so,
// every transcoder's pre-activation and every logit is an affine function of the sources: the token
// embeddings, the transcoder features' activations and the error terms. That linearity is what attribution
// graphs measure.
import { SaeError } from '../errors.js';
import { add, sub } from '../engine/ops/elementwise.js';
import { expand, reshape } from '../engine/ops/shape.js';
import type { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { runModel } from '../hooks/run-model.js';
import type { ModelConfig } from '../models/config.js';
import type { SparseAutoencoder } from '../sae/sae.js';

/** The hook a layer's transcoder predicts (and the replacement model replaces). */
export const mlpOutHook = (l: number): string => `blocks.${l}.hook_mlp_out`;

/** Hooks whose values the replacement model freezes: attention patterns and every norm's scale. */
export const isFrozenHook = (name: string): boolean =>
  name.endsWith('.hook_pattern') || name.endsWith('.hook_scale');

/**
 * The hook holding what the unembedding reads: the final norm's output, or the last residual when the
 * model has no norms (its ln_final has no hook points then).
 */
export function finalHook(cfg: ModelConfig): string {
  return cfg.normalization === 'none'
    ? `blocks.${cfg.nLayers - 1}.hook_resid_post`
    : 'ln_final.hook_normalized';
}

/**
 * Checks that `transcoders[l]` replaces layer l's MLP for every layer: it predicts blocks.l.hook_mlp_out from
 * a hook of block l, and its input normalisation is linear (so that freezing keeps the model affine).
 */
export function checkTranscoders(cfg: ModelConfig, transcoders: readonly SparseAutoencoder[]): void {
  if (cfg.attnOnly) throw new SaeError('an attention-only model has no MLPs for transcoders to replace');
  if (transcoders.length !== cfg.nLayers)
    throw new SaeError(
      `the replacement model needs one transcoder per layer (${cfg.nLayers}), got ${transcoders.length}`,
    );
  transcoders.forEach((tc, l) => {
    const c = tc.cfg;
    if (c.hookNameOut !== mlpOutHook(l))
      throw new SaeError(
        `transcoder ${l} writes '${c.hookNameOut ?? c.hookName}', expected '${mlpOutHook(l)}' (a transcoder of layer ${l}'s MLP)`,
      );
    if (!c.hookName.startsWith(`blocks.${l}.`) || c.hookName === mlpOutHook(l))
      throw new SaeError(
        `transcoder ${l} reads '${c.hookName}': expected a hook of block ${l} before its MLP`,
      );
    const s = c.scalingFactor ?? 1;
    if (!(
      c.normalizeActivations === 'none' ||
      (c.normalizeActivations === 'expected_average_only_in' && s === 1)
    ))
      throw new SaeError(
        `transcoder ${l} normalises its input per row (${c.normalizeActivations}), which is not linear: attribution needs normalize_activations 'none'`,
      );
    if (c.dOut !== cfg.dModel)
      throw new SaeError(`transcoder ${l} writes width ${c.dOut}, the model's d_model is ${cfg.dModel}`);
  });
}

/** A prompt's run of the real model, with everything the frozen replacement model needs. [1, pos, ...] each. */
export interface LocalReplacement {
  tokens: Tensor; // int64 [1, pos]
  nPos: number;
  /** Attention patterns and norm scales on the prompt, by hook name. */
  frozen: Map<string, Tensor>;
  /** Token embeddings [1, pos, d_model] (hook_embed). */
  embed: Tensor;
  /** Per layer: the true MLP output [1, pos, d_model]. */
  mlpOut: Tensor[];
  /** Per layer: the transcoder's output on the prompt [1, pos, d_model]. */
  recons: Tensor[];
  /** Per layer: feature activations [1, pos, d_sae]. */
  acts: Tensor[];
  /** Per layer: the error node vectors, mlpOut − recons [1, pos, d_model]. */
  errors: Tensor[];
  /** The real model's logits [1, pos, vocab]. */
  logits: Tensor;
}

/** Runs the real model on `tokens` [1, pos] and records the replacement model's ingredients. */
export function localReplacement(
  model: HookedTransformer,
  transcoders: readonly SparseAutoencoder[],
  tokens: Tensor,
): LocalReplacement {
  checkTranscoders(model.cfg, transcoders);
  const inputs = new Set(transcoders.map((t) => t.cfg.hookName));
  const { logits, cache } = model.runWithCache(tokens, {
    names: (n) => isFrozenHook(n) || inputs.has(n) || n === 'hook_embed' || n.endsWith('.hook_mlp_out'),
  });
  const frozen = new Map<string, Tensor>();
  for (const n of cache.keys()) if (isFrozenHook(n)) frozen.set(n, cache.get(n));
  const nPos = tokens.shape[1]!;
  const mlpOut: Tensor[] = [];
  const recons: Tensor[] = [];
  const acts: Tensor[] = [];
  const errors: Tensor[] = [];
  transcoders.forEach((tc, l) => {
    const x = cache.get(tc.cfg.hookName);
    const f = tc.forwardRows(reshape(x, [nPos, tc.dIn]));
    const y = cache.get(mlpOutHook(l));
    const r = reshape(f.recons, y.shape);
    mlpOut.push(y);
    recons.push(r);
    acts.push(reshape(f.acts, [1, nPos, tc.dSae]));
    errors.push(sub(y, r));
  });
  return { tokens, nPos, frozen, embed: cache.get('hook_embed'), mlpOut, recons, acts, errors, logits };
}

/** Values of the sources, batched: [batch, pos, d_model] embeddings and errors, [batch, pos, d_sae] activations. */
export interface ReplacementSources {
  embed: Tensor;
  acts: Tensor[];
  errors: Tensor[];
}

/**
 * Zeros [batch, pos, d_model] added where sources enter the residual stream: the token embeddings and each
 * layer's MLP output. They set the batch size, and their gradients are the gradients there, per batch row
 * (one target per row), while the sources themselves stay unbatched.
 */
export interface ReplacementProbes {
  embed: Tensor;
  mlpOut: Tensor[];
}

export interface ReplacementOutputs {
  /** Per layer: the transcoder's input [batch, pos, d_in]. */
  inputs: Tensor[];
  /** What the unembedding reads (finalHook) [batch, pos, d_model]. */
  final: Tensor;
  logits: Tensor;
}

/** The prompt's own source values, repeated over a batch. */
export function promptSources(lr: LocalReplacement, batch = 1): ReplacementSources {
  const rep = (t: Tensor) => (batch === 1 ? t : expand(t, [batch, ...t.shape.slice(1)]));
  return { embed: rep(lr.embed), acts: lr.acts.map(rep), errors: lr.errors.map(rep) };
}

/** Per layer: the transcoders' pre-activations [batch, pos, d_sae] in a replacement run. */
export function preActivations(transcoders: readonly SparseAutoencoder[], out: ReplacementOutputs): Tensor[] {
  return out.inputs.map((x, l) => {
    const tc = transcoders[l]!;
    const [B, P] = x.shape as [number, number];
    return reshape(tc.encodePre(reshape(x, [B * P, tc.dIn])), [B, P, tc.dSae]);
  });
}

/**
 * The frozen replacement model on source values ([1 or batch, pos, ...]). Layer l's MLP output is
 * true + (decode(acts) − recons) + (errors − prompt errors): with the prompt's own sources it is the true
 * output exactly (no rounding), so the outputs equal the real model's; it is affine in the sources, and the
 * features' activations are inputs (stop-gradient sources), never recomputed from the pre-activations.
 */
export function replacementForward(
  model: HookedTransformer,
  transcoders: readonly SparseAutoencoder[],
  lr: LocalReplacement,
  src: ReplacementSources,
  probes?: ReplacementProbes,
): ReplacementOutputs {
  const B = (probes ?? src).embed.shape[0]!;
  const P = lr.nPos;
  const byInput = new Map(transcoders.map((t, l) => [t.cfg.hookName, l] as const));
  const byOutput = new Map(transcoders.map((_t, l) => [mlpOutHook(l), l] as const));
  const inputs: Tensor[] = [];
  const last = finalHook(model.cfg);
  let final: Tensor | null = null;
  const probed = (x: Tensor, probe: Tensor | undefined, shape: readonly number[]) =>
    probe ? add(x, probe) : x.shape[0] === shape[0] ? x : expand(x, shape);
  const hook = (name: string, x: Tensor): Tensor => {
    if (name === 'hook_embed') return probed(src.embed, probes?.embed, x.shape);
    const frozen = lr.frozen.get(name);
    if (frozen) return expand(frozen, x.shape);
    const li = byInput.get(name);
    if (li !== undefined) inputs[li] = x;
    const lo = byOutput.get(name);
    if (lo !== undefined) {
      const tc = transcoders[lo]!;
      // A skip connection reads the (batched) input, so its activations are batched too.
      const skip = tc.params.has('W_skip');
      const acts =
        skip && src.acts[lo]!.shape[0] !== B ? expand(src.acts[lo]!, [B, P, tc.dSae]) : src.acts[lo]!;
      const n = acts.shape[0]! * P;
      const xin = skip ? reshape(inputs[lo]!, [B * P, tc.dIn]) : undefined;
      const decoded = reshape(tc.decode(reshape(acts, [n, tc.dSae]), xin), [n / P, P, tc.cfg.dOut]);
      const y = add(lr.mlpOut[lo]!, add(sub(decoded, lr.recons[lo]!), sub(src.errors[lo]!, lr.errors[lo]!)));
      const out = probed(y, probes?.mlpOut[lo], x.shape);
      if (name === last) final = out;
      return out;
    }
    if (name === last) final = x;
    return x;
  };
  const tokens = B === 1 ? lr.tokens : expand(lr.tokens, [B, P]);
  const logits = runModel(model, tokens, { hook });
  if (!final) throw new SaeError(`the forward pass never reached '${last}'`);
  return { inputs, final, logits };
}
