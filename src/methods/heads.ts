import { ShapeError } from '../errors.js';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';

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
export function headScores(model: HookedTransformer, opts: HeadScoreOptions = {}): HeadScores {
  const { nLayers: L, nHeads: H, nCtx } = model.cfg;
  const bos = model.cfg.bosTokenId !== null ? 1 : 0;
  const T = opts.seqLen ?? Math.min(40, Math.floor((nCtx - bos) / 2));
  if (T < 2 || 2 * T + bos > nCtx)
    throw new ShapeError(`seqLen ${T} does not fit: 2*seqLen+BOS must be <= ${nCtx}`);
  const batch = opts.batch ?? 8;
  const tokens = repeatedTokens(model, T, batch, opts.seed ?? 0);
  const P = 2 * T + bos;
  const names = Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern`);
  const { logits, cache } = model.runWithCache(tokens, { names });
  const prev: number[][] = [];
  const ind: number[][] = [];
  const dup: number[][] = [];
  for (let l = 0; l < L; l++) {
    const p = cache.get(names[l]!).f32Sync(); // [batch, head, q, k]
    prev.push([]);
    ind.push([]);
    dup.push([]);
    for (let h = 0; h < H; h++) {
      let sPrev = 0;
      let sInd = 0;
      let sDup = 0;
      for (let b = 0; b < batch; b++) {
        const base = (b * H + h) * P * P;
        for (let q = 1; q < P; q++) sPrev += p[base + q * P + q - 1]!;
        // Second repeat: query q = bos + T + j sees its first copy at q - T and the induction target at q - T + 1.
        for (let q = bos + T; q < P; q++) {
          sDup += p[base + q * P + q - T]!;
          sInd += p[base + q * P + q - T + 1]!;
        }
      }
      prev[l]!.push(sPrev / (batch * (P - 1)));
      ind[l]!.push(sInd / (batch * T));
      dup[l]!.push(sDup / (batch * T));
    }
  }
  // Per-position losses: predicting token i+1 from position i.
  const V = model.cfg.vocabSize;
  const lg = logits.f32Sync();
  const ids = tokens.toArraySync();
  let first = 0;
  let second = 0;
  for (let b = 0; b < batch; b++) {
    for (let i = bos; i < P - 1; i++) {
      const row = lg.subarray((b * P + i) * V, (b * P + i + 1) * V);
      let m = -Infinity;
      for (const x of row) m = Math.max(m, x);
      let s = 0;
      for (const x of row) s += Math.exp(x - m);
      const nll = m + Math.log(s) - row[ids[b * P + i + 1]!]!;
      // Positions bos..bos+T-2 predict inside the first repeat; bos+T..P-2 inside the second.
      if (i < bos + T - 1) first += nll;
      else if (i >= bos + T) second += nll;
    }
  }
  return {
    previousToken: prev,
    induction: ind,
    duplicateToken: dup,
    lossFirstRepeat: first / (batch * (T - 1)),
    lossSecondRepeat: second / (batch * (T - 1)),
    seqLen: T,
    batch,
  };
}
