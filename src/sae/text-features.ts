// An SAE's latents on one text: per-token activations ("test your own text"), the latents most active on
// it (feature search by text), and generation steered by a latent's decoder direction.
import { gather } from '../engine/ops/shape.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { steeredGeneration, steeringHook } from '../methods/steering.js';
import { SaeError } from './config.js';
import { checkSaeFitsModel, scanBos } from './features.js';
import type { SparseAutoencoder } from './sae.js';

export interface TextLatents {
  tokens: number[];
  strings: string[];
  /** The first position counted: 1 when the text starts with BOS, which (as in a scan) is not encoded. */
  first: number;
  /** Latent activations [positions, d_sae] (row-major; BOS rows are 0). */
  acts: Float32Array;
  dSae: number;
}

function checkFeature(sae: SparseAutoencoder, feature: number): void {
  const { dSae } = sae.cfg;
  if (!Number.isInteger(feature) || feature < 0 || feature >= dSae)
    throw new SaeError(`feature ${feature} is outside this SAE's latents [0, ${dSae})`);
}

/**
 * The text tokenized as a feature scan tokenizes a context (BOS first when the scan would put it) and the
 * SAE's latents at every position; SaeError past the model's context.
 */
export async function textLatents(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  text: string,
): Promise<TextLatents> {
  checkSaeFitsModel(model, sae);
  const bos = scanBos(model, sae);
  let ids = model.encode(text, { prependBos: false });
  if (bos !== null && ids[0] === bos) ids = ids.slice(1);
  if (bos !== null) ids = [bos, ...ids];
  if (ids.length > model.cfg.nCtx)
    throw new SaeError(
      `the text has ${ids.length} tokens, more than the model's context of ${model.cfg.nCtx}: shorten it`,
    );
  const first = bos === null ? 0 : 1;
  const dSae = sae.cfg.dSae;
  const acts = new Float32Array(ids.length * dSae);
  if (ids.length > first) {
    const hook = sae.cfg.hookName;
    const counted = await noGrad(() => {
      const tokens = new Tensor(BigInt64Array.from(ids, BigInt), [1, ids.length]);
      const useAttnResult = /attn\.hook_result$/.test(hook);
      const x = model.runWithCache(tokens, { names: [hook], useAttnResult }).cache.get(hook);
      const rows = sae.toRows(x, sae.cfg.dIn, hook);
      const keep = Array.from({ length: ids.length - first }, (_, i) => BigInt(i + first));
      return sae.encode(gather(rows, 0, new Tensor(BigInt64Array.from(keep), [keep.length])));
    }).f32();
    acts.set(counted, first * dSae);
  }
  return { tokens: ids, strings: model.tokenStrings(ids), first, acts, dSae };
}

export interface LatentValue {
  feature: number;
  value: number;
}

export interface TextActivations {
  tokens: number[];
  strings: string[];
  first: number;
  /** The chosen latent, and its activation at each position (0 at BOS); null when none was chosen. */
  feature: number | null;
  acts: number[] | null;
  /** Per position, the k latents most active there (nonzero ones only; highest first, ties by index). */
  top: LatentValue[][];
}

/** Per-token activations of one latent on a text, and the most active latents at each token. */
export async function textActivations(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  text: string,
  opts: { feature?: number; k?: number } = {},
): Promise<TextActivations> {
  if (opts.feature !== undefined) checkFeature(sae, opts.feature);
  const k = opts.k ?? 5;
  const t = await textLatents(model, sae, text);
  const at = (p: number, f: number) => t.acts[p * t.dSae + f]!;
  const top = t.tokens.map((_, p) => {
    const row: LatentValue[] = [];
    for (let f = 0; f < t.dSae; f++) if (at(p, f) > 0) row.push({ feature: f, value: at(p, f) });
    return row.sort((a, b) => b.value - a.value || a.feature - b.feature).slice(0, k);
  });
  const f = opts.feature;
  return {
    tokens: t.tokens,
    strings: t.strings,
    first: t.first,
    feature: f ?? null,
    acts: f === undefined ? null : t.tokens.map((_, p) => at(p, f)),
    top,
  };
}

export interface FeatureMatch {
  feature: number;
  /** Largest activation on the text, and where. */
  max: number;
  argmax: number;
  /** Mean over the counted tokens (zeros included). */
  mean: number;
  /** Counted tokens where it fires. */
  active: number;
}

/**
 * The latents most active on a text (feature search by text): the k with the largest max activation
 * over its counted tokens (ties: larger mean, then lower index); latents that never fire are left out.
 */
export async function searchFeatures(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  text: string,
  k = 20,
): Promise<{ tokens: number[]; strings: string[]; first: number; features: FeatureMatch[] }> {
  const t = await textLatents(model, sae, text);
  const n = t.tokens.length - t.first;
  const out: FeatureMatch[] = [];
  for (let f = 0; f < t.dSae; f++) {
    let max = 0;
    let argmax = -1;
    let sum = 0;
    let active = 0;
    for (let p = t.first; p < t.tokens.length; p++) {
      const v = t.acts[p * t.dSae + f]!;
      sum += v;
      if (v > 0) active++;
      if (v > max) [max, argmax] = [v, p];
    }
    if (active > 0) out.push({ feature: f, max, argmax, mean: n > 0 ? sum / n : 0, active });
  }
  out.sort((a, b) => b.max - a.max || b.mean - a.mean || a.feature - b.feature);
  return { tokens: t.tokens, strings: t.strings, first: t.first, features: out.slice(0, k) };
}

export interface FeatureSteering {
  feature: number;
  /** The hook the decoder direction is added at (the one the SAE writes). */
  hook: string;
  coefficient: number;
  /** |W_dec[feature]|: the direction is added unnormalised, coefficient × W_dec[feature]. */
  decoderNorm: number;
  seed: number;
  temperature: number;
  /** The continuations after the prompt, without and with the direction. */
  unsteered: string;
  steered: string;
}

/** A latent's decoder row W_dec[feature] and the hook it writes (where steering adds it). */
export async function featureDirection(
  sae: SparseAutoencoder,
  feature: number,
): Promise<{ vector: Float32Array; hook: string; norm: number }> {
  checkFeature(sae, feature);
  const vector = await noGrad(() =>
    gather(sae.param('W_dec'), 0, new Tensor(BigInt64Array.of(BigInt(feature)), [1])),
  ).f32();
  return { vector, hook: sae.cfg.hookNameOut ?? sae.cfg.hookName, norm: Math.hypot(...vector) };
}

/**
 * Generation without and with coefficient × W_dec[feature] added at every position of the hook the SAE
 * writes (SAELens / Neuronpedia steering), with the same sampling seed.
 */
export async function featureSteering(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  feature: number,
  prompt: string,
  opts: { coefficient: number; maxTokens?: number; seed?: number; temperature?: number },
): Promise<FeatureSteering> {
  checkSaeFitsModel(model, sae);
  const { vector: row, hook, norm } = await featureDirection(sae, feature);
  const seed = opts.seed ?? 0;
  const temperature = opts.temperature ?? 1;
  const ids = model.encode(prompt);
  const r = await steeredGeneration(model, ids, [steeringHook(hook, row, opts.coefficient)], {
    maxTokens: opts.maxTokens ?? 40,
    seed,
    temperature,
  });
  const cont = (tokens: number[]) => model.decode(tokens.slice(ids.length));
  return {
    feature,
    hook,
    coefficient: opts.coefficient,
    decoderNorm: norm,
    seed,
    temperature,
    unsteered: cont(r.unsteered.tokens),
    steered: cont(r.steered.tokens),
  };
}
