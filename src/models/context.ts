/**
 * What a forward pass can take: no more positions than the model's context (rotary models included:
 * past n_ctx their outputs are untrained extrapolation), and attention scores that fit in memory, checked
 * before anything runs.
 */
import { MemoryError, ShapeError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { formatBytes, overLimit, raiseLimit, resolveMemoryLimit, type MemoryLimit } from './memory.js';

/** Throws ShapeError when `positions` (the cached past included) exceed the model's context. */
export function checkContext(cfg: Pick<ModelConfig, 'nCtx'>, positions: number): void {
  if (positions <= cfg.nCtx) return;
  throw new ShapeError(
    `sequence of ${positions} tokens is longer than the model's context of ${cfg.nCtx} (n_ctx): ` +
      `give at most ${cfg.nCtx} tokens (the CLI's --truncate keeps the last ${cfg.nCtx})`,
  );
}

/**
 * What a pass keeps of its attention scores beyond the working set: nothing (a plain run), the scores
 * and pattern of every layer (a full activation cache), or everything backward needs (gradients).
 */
export type AttentionKeep = 'none' | 'cache' | 'gradients';

/**
 * Score-sized tensors alive at once, measured as peak RSS over one score tensor [batch, heads, q, k] on
 * stories260K at 2,048 tokens: a plain pass peaks at ~10 (scores, scaled, masked, softmax and the
 * layers' garbage not yet collected); a full cache adds ~2 per layer, gradients ~7 per layer.
 */
const WORKING_COPIES = 10;
const KEPT_PER_LAYER: Record<AttentionKeep, number> = { none: 0, cache: 2, gradients: 7 };

/** Estimates below this are not checked (reading the free memory on every small pass is waste). */
const CHECK_FROM_BYTES = 64e6;

/** Bytes of attention a pass over `batch` rows of `queries` new positions after `past` cached ones takes. */
export function attentionBytes(
  cfg: Pick<ModelConfig, 'nHeads' | 'nLayers'>,
  batch: number,
  queries: number,
  past = 0,
  keep: AttentionKeep = 'none',
): number {
  const scores = batch * cfg.nHeads * queries * (past + queries) * 4;
  return scores * (WORKING_COPIES + KEPT_PER_LAYER[keep] * cfg.nLayers);
}

/**
 * Throws MemoryError when the attention of a pass (see {@link attentionBytes}) will not fit under `limit`
 * (default: memoryLimitBytes's rules, SONDE_MAX_MEMORY or the memory available now).
 */
export function checkAttentionMemory(
  cfg: Pick<ModelConfig, 'nHeads' | 'nLayers'>,
  batch: number,
  queries: number,
  past = 0,
  keep: AttentionKeep = 'none',
  limit?: MemoryLimit,
): void {
  const need = attentionBytes(cfg, batch, queries, past, keep);
  if (need < CHECK_FROM_BYTES) return;
  const lim = limit ?? resolveMemoryLimit();
  if (need <= lim.bytes) return;
  const keys = past + queries;
  const scores = batch * cfg.nHeads * queries * keys * 4;
  const kept =
    keep === 'none'
      ? ''
      : ` plus ${KEPT_PER_LAYER[keep]} per layer kept for ${keep === 'cache' ? 'the cache' : 'backward'}`;
  throw new MemoryError(
    `attention over ${keys} positions needs about ${formatBytes(need)}, ${overLimit(lim)}: scores ` +
      `[${batch}, ${cfg.nHeads}, ${queries}, ${keys}] float32 are ${formatBytes(scores)} each, about ` +
      `${WORKING_COPIES} alive at once${kept}. Give fewer tokens or rows, or, if you know it will fit, ` +
      raiseLimit(lim, need),
  );
}
