import { ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { gemmaConfig, gemmaWeights } from './gemma.js';
import { gptNeoConfig, gptNeoWeights } from './gpt-neo.js';
import { gptNeoxConfig, gptNeoxWeights } from './gpt-neox.js';
import { gpt2Config, gpt2Weights } from './gpt2.js';
import type { HfConfig } from './hf-config.js';
import { llamaConfig, llamaWeights } from './llama.js';
import type { Weights, WeightSource } from './weights.js';

export interface Architecture {
  parseConfig(hf: HfConfig): ModelConfig;
  loadWeights(src: WeightSource, cfg: ModelConfig): Weights;
  /**
   * Checkpoint tensors this architecture's real checkpoints carry that the computation does not use,
   * known by name (any other tensor left unread is an error): buffers and tied copies.
   */
  extras(cfg: ModelConfig): RegExp[];
}

/** HF ties the head to the embedding: a stored lm_head copy is not read. */
const tiedHead = (cfg: ModelConfig, name = 'lm_head.weight'): RegExp[] =>
  cfg.tiedEmbeddings ? [new RegExp(`^${name.replace(/\./g, '\\.')}$`)] : [];
/** Rotary inverse frequencies, recomputed from the config (older checkpoints saved them). */
const INV_FREQ = /\.rotary_emb\.inv_freq$/;

const llamaLike = (name: string): Architecture => ({
  parseConfig: (hf) => llamaConfig(hf, name),
  loadWeights: llamaWeights,
  extras: (cfg) => [INV_FREQ, ...tiedHead(cfg)],
});
const gemma = (name: string): Architecture => ({
  parseConfig: (hf) => gemmaConfig(hf, name),
  loadWeights: gemmaWeights,
  // Gemma 3's multimodal checkpoints carry a vision tower and projector; Sonde runs the text model.
  extras: (cfg) => [
    INV_FREQ,
    ...tiedHead(cfg),
    ...tiedHead(cfg, 'language_model.lm_head.weight'),
    ...(name === 'Gemma3ForConditionalGeneration'
      ? [/^(model\.)?vision_tower\./, /^(model\.)?multi_modal_projector\./]
      : []),
  ],
});

/** Hugging Face architecture class -> how to read it. */
export const ARCHITECTURES: Record<string, Architecture> = {
  GPT2LMHeadModel: {
    parseConfig: gpt2Config,
    loadWeights: gpt2Weights,
    // The causal-mask buffers older transformers saved.
    extras: () => [/(^|\.)h\.\d+\.attn\.(masked_)?bias$/],
  },
  GPTNeoForCausalLM: {
    parseConfig: gptNeoConfig,
    loadWeights: gptNeoWeights,
    extras: (cfg) => [/(^|\.)h\.\d+\.attn\.attention\.(masked_)?bias$/, ...tiedHead(cfg)],
  },
  GPTNeoXForCausalLM: {
    parseConfig: gptNeoxConfig,
    loadWeights: gptNeoxWeights,
    extras: (cfg) => [
      /(^|\.)layers\.\d+\.attention\.(masked_)?bias$/,
      INV_FREQ,
      ...tiedHead(cfg, 'embed_out.weight'),
    ],
  },
  LlamaForCausalLM: llamaLike('LlamaForCausalLM'),
  MistralForCausalLM: llamaLike('MistralForCausalLM'),
  Qwen2ForCausalLM: llamaLike('Qwen2ForCausalLM'),
  Qwen3ForCausalLM: llamaLike('Qwen3ForCausalLM'),
  GemmaForCausalLM: gemma('GemmaForCausalLM'),
  Gemma2ForCausalLM: gemma('Gemma2ForCausalLM'),
  Gemma3ForCausalLM: gemma('Gemma3ForCausalLM'),
  Gemma3ForConditionalGeneration: gemma('Gemma3ForConditionalGeneration'),
};

/** config.json's model_type, for files without an `architectures` list. */
const MODEL_TYPES: Record<string, string> = {
  gpt2: 'GPT2LMHeadModel',
  gpt_neo: 'GPTNeoForCausalLM',
  gpt_neox: 'GPTNeoXForCausalLM',
  llama: 'LlamaForCausalLM',
  mistral: 'MistralForCausalLM',
  qwen2: 'Qwen2ForCausalLM',
  qwen3: 'Qwen3ForCausalLM',
  gemma: 'GemmaForCausalLM',
  gemma2: 'Gemma2ForCausalLM',
  gemma3_text: 'Gemma3ForCausalLM',
  gemma3: 'Gemma3ForConditionalGeneration',
};

export function architectureOf(hf: HfConfig, file: string): { name: string; arch: Architecture } {
  const listed = Array.isArray(hf.architectures) ? (hf.architectures as string[]) : [];
  const byType = typeof hf.model_type === 'string' ? MODEL_TYPES[hf.model_type] : undefined;
  const name = listed.find((a) => a in ARCHITECTURES) ?? byType;
  if (!name) {
    const what = listed.length ? listed.join(', ') : `model_type '${String(hf.model_type)}'`;
    throw new ConfigError(
      `${file}: architecture ${what} is not supported; supported: ${Object.keys(ARCHITECTURES).join(', ')}`,
    );
  }
  return { name, arch: ARCHITECTURES[name]! };
}
