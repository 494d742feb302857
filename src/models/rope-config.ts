import { ConfigError } from '../errors.js';
import type { RopeScaling } from './config.js';
import type { HfConfig } from './hf-config.js';

/**
 * RoPE base and scaling from config.json: Hub-era flat keys (`rope_theta`, `rope_scaling`) or
 * transformers v5's `rope_parameters`, which Gemma 3 keys by layer type.
 */
export function ropeConfig(
  hf: HfConfig,
  layerType: 'full_attention' | 'sliding_attention' = 'full_attention',
  fallbackTheta = 10000,
): { ropeTheta: number; ropeScaling: RopeScaling | null } {
  const params = hf.rope_parameters as Record<string, unknown> | undefined | null;
  if (params && typeof params === 'object') {
    const p = (layerType in params ? params[layerType] : params) as Record<string, unknown>;
    return { ropeTheta: theta(p.rope_theta, fallbackTheta), ropeScaling: parseRopeScaling(p) };
  }
  return { ropeTheta: theta(hf.rope_theta, fallbackTheta), ropeScaling: parseRopeScaling(hf.rope_scaling) };
}

function theta(v: unknown, fallback: number): number {
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !(v > 0))
    throw new ConfigError(`config.json: rope_theta must be a positive number, got ${JSON.stringify(v)}`);
  return v;
}

export function parseRopeScaling(raw: unknown): RopeScaling | null {
  if (raw === null || raw === undefined) return null;
  const r = raw as Record<string, unknown>;
  const type = (r.rope_type ?? r.type ?? 'default') as string;
  if (type === 'default') return null;
  const factor = r.factor as number;
  if (type === 'linear') return { type, factor };
  if (type === 'llama3') {
    return {
      type,
      factor,
      lowFreqFactor: r.low_freq_factor as number,
      highFreqFactor: r.high_freq_factor as number,
      originalMaxPositionEmbeddings: r.original_max_position_embeddings as number,
    };
  }
  throw new ConfigError(`config.json: rope_scaling type '${type}' is not supported (llama3 and linear are)`);
}
