// Feature exploration for SAEs (SAE-Vis / Neuronpedia-style dashboards): a corpus scan that stores every
// nonzero latent activation in a DuckDB feature store (src/sae/feature-store.ts), and each latent's direct
// effect on the logits through the unembedding.
import crypto from 'node:crypto';
import { mul, neg, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { mean, topk } from '../engine/ops/reduce.js';
import { gather, reshape } from '../engine/ops/shape.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { layerOf } from '../hooks/hooks.js';
import { SaeError } from './config.js';
import { edgesOf, FeatureStore, type FeatureStoreMeta, type Histogram } from './feature-store.js';
import type { SparseAutoencoder } from './sae.js';

export interface ScanProgress {
  /** Counted tokens (BOS excluded) scanned so far, and in all. */
  tokens: number;
  totalTokens: number;
  contexts: number;
  totalContexts: number;
}

export interface ScanOptions {
  /** Where the DuckDB file goes (written to a temp file, renamed into place when the scan is done). */
  dbPath: string;
  /** Tokens per context, BOS included (default 128). Longer texts are split, each piece with its own BOS. */
  ctx?: number;
  /** Stop after this many counted tokens (default: the whole corpus). */
  maxTokens?: number;
  /** Contexts per forward pass (default: about 4M latents or logits per batch, at most 64 contexts). */
  batchSize?: number;
  /** Start each context with BOS (default: the SAE's metadata prepend_bos, else the tokenizer's default). */
  prependBos?: boolean;
  onProgress?: (p: ScanProgress) => void;
  /** Provenance recorded in the store: the SAE's folder and the corpus file (labels otherwise). */
  saeSource?: string;
  corpus?: string;
}

/** Hooks whose activation is (a piece of) the residual stream: where a latent's direction has logits. */
const RESID_WRITE =
  /^(hook_embed|hook_pos_embed|blocks\.\d+\.(hook_resid_(pre|mid|post)|hook_attn_out|hook_mlp_out))$/;

/** A hash of an SAE's config and parameters (identifies it in a feature store's meta). */
export async function saeFingerprint(sae: SparseAutoencoder): Promise<string> {
  const h = crypto.createHash('sha256').update(JSON.stringify({ ...sae.cfg, metadata: undefined }));
  for (const name of [...sae.params.keys()].sort()) {
    const t = sae.params.get(name)!;
    const d = await t.f32();
    h.update(`${name}:${t.shape.join(',')};`);
    h.update(new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
  }
  return h.digest('hex').slice(0, 32);
}

/** A hash of the texts (order and boundaries included). */
export function corpusFingerprint(texts: readonly string[]): string {
  const h = crypto.createHash('sha256');
  for (const t of texts) h.update(`${Buffer.byteLength(t)}:`).update(t);
  return h.digest('hex').slice(0, 32);
}

/**
 * Splits a corpus file's text into documents: blank-line separated (the built-in corpus's layout), or
 * one {"text": ...} per line for .jsonl.
 */
export function splitCorpus(text: string, jsonl = false): string[] {
  if (jsonl) {
    return text
      .split('\n')
      .map((l, i) => {
        if (l.trim() === '') return '';
        let v: unknown;
        try {
          v = JSON.parse(l);
        } catch {
          throw new SaeError(`corpus line ${i + 1} is not JSON`);
        }
        const t = typeof v === 'string' ? v : (v as { text?: unknown } | null)?.text;
        if (typeof t !== 'string') throw new SaeError(`corpus line ${i + 1} has no "text" string`);
        return t;
      })
      .filter((t) => t.trim() !== '');
  }
  return text
    .split(/\r?\n[ \t]*\r?\n/)
    .map((t) => t.trim())
    .filter((t) => t !== '');
}

/** Whether the scan would start each context with BOS, and the BOS id (null when it would not). */
export function scanBos(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  prependBos?: boolean,
): number | null {
  const meta = sae.cfg.metadata.prepend_bos;
  const want =
    prependBos ?? (typeof meta === 'boolean' ? meta : (model.tokenizer?.prependBosDefault ?? true));
  return want ? model.cfg.bosTokenId : null;
}

/** Checks that the model has the SAE's hooks and width; SaeError naming what does not fit. */
export function checkSaeFitsModel(model: HookedTransformer, sae: SparseAutoencoder): void {
  const names = model.hookNames({ useAttnResult: true });
  for (const h of [sae.cfg.hookName, sae.cfg.hookNameOut]) {
    if (h !== null && !names.includes(h))
      throw new SaeError(
        `the SAE's hook '${h}' is not a hook point of model ${model.source} (see 'sonde hooks')`,
      );
  }
}

interface Context {
  ids: Int32Array;
  /** Position 0 is BOS and left out of the statistics. */
  bos: boolean;
}

/** The texts as contexts of at most ctx tokens, up to maxTokens counted tokens. */
function contexts(
  model: HookedTransformer,
  texts: readonly string[],
  ctx: number,
  bos: number | null,
  maxTokens: number,
): Context[] {
  const out: Context[] = [];
  const body = bos === null ? ctx : ctx - 1;
  let left = maxTokens;
  for (const text of texts) {
    if (left <= 0) break;
    let ids = model.encode(text, { prependBos: false });
    if (bos !== null && ids[0] === bos) ids = ids.slice(1);
    for (let s = 0; s < ids.length && left > 0; s += body) {
      const piece = ids.slice(s, s + Math.min(body, left));
      left -= piece.length;
      out.push({ ids: Int32Array.from(bos === null ? piece : [bos, ...piece]), bos: bos !== null });
    }
  }
  return out;
}

/**
 * The activation at `hook` for a batch of contexts, right-padded to `width` tokens. No attention mask is
 * needed: attention is causal, so padding after a context's tokens cannot change their activations, and
 * without a mask every full batch has one shape, which the model compiles. Hooks in the first half of the
 * blocks stop the pass after their block instead (eager, but half the layers or fewer).
 */
function capture(model: HookedTransformer, hook: string, batch: Context[], width: number): Tensor {
  const pad = model.cfg.eosTokenId ?? 0;
  const ids = new BigInt64Array(batch.length * width).fill(BigInt(pad));
  batch.forEach((c, b) => c.ids.forEach((t, p) => (ids[b * width + p] = BigInt(t))));
  const tokens = new Tensor(ids, [batch.length, width]);
  const useAttnResult = /attn\.hook_result$/.test(hook);
  const layer = layerOf(hook);
  if (layer === null || 2 * (layer + 1) > model.cfg.nLayers)
    return model.runWithCache(tokens, { names: [hook], useAttnResult }).cache.get(hook);
  let out: Tensor | null = null;
  model.runWithHooks(tokens, {
    fwd: [{ name: hook, fn: (x) => void (out = x) }],
    stopAtLayer: layer,
    useAttnResult,
  });
  if (!out) throw new SaeError(`hook ${hook} was not reached in the forward pass`);
  return out;
}

/**
 * Runs the model over the texts, encodes the activation at the SAE's input hook (cfg.hookName) and writes
 * every nonzero latent activation, the tokens and per-latent statistics to a DuckDB feature store at
 * `dbPath` (replacing any there, only once the scan is complete). Texts are split into contexts of at most
 * `ctx` tokens, each starting with BOS; BOS positions are kept in the tokens table for display but left
 * out of the activations and the statistics (and are not encoded). Memory is one batch of latents.
 * Returns the store, open. A BatchTopK SAE is encoded per batch, so its activations depend on the batch
 * (as in SAELens before it is converted to JumpReLU with a threshold).
 */
export async function scanFeatures(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  texts: readonly string[],
  opts: ScanOptions,
): Promise<FeatureStore> {
  const ctx = opts.ctx ?? 128;
  const bos = scanBos(model, sae, opts.prependBos);
  if (!Number.isInteger(ctx) || ctx < (bos === null ? 1 : 2))
    throw new SaeError(`ctx must be an integer >= ${bos === null ? 1 : 2}, got ${ctx}`);
  const maxTokens = opts.maxTokens ?? Number.MAX_SAFE_INTEGER;
  if (!Number.isInteger(maxTokens) || maxTokens < 1)
    throw new SaeError(`maxTokens must be a positive integer, got ${opts.maxTokens}`);
  checkSaeFitsModel(model, sae);
  const dSae = sae.cfg.dSae;
  // About 4M floats of latents (and of logits, which the compiled pass also returns) per batch.
  const widest = Math.max(dSae, model.cfg.vocabSize);
  const batchSize = opts.batchSize ?? Math.max(1, Math.min(64, Math.floor(2 ** 22 / (widest * ctx))));
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new SaeError(`batchSize must be a positive integer, got ${opts.batchSize}`);

  const all = contexts(model, texts, ctx, bos, maxTokens);
  const totalTokens = all.reduce((s, c) => s + c.ids.length - (c.bos ? 1 : 0), 0);
  if (totalTokens === 0) throw new SaeError('scan: the corpus has no tokens');
  const meta: FeatureStoreMeta = {
    sae: opts.saeSource ?? '(in memory)',
    saeFingerprint: await saeFingerprint(sae),
    hook: sae.cfg.hookName,
    hookOut: sae.cfg.hookNameOut,
    dSae,
    model: model.source,
    corpus: opts.corpus ?? '(in memory)',
    corpusFingerprint: corpusFingerprint(texts),
    ctx,
    maxTokens: opts.maxTokens ?? null,
    bosExcluded: bos !== null,
    extra: { architecture: sae.cfg.architecture, batchSize, texts: texts.length },
  };
  const writer = await FeatureStore.create(opts.dbPath, meta);
  try {
    let seq = 0;
    let done = 0;
    for (let i = 0; i < all.length; i += batchSize) {
      const batch = all.slice(i, i + batchSize);
      // Only the counted positions are encoded: no padding, no BOS (which also keeps them out of a
      // BatchTopK SAE's batch budget).
      const where: { seq: number; pos: number }[] = [];
      const rowIds: bigint[] = [];
      batch.forEach((c, b) => {
        const s = seq + b;
        const ids = Array.from(c.ids);
        writer.appendTokens(s, ids, model.tokenStrings(ids));
        for (let p = c.bos ? 1 : 0; p < c.ids.length; p++) {
          where.push({ seq: s, pos: p });
          rowIds.push(BigInt(b * ctx + p));
        }
      });
      seq += batch.length;
      done += where.length;
      if (where.length === 0) continue;
      const acts = await noGrad(() => {
        const x = sae.toRows(capture(model, sae.cfg.hookName, batch, ctx), sae.cfg.dIn, sae.cfg.hookName);
        const rows = gather(x, 0, new Tensor(BigInt64Array.from(rowIds), [rowIds.length]));
        return sae.forwardRows(rows).acts;
      }).f32(); // [counted rows, d_sae]
      for (let r = 0; r < where.length; r++) {
        const { seq: s, pos: p } = where[r]!;
        const base = r * dSae;
        for (let f = 0; f < dSae; f++) {
          const v = acts[base + f]!;
          if (v !== 0 && v === v) writer.appendAct(f, s, p, v);
        }
      }
      opts.onProgress?.({ tokens: done, totalTokens, contexts: seq, totalContexts: all.length });
    }
    return await writer.finish(totalTokens);
  } catch (e) {
    writer.abort();
    throw e;
  }
}

export interface LogitEffect {
  id: number;
  token: string;
  value: number;
}

export interface FeatureLogits {
  feature: number;
  /** The hook the latent writes to (cfg.hookNameOut for a transcoder). */
  hook: string;
  /** The k tokens it promotes most and the k it suppresses most (most negative first). */
  top: LogitEffect[];
  bottom: LogitEffect[];
  /** How the effects were computed. */
  method: string;
  /** Histogram of the effects on every vocabulary token (SAE-Vis's logit histogram). */
  histogram: Histogram;
}

/**
 * Why a latent's decoder direction has no direct logit effects for this model and SAE, or null when it
 * has: the SAE must write to the residual stream (embeddings, resid_pre/mid/post, attn_out, mlp_out) at
 * the model's width, and the model must have an unembedding.
 */
export function featureLogitsUnavailable(model: HookedTransformer, sae: SparseAutoencoder): string | null {
  const hook = sae.cfg.hookNameOut ?? sae.cfg.hookName;
  if (!RESID_WRITE.test(hook))
    return `the SAE writes to '${hook}', which is not the residual stream (resid_pre/mid/post, attn_out, mlp_out), so its latents have no direct logit effect`;
  if (sae.cfg.dOut !== model.cfg.dModel)
    return `the SAE's output width ${sae.cfg.dOut} is not the model's d_model ${model.cfg.dModel}`;
  if (!model.weights.get('unembed.W_U')) return 'the model has no unembedding (unembed.W_U)';
  return null;
}

/**
 * A latent's direct logit effects, as SAE-Vis: its decoder row W_dec[i] (a direction in the hook it writes)
 * through the final norm's linear part and the unembedding, W_dec[i] (* ln_final.w) @ W_U; centred first
 * when the final norm is a LayerNorm (as apply_ln_to_stack). The norm's scale (which depends on the whole
 * residual) and the biases (ln_final.b, b_U: the same for every latent) are left out, so the values rank
 * tokens but are not logits of any particular input. Null when featureLogitsUnavailable says why.
 */
export async function featureLogits(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  feature: number,
  k = 10,
  bins = 20,
): Promise<FeatureLogits | null> {
  const { dSae } = sae.cfg;
  if (!Number.isInteger(feature) || feature < 0 || feature >= dSae)
    throw new SaeError(`feature ${feature} is outside this SAE's latents [0, ${dSae})`);
  if (!Number.isInteger(k) || k < 0) throw new SaeError(`k must be an integer >= 0, got ${k}`);
  if (featureLogitsUnavailable(model, sae) !== null) return null;
  const WU = model.weights.get('unembed.W_U')!;
  const V = WU.shape[1]!;
  const norm = model.cfg.normalization;
  const center = norm === 'LN' || norm === 'LNPre';
  const lnW = norm === 'none' ? undefined : model.weights.get('ln_final.w');
  const kk = Math.min(k, V);
  // The k largest and the k smallest effects, ranked on the engine (ties: the lower token id first).
  const [effects, top, bottom] = noGrad(() => {
    let d = gather(sae.param('W_dec'), 0, new Tensor(BigInt64Array.of(BigInt(feature)), [1])); // [1, d_out]
    if (center) d = sub(d, mean(d, -1, true));
    if (lnW) d = mul(d, lnW);
    const effects = reshape(matmul(d, WU), [V]);
    if (kk === 0) return [effects, null, null];
    return [effects, topk(effects, kk), topk(neg(effects), kk)];
  });
  const pick = async (
    t: { values: Tensor; indices: Tensor } | null,
    sign: number,
  ): Promise<LogitEffect[]> => {
    if (!t) return [];
    const ids = await t.indices.toArray();
    const values = await t.values.f32();
    const strings = model.tokenStrings(ids);
    return ids.map((id, i) => ({ id, token: strings[i]!, value: sign * values[i]! + 0 })); // + 0: no -0
  };
  let dir = `W_dec[${feature}]`;
  if (center) dir = `(${dir} - its mean)`;
  if (lnW) dir = `${dir} * ln_final.w`;
  return {
    feature,
    hook: sae.cfg.hookNameOut ?? sae.cfg.hookName,
    top: await pick(top, 1),
    bottom: await pick(bottom, -1),
    method: `${dir} @ W_U: direct effect, without the final norm's scale and the biases`,
    histogram: histogramOf(await effects.f32(), bins),
  };
}

/** Equal-width histogram of `values` over [min, max] (bin i is [edges[i], edges[i+1]), the last closed). */
export function histogramOf(values: ArrayLike<number>, bins: number): Histogram {
  if (!Number.isInteger(bins) || bins < 1) throw new SaeError(`bins must be an integer >= 1, got ${bins}`);
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    lo = Math.min(lo, values[i]!);
    hi = Math.max(hi, values[i]!);
  }
  if (values.length === 0) lo = hi = 0;
  const width = hi - lo || 1;
  const counts = new Array<number>(bins).fill(0);
  for (let i = 0; i < values.length; i++)
    counts[Math.min(bins - 1, Math.max(0, Math.floor(((values[i]! - lo) / width) * bins)))]!++;
  return { edges: edgesOf(lo, hi, bins), counts };
}
