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
}

const llamaLike = (name: string): Architecture => ({
  parseConfig: (hf) => llamaConfig(hf, name),
  loadWeights: llamaWeights,
});
const gemma = (name: string): Architecture => ({
  parseConfig: (hf) => gemmaConfig(hf, name),
  loadWeights: gemmaWeights,
});

/** Hugging Face architecture class -> how to read it. */
export const ARCHITECTURES: Record<string, Architecture> = {
  GPT2LMHeadModel: { parseConfig: gpt2Config, loadWeights: gpt2Weights },
  GPTNeoForCausalLM: { parseConfig: gptNeoConfig, loadWeights: gptNeoWeights },
  GPTNeoXForCausalLM: { parseConfig: gptNeoxConfig, loadWeights: gptNeoxWeights },
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
