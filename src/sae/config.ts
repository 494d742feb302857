// What an SAE (or transcoder) is: its architecture, sizes, the hook it reads and the one it writes.
// Field meanings follow SAELens's cfg.json; src/sae/saelens.ts maps the two.
import { SaeError } from '../errors.js';

export { SaeError };

/** SAELens's hook points inside an SAE, in the order a forward pass reaches them. */
export const SAE_HOOKS = [
  'hook_sae_input',
  'hook_sae_acts_pre',
  'hook_sae_acts_post',
  'hook_sae_recons',
  'hook_sae_error',
  'hook_sae_output',
] as const;
export type SaeHookName = (typeof SAE_HOOKS)[number];

export const SAE_ARCHITECTURES = ['standard', 'topk', 'batchtopk', 'jumprelu', 'gated'] as const;
export type SaeArchitecture = (typeof SAE_ARCHITECTURES)[number];

/**
 * How inputs are normalised before encoding (SAELens's normalize_activations):
 * - 'none'
 * - 'expected_average_only_in': multiplied by `scalingFactor` (chosen in training so that the mean
 *   input norm is sqrt(d_in)); outputs are divided by it. Saved SAEs fold it into the weights.
 * - 'constant_norm_rescale': each input scaled to norm sqrt(d_in), the output scaled back.
 * - 'layer_norm': each input centred and divided by its std, the output un-normalised.
 */
export const NORMALIZATIONS = [
  'none',
  'expected_average_only_in',
  'constant_norm_rescale',
  'layer_norm',
] as const;
export type ActivationNormalization = (typeof NORMALIZATIONS)[number];

export interface SaeConfig {
  architecture: SaeArchitecture;
  dIn: number;
  dSae: number;
  /** Width of what it reconstructs: dIn for an SAE, the output hook's width for a transcoder. */
  dOut: number;
  /** The hook it reads (and, for an SAE, replaces). */
  hookName: string;
  /** Transcoders: the hook whose activation it predicts (and replaces). Null for an SAE. */
  hookNameOut: string | null;
  /** Active latents per row (topk) or on average per row (batchtopk). */
  k: number | null;
  /** Subtract b_dec from the input before encoding. */
  applyBDecToInput: boolean;
  normalizeActivations: ActivationNormalization;
  /** Input multiplier for 'expected_average_only_in' when it is not folded into the weights. */
  scalingFactor: number | null;
  /** Provenance carried to and from SAELens's metadata (model_name, hook_layer, context_size, ...). */
  metadata: Record<string, unknown>;
}

/** Parameter shapes under SAELens's names; which ones exist depends on the architecture. */
export function paramShapes(cfg: SaeConfig, withSkip: boolean): Record<string, number[]> {
  const s: Record<string, number[]> = {
    W_enc: [cfg.dIn, cfg.dSae],
    W_dec: [cfg.dSae, cfg.dOut],
    b_dec: [cfg.dOut],
  };
  if (cfg.architecture === 'gated') {
    s.b_gate = [cfg.dSae];
    s.r_mag = [cfg.dSae];
    s.b_mag = [cfg.dSae];
  } else s.b_enc = [cfg.dSae];
  if (cfg.architecture === 'jumprelu') s.threshold = [cfg.dSae];
  if (withSkip) s.W_skip = [cfg.dIn, cfg.dOut];
  return s;
}

export function isTranscoder(cfg: SaeConfig): boolean {
  return cfg.hookNameOut !== null;
}

/** Checks sizes and the fields each architecture needs; throws SaeError naming the field. */
export function validateSaeConfig(cfg: SaeConfig, where = 'SAE config'): void {
  const posInt = (v: unknown, name: string) => {
    if (!Number.isInteger(v) || (v as number) < 1)
      throw new SaeError(`${where}: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  };
  if (!SAE_ARCHITECTURES.includes(cfg.architecture)) {
    throw new SaeError(
      `${where}: unknown architecture ${JSON.stringify(cfg.architecture)} (supported: ${SAE_ARCHITECTURES.join(', ')})`,
    );
  }
  posInt(cfg.dIn, 'd_in');
  posInt(cfg.dSae, 'd_sae');
  posInt(cfg.dOut, 'd_out');
  if (typeof cfg.hookName !== 'string' || cfg.hookName === '')
    throw new SaeError(`${where}: hook_name is missing`);
  if (!isTranscoder(cfg) && cfg.dOut !== cfg.dIn)
    throw new SaeError(
      `${where}: an SAE reconstructs its input, so d_out (${cfg.dOut}) must equal d_in (${cfg.dIn})`,
    );
  if (cfg.architecture === 'topk' || cfg.architecture === 'batchtopk') {
    posInt(cfg.k, 'k');
    if (cfg.k! > cfg.dSae) throw new SaeError(`${where}: k (${cfg.k}) is larger than d_sae (${cfg.dSae})`);
  }
  if (!NORMALIZATIONS.includes(cfg.normalizeActivations)) {
    throw new SaeError(
      `${where}: unknown normalize_activations ${JSON.stringify(cfg.normalizeActivations)} (supported: ${NORMALIZATIONS.join(', ')})`,
    );
  }
  if (cfg.scalingFactor !== null && !(cfg.scalingFactor > 0 && Number.isFinite(cfg.scalingFactor)))
    throw new SaeError(`${where}: scaling factor must be a positive number, got ${cfg.scalingFactor}`);
}

/** A config with SAELens's defaults for everything not given. */
export function saeConfig(
  p: Pick<SaeConfig, 'architecture' | 'dIn' | 'dSae' | 'hookName'> & Partial<SaeConfig>,
): SaeConfig {
  const cfg: SaeConfig = {
    dOut: p.dOut ?? p.dIn,
    hookNameOut: null,
    k: null,
    applyBDecToInput: p.architecture !== 'topk' && p.architecture !== 'batchtopk' && !p.hookNameOut,
    normalizeActivations: 'none',
    scalingFactor: null,
    metadata: {},
    ...p,
  };
  validateSaeConfig(cfg);
  return cfg;
}
