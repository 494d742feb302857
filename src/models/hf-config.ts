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
