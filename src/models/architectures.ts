import { ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { gpt2Config, gpt2Weights } from './gpt2.js';
import type { HfConfig } from './hf-config.js';
import { llamaConfig, llamaWeights } from './llama.js';
import type { Weights, WeightSource } from './weights.js';

export interface Architecture {
  parseConfig(hf: HfConfig): ModelConfig;
  loadWeights(src: WeightSource, cfg: ModelConfig): Weights;
}

/** Hugging Face architecture class -> how to read it. Later architectures register here. */
export const ARCHITECTURES: Record<string, Architecture> = {
  GPT2LMHeadModel: { parseConfig: gpt2Config, loadWeights: gpt2Weights },
  LlamaForCausalLM: { parseConfig: llamaConfig, loadWeights: llamaWeights },
};

const MODEL_TYPES: Record<string, string> = { gpt2: 'GPT2LMHeadModel', llama: 'LlamaForCausalLM' };

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
