import { ConfigError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { mean } from '../engine/ops/reduce.js';
import { gather, reshape } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { ModelConfig } from './config.js';
import type { Weights } from './weights.js';

/** TransformerLens's weight processing; each step leaves the model's outputs unchanged. */
export interface ProcessOptions {
  /** Fold each norm's weight (and bias) into the layer that reads it; LN becomes LNPre, RMS becomes RMSPre. */
  foldLn?: boolean;
  /** Remove the mean across d_model from every weight writing to the residual stream (LayerNorm models only). */
  centerWritingWeights?: boolean;
  /** Remove the mean across the vocabulary from the unembedding (softmax is shift-invariant). */
  centerUnembed?: boolean;
  /** Move value biases into the output bias (attention patterns sum to 1). */
  foldValueBiases?: boolean;
}

function need(w: Weights, name: string): Tensor {
  const t = w.get(name);
  if (!t) throw new ConfigError(`processWeights: weight '${name}' is missing`);
  return t;
}

/** A vector weight, or zeros when the model has none (a bias-free layer). */
function vec(w: Weights, name: string, n: number): Tensor {
  return w.get(name) ?? Tensor.zeros([n]);
}

/** W' = diag(scale) W and b' = b + shift @ W for a reader of a norm with weight `scale`, bias `shift`. */
function foldInto(
  w: Weights,
  W: string,
  b: string,
  scale: Tensor,
  shift: Tensor | null,
  center: boolean,
): void {
  const m = need(w, W); // [rows, cols]
  const [rows, cols] = m.shape as [number, number];
  let folded = mul(m, reshape(scale, [rows, 1]));
  // LNPre output has zero mean across d_model, so a constant per output column is invisible.
  if (center) folded = sub(folded, mean(folded, 0, true));
  if (shift) w.set(b, add(vec(w, b, cols), reshape(matmul(reshape(shift, [1, rows]), m), [cols])));
  w.set(W, folded);
}

/** Subtracts each row's mean over the last axis (the d_model axis of a residual writer). */
function centerRows(w: Weights, name: string): void {
  const t = w.get(name);
  if (t) w.set(name, sub(t, mean(t, -1, true)));
}

export function processWeights(
  cfg: ModelConfig,
  weights: Weights,
  opts: ProcessOptions = {},
): { cfg: ModelConfig; weights: Weights } {
  const o = { foldLn: true, centerWritingWeights: true, centerUnembed: true, foldValueBiases: true, ...opts };
  const w: Weights = new Map(weights);
  const isLN = cfg.normalization === 'LN';
  const isRMS = cfg.normalization === 'RMS';
  const D = cfg.dModel;
  const foldLn = o.foldLn && (isLN || isRMS);
  if (foldLn) {
    for (let l = 0; l < cfg.nLayers; l++) {
      const b = `blocks.${l}`;
      const s1 = vec(w, `${b}.ln1.w`, D);
      const t1 = isLN ? vec(w, `${b}.ln1.b`, D) : null;
      for (const n of ['Q', 'K', 'V']) foldInto(w, `${b}.attn.W_${n}`, `${b}.attn.b_${n}`, s1, t1, isLN);
      // Attention-only blocks (the induction organism) have no ln2 and no MLP to fold into.
      if (!cfg.attnOnly) {
        const s2 = vec(w, `${b}.ln2.w`, D);
        const t2 = isLN ? vec(w, `${b}.ln2.b`, D) : null;
        foldInto(w, `${b}.mlp.W_in`, `${b}.mlp.b_in`, s2, t2, isLN);
        if (cfg.gatedMlp) foldInto(w, `${b}.mlp.W_gate`, `${b}.mlp.b_gate`, s2, t2, isLN);
      }
      for (const n of ['ln1.w', 'ln1.b', 'ln2.w', 'ln2.b']) w.delete(`${b}.${n}`);
    }
    foldInto(
      w,
      'unembed.W_U',
      'unembed.b_U',
      vec(w, 'ln_final.w', D),
      isLN ? vec(w, 'ln_final.b', D) : null,
      isLN,
    );
    w.delete('ln_final.w');
    w.delete('ln_final.b');
  }
  const centerWriting = o.centerWritingWeights && isLN;
  if (centerWriting) {
    // With LayerNorm reading every residual, a component along the all-ones direction is invisible.
    centerRows(w, 'embed.W_E');
    centerRows(w, 'pos_embed.W_pos');
    for (let l = 0; l < cfg.nLayers; l++) {
      for (const n of ['attn.W_O', 'attn.b_O', 'mlp.W_out', 'mlp.b_out']) centerRows(w, `blocks.${l}.${n}`);
    }
  }
  // Soft-capped logits (Gemma 2) are not shift-invariant, so their unembedding stays as it is.
  const centerUnembed = o.centerUnembed && !cfg.finalSoftcap;
  if (centerUnembed) {
    const U = need(w, 'unembed.W_U'); // [d_model, vocab]: center each row over the vocabulary
    centerRows(w, 'unembed.W_U');
    w.set('unembed.b_U', vec(w, 'unembed.b_U', U.shape[1]!));
    centerRows(w, 'unembed.b_U');
  }
  const foldValues = o.foldValueBiases;
  if (foldValues) {
    const g = cfg.nHeads / cfg.nKvHeads;
    const kvOfHead = Tensor.from(
      Array.from({ length: cfg.nHeads }, (_, h) => Math.floor(h / g)),
      [cfg.nHeads],
      'int64',
    );
    for (let l = 0; l < cfg.nLayers; l++) {
      const a = `blocks.${l}.attn`;
      const bV = w.get(`${a}.b_V`);
      if (!bV) continue;
      const WO = need(w, `${a}.W_O`); // [n_heads*d_head, d_model]
      // Query head h reads kv head floor(h / g); each head's output mixes values with weights summing
      // to 1, so the value bias passes through: b_O += b_V (repeated per query head) @ W_O.
      const perHead = gather(reshape(bV, [cfg.nKvHeads, cfg.dHead]), 0, kvOfHead); // [n_heads, d_head]
      const moved = reshape(matmul(reshape(perHead, [1, cfg.nHeads * cfg.dHead]), WO), [D]);
      w.set(`${a}.b_O`, add(vec(w, `${a}.b_O`, D), moved));
      w.set(`${a}.b_V`, Tensor.zeros(bV.shape));
    }
  }
  const normalization = foldLn ? (isLN ? 'LNPre' : 'RMSPre') : cfg.normalization;
  return {
    cfg: {
      ...cfg,
      normalization,
      processed: {
        foldLn: foldLn || cfg.processed.foldLn,
        centerWritingWeights: centerWriting || cfg.processed.centerWritingWeights,
        centerUnembed: centerUnembed || cfg.processed.centerUnembed,
        foldValueBiases: foldValues || cfg.processed.foldValueBiases,
      },
    },
    weights: w,
  };
}
