import { transpose } from '../engine/ops/shape.js';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import type { ModelConfig } from './config.js';
import type { Weights } from './weights.js';

export interface InitOptions {
  seed?: number;
  /** Std of every matrix (default TransformerLens's 0.8/sqrt(d_model); GPT-2 uses 0.02). */
  std?: number;
  /** Std of the position embeddings (default: std). */
  posStd?: number;
  /** W_U = W_E^T (GPT-2's tying) instead of an independent matrix. */
  tied?: boolean;
}

/**
 * Random weights for a GPT-2-family config (with or without MLPs and LayerNorm): N(0, std) matrices,
 * LayerNorm weights 1 and biases 0, zero biases. Seeded.
 */
export function initGpt2Weights(cfg: ModelConfig, o: InitOptions = {}): Weights {
  const rng = new Rng(o.seed ?? 0);
  const std = o.std ?? 0.8 / Math.sqrt(cfg.dModel);
  const randn = (shape: number[], s = std) => {
    const d = new Float32Array(shape.reduce((a, b) => a * b, 1));
    for (let i = 0; i < d.length; i++) d[i] = rng.normal() * s;
    return new Tensor(d, shape);
  };
  const { dModel: D, dMlp: F, vocabSize: V, nCtx } = cfg;
  const ln = cfg.normalization === 'LN';
  const w: Weights = new Map();
  const norm = (name: string) => {
    if (!ln) return;
    w.set(`${name}.w`, Tensor.full([D], 1));
    w.set(`${name}.b`, Tensor.zeros([D]));
  };
  const E = randn([V, D]);
  w.set('embed.W_E', E);
  w.set('pos_embed.W_pos', randn([nCtx, D], o.posStd ?? std));
  for (let l = 0; l < cfg.nLayers; l++) {
    const b = `blocks.${l}`;
    norm(`${b}.ln1`);
    for (const n of ['Q', 'K', 'V']) {
      w.set(`${b}.attn.W_${n}`, randn([D, D]));
      w.set(`${b}.attn.b_${n}`, Tensor.zeros([D]));
    }
    w.set(`${b}.attn.W_O`, randn([D, D]));
    w.set(`${b}.attn.b_O`, Tensor.zeros([D]));
    if (cfg.attnOnly) continue;
    norm(`${b}.ln2`);
    w.set(`${b}.mlp.W_in`, randn([D, F]));
    w.set(`${b}.mlp.b_in`, Tensor.zeros([F]));
    w.set(`${b}.mlp.W_out`, randn([F, D]));
    w.set(`${b}.mlp.b_out`, Tensor.zeros([D]));
  }
  norm('ln_final');
  if (o.tied) {
    w.set('unembed.W_U', transpose(E));
  } else {
    w.set('unembed.W_U', randn([D, V]));
  }
  w.set('unembed.b_U', Tensor.zeros([V]));
  return w;
}
