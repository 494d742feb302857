import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, TokenizerError } from '../errors.js';
import { SafetensorsCheckpoint } from '../io/safetensors.js';
import { loadTokenizer, type Tokenizer } from '../io/tokenizer.js';
import { architectureOf } from './architectures.js';
import type { ModelConfig } from './config.js';
import type { HfConfig } from './hf-config.js';
import { ProgressSource, type LoadProgress } from './load-progress.js';
import {
  checkLoadMemory,
  estimateLoadMemory,
  resolveMemoryLimit,
  type MemoryEstimate,
  type MemoryLimit,
} from './memory.js';
import { ReadTracker, type Weights } from './weights.js';

export interface LoadedModel {
  cfg: ModelConfig;
  weights: Weights;
  tokenizer: Tokenizer | null;
  dir: string;
  /** What the load was estimated to need (checked before any tensor was read). */
  memory: MemoryEstimate;
}

/** How {@link loadModelDir} checks memory and reports progress. */
export interface ModelDirOptions {
  /**
   * Refuse with MemoryError, before reading any tensor, when the load needs more bytes than this.
   * Default: SONDE_MAX_MEMORY when set (e.g. '8GB', '512MB', bytes, 'unlimited'), else the memory
   * available now (see availableMemory). Infinity turns the check off.
   */
  memoryLimitBytes?: number;
  /** Called once with the estimate and the limit it is checked against, before the check. */
  onEstimate?: (estimate: MemoryEstimate, limit: MemoryLimit) => void;
  /** Called after each checkpoint tensor is read; a throw from it stops the load. */
  onProgress?: (progress: LoadProgress) => void;
}

/** The model shipped inside the package (stories260K, MIT, see assets/stories260K/PROVENANCE.md). */
export function defaultModelDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  // src/models (tsx) or dist/src/models (built): walk up to the package root.
  let dir = here;
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'assets', 'stories260K');
    if (fs.existsSync(candidate)) return candidate;
    dir = path.dirname(dir);
  }
  throw new ConfigError('the built-in model assets/stories260K is missing from this installation');
}

/**
 * Loads a Hugging Face model folder: config.json, *.safetensors, and a tokenizer if one is there. The
 * memory the weights will take is estimated from the headers and checked first (MemoryError when it
 * will not fit); tensors are then read and converted one at a time.
 */
export function loadModelDir(dir: string, opts: ModelDirOptions = {}): LoadedModel {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) {
    throw new ConfigError(`model folder '${dir}' does not exist`);
  }
  const cfgPath = path.join(dir, 'config.json');
  if (!fs.existsSync(cfgPath))
    throw new ConfigError(`'${dir}' has no config.json (is it a Hugging Face model folder?)`);
  let hf: HfConfig;
  try {
    hf = JSON.parse(fs.readFileSync(cfgPath, 'utf8')) as HfConfig;
  } catch (e) {
    throw new ConfigError(`${cfgPath}: not valid JSON (${(e as Error).message})`);
  }
  const { arch } = architectureOf(hf, cfgPath);
  const cfg = arch.parseConfig(hf);
  const ckpt = SafetensorsCheckpoint.open(dir);
  let weights: Weights;
  let memory: MemoryEstimate;
  try {
    memory = estimateLoadMemory(ckpt, cfg);
    const limit = resolveMemoryLimit(opts.memoryLimitBytes);
    opts.onEstimate?.(memory, limit);
    checkLoadMemory(dir, memory, limit);
    const progress = opts.onProgress ? new ProgressSource(ckpt, opts.onProgress) : null;
    const src = new ReadTracker(progress ?? ckpt);
    weights = arch.loadWeights(src, cfg);
    src.checkAllUsed(arch.extras(cfg), dir);
    progress?.finish();
  } finally {
    ckpt.close();
  }
  let tokenizer: Tokenizer | null = null;
  try {
    tokenizer = loadTokenizer(dir);
  } catch (e) {
    // A model without tokenizer files still runs on token ids; a broken tokenizer file is an error.
    if (!(e instanceof TokenizerError && e.message.startsWith('No tokenizer found'))) throw e;
  }
  return { cfg, weights, tokenizer, dir, memory };
}
