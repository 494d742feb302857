import { gather, permute, reshape, stack } from '../engine/ops/shape.js';
import { Tensor } from '../engine/tensor.js';
import type { ModelConfig } from './config.js';
import type { Weights } from './weights.js';

export type HeadWeightName = 'W_Q' | 'W_K' | 'W_V' | 'W_O';

/**
 * TransformerLens's per-head weight stacks from Sonde's fused layout (weights.ts):
 * W_Q, W_K, W_V [n_layers, n_heads, d_model, d_head] and W_O [n_layers, n_heads, d_head, d_model].
 * Under grouped-query attention W_K and W_V repeat each key/value head for its query group (query head
 * h reads kv head floor(h / (n_heads / n_kv_heads))), as TransformerLens's W_K does; the stored,
 * unrepeated [d_model, n_kv_heads*d_head] matrices stay under model.weights. Engine ops: no read.
 */
export function headWeights(cfg: ModelConfig, weights: Weights, which: HeadWeightName): Tensor {
  const { nLayers: L, nHeads: H, nKvHeads: KV, dModel: d, dHead: dh } = cfg;
  const heads = which === 'W_K' || which === 'W_V' ? KV : H;
  const group = H / heads;
  // Query head h reads stored head floor(h / group).
  const src = Tensor.from(
    Array.from({ length: H }, (_, h) => Math.floor(h / group)),
    [H],
    'int64',
  );
  const perLayer = Array.from({ length: L }, (_, l) => {
    const w = weights.get(`blocks.${l}.attn.${which}`)!;
    const byHead =
      which === 'W_O'
        ? reshape(w, [heads, dh, d]) // [n_heads*d_head, d_model]: head h is rows h*d_head..
        : permute(reshape(w, [d, heads, dh]), [1, 0, 2]); // [d_model, heads*d_head]: columns
    return group === 1 ? byHead : gather(byHead, 0, src);
  });
  return stack(perLayer, 0);
}
