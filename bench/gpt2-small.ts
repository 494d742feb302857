import { Rng } from '../src/engine/random.js';
import { Tensor } from '../src/engine/tensor.js';
import type { ModelConfig } from '../src/models/config.js';
import { gpt2Config } from '../src/models/gpt2.js';
import type { Weights } from '../src/models/weights.js';

/** A GPT-2-small-shaped config (12 layers, d_model 768, 12 heads, vocab 50257). */
export function gpt2SmallConfig(): ModelConfig {
  return gpt2Config({ n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, vocab_size: 50257 });
}

/** Random weights, std 0.02 as GPT-2's init, LayerNorm weights 1 and biases 0. Seeded. */
export function randomWeights(cfg: ModelConfig, seed = 0): Weights {
  const rng = new Rng(seed);
  const w: Weights = new Map();
  const randn = (shape: number[], std = 0.02) => {
    const t = Tensor.zeros(shape);
    const d = t.f32();
    for (let i = 0; i < d.length; i++) d[i] = rng.normal() * std;
    return t;
  };
  const { dModel: D, dMlp: F, vocabSize: V, nCtx } = cfg;
  const E = randn([V, D]);
  w.set('embed.W_E', E);
  w.set('pos_embed.W_pos', randn([nCtx, D], 0.01));
  for (let l = 0; l < cfg.nLayers; l++) {
    const b = `blocks.${l}`;
    w.set(`${b}.ln1.w`, Tensor.full([D], 1));
    w.set(`${b}.ln1.b`, Tensor.zeros([D]));
    for (const n of ['Q', 'K', 'V']) {
      w.set(`${b}.attn.W_${n}`, randn([D, D]));
      w.set(`${b}.attn.b_${n}`, Tensor.zeros([D]));
    }
    w.set(`${b}.attn.W_O`, randn([D, D]));
    w.set(`${b}.attn.b_O`, Tensor.zeros([D]));
    w.set(`${b}.ln2.w`, Tensor.full([D], 1));
    w.set(`${b}.ln2.b`, Tensor.zeros([D]));
    w.set(`${b}.mlp.W_in`, randn([D, F]));
    w.set(`${b}.mlp.b_in`, Tensor.zeros([F]));
    w.set(`${b}.mlp.W_out`, randn([F, D]));
    w.set(`${b}.mlp.b_out`, Tensor.zeros([D]));
  }
  w.set('ln_final.w', Tensor.full([D], 1));
  w.set('ln_final.b', Tensor.zeros([D]));
  // Tied unembedding, stored [d_model, vocab].
  const U = new Float32Array(D * V);
  const e = E.f32();
  for (let v = 0; v < V; v++) for (let d = 0; d < D; d++) U[d * V + v] = e[v * D + d]!;
  w.set('unembed.W_U', new Tensor(U, [D, V]));
  w.set('unembed.b_U', Tensor.zeros([V]));
  return w;
}

/** Forward FLOPs (multiply-adds x 2): block matmuls, attention (full square), unembedding. */
export function forwardFlops(cfg: ModelConfig, P: number): number {
  const D = cfg.dModel;
  const perLayer = 2 * P * D * (3 * D + D + 2 * cfg.dMlp) + 4 * P * P * D;
  return cfg.nLayers * perLayer + 2 * P * D * cfg.vocabSize;
}
