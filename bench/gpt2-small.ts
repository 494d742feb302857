import { initGpt2Weights } from '../src/models/init.js';
import type { ModelConfig } from '../src/models/config.js';
import { gpt2Config } from '../src/models/gpt2.js';
import type { Weights } from '../src/models/weights.js';

/** A GPT-2-small-shaped config (12 layers, d_model 768, 12 heads, vocab 50257). */
export function gpt2SmallConfig(): ModelConfig {
  return gpt2Config({ n_embd: 768, n_head: 12, n_layer: 12, n_positions: 1024, vocab_size: 50257 });
}

/** Random weights, std 0.02 as GPT-2's init (positions 0.01), LayerNorm 1/0, tied unembedding. Seeded. */
export function randomWeights(cfg: ModelConfig, seed = 0): Weights {
  return initGpt2Weights(cfg, { seed, std: 0.02, posStd: 0.01, tied: true });
}

/** Forward FLOPs (multiply-adds x 2): block matmuls, attention (full square), unembedding. */
export function forwardFlops(cfg: ModelConfig, P: number): number {
  const D = cfg.dModel;
  const perLayer = 2 * P * D * (3 * D + D + 2 * cfg.dMlp) + 4 * P * P * D;
  return cfg.nLayers * perLayer + 2 * P * D * cfg.vocabSize;
}
