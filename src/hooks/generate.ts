import { ShapeError } from '../errors.js';
import { slice } from '../engine/ops/shape.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/random.js';
import { checkContext } from '../models/context.js';
import { emptyKVCache } from '../models/transformer.js';
import type { HookedTransformer } from './hooked-transformer.js';
import { runModel } from './run-model.js';
import { toHooks, validateSelectors, type ForwardHookFn, type HookSpec } from './hooks.js';

export interface GenerateOptions {
  maxTokens?: number;
  /** 0 is greedy. */
  temperature?: number;
  topK?: number;
  topP?: number;
  seed?: number;
  /** Forward hooks applied at every step (steering, ablation while generating). */
  hooks?: HookSpec<ForwardHookFn>[];
  prependBos?: boolean;
  /** Stop at the end-of-sequence token (default true). */
  stopAtEos?: boolean;
  /** Called with each new token id as it is chosen. */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  /** Prompt and generated ids. */
  tokens: number[];
  /** Generated ids only. */
  generated: number[];
  /** Decoded prompt + generation. */
  text: string;
}

/**
 * Samples from the model with a KV cache; hooks see each step's activations (the new positions), and the
 * model's spliced SAEs apply at every step.
 */
export async function generate(
  model: HookedTransformer,
  prompt: string | number[],
  opts: GenerateOptions = {},
): Promise<GenerateResult> {
  const maxTokens = opts.maxTokens ?? 64;
  const temperature = opts.temperature ?? 1;
  if (!Number.isInteger(maxTokens) || maxTokens < 0)
    throw new ShapeError(`maxTokens must be a non-negative integer, got ${maxTokens}`);
  if (!(temperature >= 0)) throw new ShapeError(`temperature must be >= 0, got ${temperature}`);
  if (opts.topP !== undefined && !(opts.topP > 0 && opts.topP <= 1))
    throw new ShapeError(`topP must be in (0, 1], got ${opts.topP}`);
  if (opts.topK !== undefined && !(Number.isInteger(opts.topK) && opts.topK >= 1))
    throw new ShapeError(`topK must be a positive integer, got ${opts.topK}`);
  const cfg = model.cfg;
  let ids: number[];
  if (typeof prompt === 'string') {
    const bos = opts.prependBos ?? model.tokenizer?.prependBosDefault ?? true;
    ids =
      prompt === '' && cfg.bosTokenId !== null ? [cfg.bosTokenId] : model.encode(prompt, { prependBos: bos });
  } else ids = [...prompt];
  if (ids.length === 0) {
    if (cfg.bosTokenId === null)
      throw new ShapeError('empty prompt and the model has no BOS token to start from');
    ids = [cfg.bosTokenId];
  }
  const hooks = toHooks(opts.hooks, 'fwd');
  const useAttnResult = model.usesAttnResult(
    undefined,
    hooks.map((h) => h.name),
  );
  validateSelectors(
    hooks.map((h) => h.name),
    model.hookNames({ useAttnResult }),
  );
  const rng = new Rng(opts.seed ?? 0);
  const cache = emptyKVCache(cfg);
  const generated: number[] = [];
  const hook = model.hookPoint({ fwd: hooks });
  let next = ids;
  checkContext(cfg, ids.length);
  const limit = cfg.nCtx;
  for (let step = 0; step < maxTokens && ids.length < limit; step++) {
    const tokens = new Tensor(
      BigInt64Array.from(next, (v) => BigInt(v)),
      [1, next.length],
    );
    const logits = noGrad(() => runModel(model, tokens, { hook, kvCache: cache, useAttnResult }));
    // The token is chosen on the host: the one read of each step.
    const last = await slice(logits, 1, -1).f32(); // [vocab]
    const id = sample(last, temperature, opts.topK, opts.topP, rng);
    generated.push(id);
    ids.push(id);
    opts.onToken?.(id);
    if ((opts.stopAtEos ?? true) && id === cfg.eosTokenId) break;
    next = [id];
  }
  return { tokens: ids, generated, text: model.tokenizer ? model.decode(ids) : ids.join(' ') };
}

/** Greedy at temperature 0 (first maximum on ties), else softmax(logits / T) with top-k / top-p. */
export function sample(
  logits: Float32Array,
  temperature: number,
  topK: number | undefined,
  topP: number | undefined,
  rng: Rng,
): number {
  if (temperature === 0) {
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    return best;
  }
  let order = Array.from(logits.keys()).sort((a, b) => logits[b]! - logits[a]!);
  if (topK !== undefined) order = order.slice(0, topK);
  const maxLogit = logits[order[0]!]!;
  let probs = order.map((i) => Math.exp((logits[i]! - maxLogit) / temperature));
  let total = probs.reduce((a, b) => a + b, 0);
  if (topP !== undefined && topP < 1) {
    let acc = 0;
    let keep = 0;
    while (keep < probs.length && acc < topP * total) acc += probs[keep++]!;
    order = order.slice(0, Math.max(1, keep));
    probs = probs.slice(0, Math.max(1, keep));
    total = probs.reduce((a, b) => a + b, 0);
  }
  let r = rng.next() * total;
  for (let j = 0; j < order.length; j++) {
    r -= probs[j]!;
    if (r <= 0) return order[j]!;
  }
  return order[order.length - 1]!;
}

export interface SampleCorpusOptions {
  /** Number of independent samples (stories). */
  samples: number;
  /** Tokens per sample at most (each starts from BOS and stops at EOS/BOS). */
  maxTokens: number;
  temperature?: number;
  seed?: number;
  /** Samples generated side by side (one batched forward per step). */
  batch?: number;
  onSample?: (text: string, index: number) => void;
}

/**
 * Samples texts from the model from BOS at the given temperature, many at once with a batched KV
 * cache: how Sonde makes in-distribution text for a model (e.g. a corpus for stories260K).
 */
export async function sampleCorpus(model: HookedTransformer, opts: SampleCorpusOptions): Promise<string[]> {
  const cfg = model.cfg;
  if (cfg.bosTokenId === null) throw new ShapeError('sampleCorpus needs a model with a BOS token');
  const rng = new Rng(opts.seed ?? 0);
  const temperature = opts.temperature ?? 1;
  const batchSize = Math.max(1, Math.min(opts.batch ?? 64, opts.samples));
  const texts: string[] = [];
  // runModel samples the model as spliced and hooked.
  for (let start = 0; start < opts.samples; start += batchSize) {
    const B = Math.min(batchSize, opts.samples - start);
    const cache = emptyKVCache(cfg);
    const rows: number[][] = Array.from({ length: B }, () => []);
    const done = new Array<boolean>(B).fill(false);
    let next = new Array<number>(B).fill(cfg.bosTokenId!);
    const limit = Math.min(opts.maxTokens, cfg.nCtx - 1);
    for (let step = 0; step < limit && done.some((d) => !d); step++) {
      const tokens = new Tensor(
        BigInt64Array.from(next, (v) => BigInt(v)),
        [B, 1],
      );
      const out = noGrad(() => runModel(model, tokens, { kvCache: cache }));
      const logits = await out.f32(); // [B, 1, vocab]
      const V = cfg.vocabSize;
      next = next.map((_, b) => {
        const id = sample(logits.subarray(b * V, (b + 1) * V), temperature, undefined, undefined, rng);
        if (!done[b]) {
          if (id === cfg.eosTokenId || id === cfg.bosTokenId) done[b] = true;
          else rows[b]!.push(id);
        }
        return id;
      });
    }
    rows.forEach((r, b) => {
      const text = model.tokenizer ? model.decode(r) : r.join(' ');
      texts.push(text);
      opts.onSample?.(text, start + b);
    });
  }
  return texts;
}
