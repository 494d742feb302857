import { ConfigError } from '../errors.js';
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

type Mat = { data: Float32Array; rows: number; cols: number };

function mat(w: Weights, name: string): Mat {
  const t = w.get(name);
  if (!t) throw new ConfigError(`processWeights: weight '${name}' is missing`);
  return { data: Float32Array.from(t.f32Sync()), rows: t.shape[0]!, cols: t.shape[1] ?? 1 };
}

function vec(w: Weights, name: string, n: number): Float32Array {
  const t = w.get(name);
  return t ? Float32Array.from(t.f32Sync()) : new Float32Array(n);
}

/** W' = diag(scale) W and b' = b + shift @ W for a reader of a norm with weight `scale`, bias `shift`. */
function foldInto(
  w: Weights,
  W: string,
  b: string,
  scale: Float32Array,
  shift: Float32Array | null,
  center: boolean,
): void {
  const m = mat(w, W);
  const bias = vec(w, b, m.cols);
  for (let c = 0; c < m.cols; c++) {
    let acc = 0;
    for (let r = 0; r < m.rows; r++) acc += (shift ? shift[r]! : 0) * m.data[r * m.cols + c]!;
    bias[c] = bias[c]! + acc;
  }
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) m.data[r * m.cols + c]! *= scale[r]!;
  if (center) {
    // LNPre output has zero mean across d_model, so a constant per output column is invisible.
    for (let c = 0; c < m.cols; c++) {
      let mean = 0;
      for (let r = 0; r < m.rows; r++) mean += m.data[r * m.cols + c]!;
      mean /= m.rows;
      for (let r = 0; r < m.rows; r++) m.data[r * m.cols + c]! -= mean;
    }
  }
  w.set(W, new Tensor(m.data, [m.rows, m.cols]));
  if (shift || w.has(b)) w.set(b, new Tensor(bias, [m.cols]));
}

/** Subtracts each row's mean over the last axis (the d_model axis of a residual writer). */
function centerRows(w: Weights, name: string): void {
  const t = w.get(name);
  if (!t) return;
  const d = Float32Array.from(t.f32Sync());
  const cols = t.shape[t.rank - 1]!;
  for (let r = 0; r < d.length / cols; r++) {
    let mean = 0;
    for (let c = 0; c < cols; c++) mean += d[r * cols + c]!;
    mean /= cols;
    for (let c = 0; c < cols; c++) d[r * cols + c]! -= mean;
  }
  w.set(name, new Tensor(d, t.shape));
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
      for (const n of ['attn.W_O', 'attn.b_O', 'mlp.W_out', 'mlp.b_out']) {
        const name = `blocks.${l}.${n}`;
        const t = w.get(name);
        if (t && t.rank === 1) {
          w.set(name, new Tensor(t.f32Sync(), [1, t.size]));
          centerRows(w, name);
          w.set(name, new Tensor(w.get(name)!.f32Sync(), [t.size]));
        } else centerRows(w, name);
      }
    }
  }
  // Soft-capped logits (Gemma 2) are not shift-invariant, so their unembedding stays as it is.
  const centerUnembed = o.centerUnembed && !cfg.finalSoftcap;
  if (centerUnembed) {
    const U = mat(w, 'unembed.W_U'); // [d_model, vocab]: center each row over the vocabulary
    w.set('unembed.W_U', new Tensor(U.data, [U.rows, U.cols]));
    centerRows(w, 'unembed.W_U');
    const bU = vec(w, 'unembed.b_U', U.cols);
    const mean = bU.reduce((a, b) => a + b, 0) / bU.length;
    w.set(
      'unembed.b_U',
      new Tensor(
        bU.map((x) => x - mean),
        [U.cols],
      ),
    );
  }
  const foldValues = o.foldValueBiases;
  if (foldValues) {
    const g = cfg.nHeads / cfg.nKvHeads;
    for (let l = 0; l < cfg.nLayers; l++) {
      const a = `blocks.${l}.attn`;
      if (!w.has(`${a}.b_V`)) continue;
      const bV = w.get(`${a}.b_V`)!.f32Sync();
      const WO = mat(w, `${a}.W_O`); // [n_heads*d_head, d_model]
      const bO = vec(w, `${a}.b_O`, D);
      // Query head h reads kv head floor(h / g); each head's output mixes values with weights summing to 1.
      for (let h = 0; h < cfg.nHeads; h++) {
        const kv = Math.floor(h / g);
        for (let i = 0; i < cfg.dHead; i++) {
          const bv = bV[kv * cfg.dHead + i]!;
          const row = (h * cfg.dHead + i) * D;
          for (let c = 0; c < D; c++) bO[c] = bO[c]! + bv * WO.data[row + c]!;
        }
      }
      w.set(`${a}.b_O`, new Tensor(bO, [D]));
      w.set(`${a}.b_V`, new Tensor(new Float32Array(bV.length), [bV.length]));
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
