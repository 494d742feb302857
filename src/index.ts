// Sonde's public API (Node). Importing it registers the onnxruntime-node backend.
import './engine/node.js';

export * from './engine/index.js';
export { TracedFunction } from './engine/trace.js';
export { SONDE_GLIBC_TUNABLES, rerunWithTunedMalloc } from './engine/backend/malloc.js';
export * from './errors.js';
export { SafetensorsFile, SafetensorsCheckpoint, writeSafetensors } from './io/safetensors.js';
export { loadTokenizer, type Tokenizer, type EncodeOptions } from './io/tokenizer.js';
export type { ModelConfig } from './models/config.js';
export { forward, emptyKVCache, type ForwardOptions, type KVCache } from './models/transformer.js';
export { processWeights, type ProcessOptions } from './models/process-weights.js';
export { hookNames } from './models/hook-names.js';
export { defaultModelDir, loadModelDir } from './models/load.js';
export { ARCHITECTURES } from './models/architectures.js';
export type { Weights } from './models/weights.js';
export * from './hooks/index.js';
export {
  HookedTransformer,
  nextTokenLoss,
  type ModelInput,
  type LoadOptions,
} from './hooks/hooked-transformer.js';
export { generate, sample, type GenerateOptions, type GenerateResult } from './hooks/generate.js';
