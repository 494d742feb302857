import { Tensor } from '../engine/tensor.js';
import type { ModelConfig } from './config.js';
import type { Weights } from './weights.js';

export type HeadWeightName = 'W_Q' | 'W_K' | 'W_V' | 'W_O';

/**
 * TransformerLens's per-head weight stacks from Sonde's fused layout (weights.ts):
 * W_Q, W_K, W_V [n_layers, n_heads, d_model, d_head] and W_O [n_layers, n_heads, d_head, d_model].
 * Under grouped-query attention W_K and W_V repeat each key/value head for its query group (query head
 * h reads kv head floor(h / (n_heads / n_kv_heads))), as TransformerLens's W_K does; the stored,
 * unrepeated [d_model, n_kv_heads*d_head] matrices stay under model.weights. A copy, not a view.
 */
export function headWeights(cfg: ModelConfig, weights: Weights, which: HeadWeightName): Tensor {
  const { nLayers: L, nHeads: H, nKvHeads: KV, dModel: d, dHead: dh } = cfg;
  const heads = which === 'W_K' || which === 'W_V' ? KV : H;
  const group = H / heads;
  const out = new Float32Array(L * H * d * dh);
  for (let l = 0; l < L; l++) {
    const w = weights.get(`blocks.${l}.attn.${which}`)!.f32Sync();
    for (let h = 0; h < H; h++) {
      const src = Math.floor(h / group);
      const base = (l * H + h) * d * dh;
      if (which === 'W_O') {
        // [n_heads*d_head, d_model]: head h is rows h*d_head..(h+1)*d_head, already [d_head, d_model].
        out.set(w.subarray(src * dh * d, (src + 1) * dh * d), base);
      } else {
        // [d_model, heads*d_head]: head h is columns h*d_head..(h+1)*d_head.
        for (let i = 0; i < d; i++) {
          out.set(w.subarray(i * heads * dh + src * dh, i * heads * dh + (src + 1) * dh), base + i * dh);
        }
      }
    }
  }
  return new Tensor(out, which === 'W_O' ? [L, H, dh, d] : [L, H, d, dh]);
}
