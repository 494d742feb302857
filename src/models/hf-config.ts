import { ConfigError } from '../errors.js';

export type HfConfig = Record<string, unknown>;

/** A required numeric field of config.json. */
export function num(hf: HfConfig, key: string): number {
  const v = hf[key];
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ConfigError(`config.json: '${key}' must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** An optional numeric field (absent or null gives `fallback`). */
export function optNum(hf: HfConfig, key: string, fallback: number): number {
  const v = hf[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== 'number' || !Number.isFinite(v)) {
    throw new ConfigError(`config.json: '${key}' must be a number, got ${JSON.stringify(v)}`);
  }
  return v;
}

/** An optional soft-capping value: null, absent or 0 means none. */
export function optCap(hf: HfConfig, key: string): number | undefined {
  const v = optNum(hf, key, 0);
  return v > 0 ? v : undefined;
}

/**
 * Per-layer attention spans from transformers' `layer_types` ('sliding_attention' / 'full_attention'),
 * when config.json has them; undefined otherwise.
 */
export function layerTypes(hf: HfConfig, nLayers: number): ('global' | 'local')[] | undefined {
  const raw = hf.layer_types;
  if (raw === undefined || raw === null) return undefined;
  if (!Array.isArray(raw) || raw.length !== nLayers) {
    throw new ConfigError(
      `config.json: 'layer_types' must list ${nLayers} layers, got ${JSON.stringify(raw)}`,
    );
  }
  return raw.map((t, i) => {
    if (t === 'sliding_attention') return 'local';
    if (t === 'full_attention') return 'global';
    throw new ConfigError(
      `config.json: layer_types[${i}] is ${JSON.stringify(t)}; expected 'sliding_attention' or 'full_attention'`,
    );
  });
}

/** Per config key that changes the computation: whether Sonde implements this value (null/absent pass). */
export type UnsupportedKeys = Record<string, (value: unknown, architecture: string) => boolean>;

/**
 * Refuses (ConfigError naming the key and value) a config.json key that changes the computation with a
 * value Sonde does not implement: loading it silently would run a different model.
 */
export function refuseUnsupported(hf: HfConfig, architecture: string, keys: UnsupportedKeys): void {
  for (const [key, ok] of Object.entries(keys)) {
    const v = hf[key];
    if (v === undefined || v === null || ok(v, architecture)) continue;
    throw new ConfigError(
      `config.json: '${key}': ${JSON.stringify(v)} changes the computation and is not supported for ${architecture}`,
    );
  }
}
