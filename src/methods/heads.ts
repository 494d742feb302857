import { ShapeError } from '../errors.js';
import { Rng } from '../engine/random.js';
import { mean } from '../engine/ops/reduce.js';
import { expand, gatherElements, slice, stack } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { nextTokenLosses } from './predictions.js';

export interface HeadScores {
  /** [layer][head] mean attention from each token to the previous token. */
  previousToken: number[][];
  /** [layer][head] mean attention along the induction stripe (to the token after the earlier copy). */
  induction: number[][];
  /** [layer][head] mean attention from the second copy of a token to its first copy. */
  duplicateToken: number[][];
  /** Mean next-token loss on the first and the second repeat of the random sequence. */
  lossFirstRepeat: number;
  lossSecondRepeat: number;
  seqLen: number;
  batch: number;
}

export interface HeadScoreOptions {
  /** Length of the random sequence that is repeated (default 40, fitted to the context). */
  seqLen?: number;
  batch?: number;
  seed?: number;
}

/**
 * Repeated random tokens [BOS, r_1..r_T, r_1..r_T]: the standard probe for induction heads
 * (Olsson et al., 2022). Tokens are drawn uniformly, avoiding special ids.
 */
export function repeatedTokens(model: HookedTransformer, T: number, batch: number, seed: number): Tensor {
  const { vocabSize, bosTokenId, eosTokenId } = model.cfg;
  const rng = new Rng(seed);
  // Skip special ids, and llama2.c's byte-fallback pieces (ids 3..258), which ordinary text never uses:
  // their embeddings are untrained, so no head could copy them.
  const lo = Math.min(vocabSize - 1, model.tokenizer?.kind === 'llama2c' ? 259 : 3);
  const rows: number[][] = [];
  for (let b = 0; b < batch; b++) {
    const r: number[] = [];
    while (r.length < T) {
      const id = lo + rng.int(vocabSize - lo);
      if (id !== bosTokenId && id !== eosTokenId) r.push(id);
    }
    rows.push([...(bosTokenId !== null ? [bosTokenId] : []), ...r, ...r]);
  }
  return Tensor.from(rows, undefined, 'int64');
}

/** Previous-token, induction and duplicate-token scores of every head, and the loss on each repeat. */
export async function headScores(model: HookedTransformer, opts: HeadScoreOptions = {}): Promise<HeadScores> {
  const { nLayers: L, nCtx } = model.cfg;
  const bos = model.cfg.bosTokenId !== null ? 1 : 0;
  const T = opts.seqLen ?? Math.min(40, Math.floor((nCtx - bos) / 2));
  if (T < 2 || 2 * T + bos > nCtx)
    throw new ShapeError(`seqLen ${T} does not fit: 2*seqLen+BOS must be <= ${nCtx}`);
  const batch = opts.batch ?? 8;
  const tokens = repeatedTokens(model, T, batch, opts.seed ?? 0);
  const P = 2 * T + bos;
  const names = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { logits, cache } = model.runWithCache(tokens, { names });
  const patterns = stack(names.map((n) => cache.get(n))); // [layer, batch, head, q, k]
  // Second repeat: query q = bos + T + j sees its first copy at q - T and the induction target at q - T + 1.
  const scores = [stripe(patterns, 1, 1), stripe(patterns, T - 1, bos + T), stripe(patterns, T, bos + T)];
  // Predictions at bos..bos+T-2 are inside the first repeat; at bos+T..P-2 inside the second.
  const losses = nextTokenLosses(logits, tokens); // [batch, pos-1]
  const repeats = [mean(slice(losses, 1, bos, bos + T - 1)), mean(slice(losses, 1, bos + T, P - 1))];
  const [[prev, ind, dup], [first, second]] = await Promise.all([
    Promise.all(scores.map(async (t) => (await t.toNested()) as number[][])),
    Promise.all(repeats.map((t) => t.item())),
  ]);
  return {
    previousToken: prev!,
    induction: ind!,
    duplicateToken: dup!,
    lossFirstRepeat: first!,
    lossSecondRepeat: second!,
    seqLen: T,
    batch,
  };
}

/**
 * Mean attention along a diagonal of patterns [layer, batch, head, q, k]: from each query q >= `from` to key
 * q - `offset`, averaged over batch and queries: [layer, head].
 */
function stripe(patterns: Tensor, offset: number, from: number): Tensor {
  const [Ly, B, H, P] = patterns.shape as [number, number, number, number];
  const rows = slice(patterns, 3, from, P); // [layer, batch, head, P - from, k]
  const keys = Tensor.from(
    Array.from({ length: P - from }, (_, i) => from + i - offset),
    [1, 1, 1, P - from, 1],
    'int64',
  );
  const picked = gatherElements(rows, 4, expand(keys, [Ly, B, H, P - from, 1]));
  return mean(picked, [1, 3, 4]);
}
