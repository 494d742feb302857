// SAELens's on-disk format, both ways: a folder with cfg.json, sae_weights.safetensors and, optionally,
// sparsity.safetensors (log10 feature density per latent).
//
// cfg.json comes in two layouts. Before SAELens 6 everything sat at the top level (hook_name, hook_layer,
// model_name, activation_fn_str, finetuning_scaling_factor, ...; "architecture" absent meant 'standard'). From
// SAELens 6 on, the top level holds what the forward pass needs (architecture, d_in, d_sae, dtype, device,
// apply_b_dec_to_input, normalize_activations, reshape_activations, k, d_out) and the model/hook provenance
// lives under "metadata" (hook_name, model_name, sae_lens_version, ...). The loader reads both; the saver
// writes SAELens 6's layout. Keys Sonde does not use are kept in cfg.metadata, so a round trip keeps them.
import fs from 'node:fs';
import path from 'node:path';
import { SondeError } from '../errors.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { replaceDir } from '../models/save.js';
import { Tensor } from '../engine/tensor.js';
import {
  NORMALIZATIONS,
  SaeError,
  validateSaeConfig,
  type ActivationNormalization,
  type SaeArchitecture,
  type SaeConfig,
} from './config.js';
import { SparseAutoencoder, type SaeParams } from './sae.js';
import { tempSibling } from '../io/leftovers.js';

export const SAELENS_CFG_FILE = 'cfg.json';
export const SAELENS_WEIGHTS_FILE = 'sae_weights.safetensors';
export const SAELENS_SPARSITY_FILE = 'sparsity.safetensors';
/**
 * The version written to metadata.sae_lens_version. SAELens converts any cfg.json without a version
 * of 6 or later from the old layout (and would then drop the metadata object), so it must be >= 6.
 */
export const SAELENS_FORMAT_VERSION = '6.0.0';

interface ArchInfo {
  arch: SaeArchitecture;
  transcoder: boolean;
  skip: boolean;
}

/**
 * SAELens architecture names Sonde reads. 'batchtopk' and 'matryoshka_batchtopk' are SAELens training
 * checkpoints (SAELens itself saves them for inference as 'jumprelu').
 */
const ARCHITECTURES: Record<string, ArchInfo> = {
  standard: { arch: 'standard', transcoder: false, skip: false },
  topk: { arch: 'topk', transcoder: false, skip: false },
  jumprelu: { arch: 'jumprelu', transcoder: false, skip: false },
  gated: { arch: 'gated', transcoder: false, skip: false },
  batchtopk: { arch: 'batchtopk', transcoder: false, skip: false },
  matryoshka_batchtopk: { arch: 'batchtopk', transcoder: false, skip: false },
  transcoder: { arch: 'standard', transcoder: true, skip: false },
  skip_transcoder: { arch: 'standard', transcoder: true, skip: true },
  jumprelu_transcoder: { arch: 'jumprelu', transcoder: true, skip: false },
};
export const SAELENS_ARCHITECTURES: readonly string[] = Object.keys(ARCHITECTURES);

/** Old key names SAELens still renames when it reads a pre-6 cfg.json. */
const RENAMED: Record<string, string> = {
  hook_point: 'hook_name',
  hook_point_head_index: 'hook_head_index',
  hook_point_layer: 'hook_layer',
  activation_fn_str: 'activation_fn',
};

type Json = Record<string, unknown>;

function isObject(x: unknown): x is Json {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function show(x: unknown): string {
  return x === undefined ? 'nothing' : JSON.stringify(x);
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Removes `key` from `obj` and returns its value. */
function take(obj: Json, key: string): unknown {
  const v = obj[key];
  delete obj[key];
  return v;
}

// ---------------------------------------------------------------------------------------------------------
// cfg.json -> SaeConfig
// ---------------------------------------------------------------------------------------------------------

interface ParsedCfg {
  cfg: SaeConfig;
  /** The SAELens architecture name as written (for messages). */
  saeLensArch: string;
  skip: boolean;
  /** TopK: pre-activations are scaled by decoder-row norms (folded into the weights on load). */
  rescaleByDecoderNorm: boolean;
  /** Pre-6 SAELens: latents are multiplied by a `scaling_factor` tensor before decoding. */
  finetuningScaling: boolean;
}

function readCfgJson(cfgPath: string): Json {
  let text: string;
  try {
    text = fs.readFileSync(cfgPath, 'utf8');
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'not found' : message(e);
    throw new SaeError(
      `${cfgPath}: ${why} (a SAELens SAE folder holds ${SAELENS_CFG_FILE} and ${SAELENS_WEIGHTS_FILE})`,
    );
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new SaeError(`${cfgPath}: not valid JSON (${message(e)})`);
  }
  if (!isObject(raw)) throw new SaeError(`${cfgPath}: expected a JSON object, got ${show(raw)}`);
  return raw;
}

function parseCfg(raw: Json, where: string): ParsedCfg {
  const top: Json = { ...raw };
  const metaRaw = take(top, 'metadata');
  if (metaRaw !== undefined && metaRaw !== null && !isObject(metaRaw))
    throw new SaeError(`${where}: "metadata" must be an object, got ${show(metaRaw)}`);
  const meta: Json = { ...(metaRaw ?? {}) };
  for (const obj of [top, meta])
    for (const [old, now] of Object.entries(RENAMED))
      if (old in obj && !(now in obj)) obj[now] = take(obj, old);

  const posInt = (v: unknown, key: string): number => {
    if (v === undefined || v === null) throw new SaeError(`${where}: "${key}" is missing`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
      throw new SaeError(`${where}: "${key}" must be a positive integer, got ${show(v)}`);
    return v;
  };
  const bool = (v: unknown, key: string, dflt: boolean): boolean => {
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean')
      throw new SaeError(`${where}: "${key}" must be true or false, got ${show(v)}`);
    return v;
  };
  const str = (v: unknown, key: string): string => {
    if (typeof v !== 'string' || v === '')
      throw new SaeError(`${where}: "${key}" is missing or not a string (got ${show(v)})`);
    return v;
  };

  const dIn = posInt(take(top, 'd_in'), 'd_in');
  const dSae = posInt(take(top, 'd_sae'), 'd_sae');

  const archRaw = take(top, 'architecture') ?? 'standard';
  if (typeof archRaw !== 'string' || !Object.prototype.hasOwnProperty.call(ARCHITECTURES, archRaw))
    throw new SaeError(
      `${where}: unknown architecture ${show(archRaw)} (supported: ${SAELENS_ARCHITECTURES.join(', ')})`,
    );
  let saeLensArch = archRaw;
  let info = ARCHITECTURES[archRaw]!;

  // Pre-6 SAELens: a TopK SAE is a 'standard' one with activation_fn 'topk' and activation_fn_kwargs.k.
  const activationFn = take(top, 'activation_fn');
  const fnKwargs = take(top, 'activation_fn_kwargs');
  if (activationFn !== undefined && activationFn !== null && activationFn !== 'relu') {
    if (activationFn === 'topk' && (info.arch === 'topk' || (info.arch === 'standard' && !info.transcoder))) {
      saeLensArch = 'topk';
      info = ARCHITECTURES.topk!;
    } else {
      throw new SaeError(
        `${where}: activation_fn ${show(activationFn)} is not supported for architecture '${archRaw}' ` +
          `(supported: relu, and topk for a standard SAE)`,
      );
    }
  }

  let k: number | null = null;
  let rescaleByDecoderNorm = false;
  if (info.arch === 'topk' || info.arch === 'batchtopk') {
    const kRaw = take(top, 'k') ?? (isObject(fnKwargs) ? fnKwargs.k : undefined);
    k = posInt(kRaw, 'k');
    rescaleByDecoderNorm = bool(
      take(top, 'rescale_acts_by_decoder_norm'),
      'rescale_acts_by_decoder_norm',
      false,
    );
  }

  const applyBDecToInput = bool(take(top, 'apply_b_dec_to_input'), 'apply_b_dec_to_input', !info.transcoder);
  if (info.transcoder && applyBDecToInput)
    throw new SaeError(
      `${where}: apply_b_dec_to_input is not supported for transcoders (SAELens rejects it)`,
    );

  const normRaw = take(top, 'normalize_activations');
  let normalizeActivations: ActivationNormalization;
  if (normRaw === undefined || normRaw === null || normRaw === false) normalizeActivations = 'none';
  else if (normRaw === true) normalizeActivations = 'expected_average_only_in';
  else if (typeof normRaw === 'string' && (NORMALIZATIONS as readonly string[]).includes(normRaw))
    normalizeActivations = normRaw as ActivationNormalization;
  else
    throw new SaeError(
      `${where}: unknown normalize_activations ${show(normRaw)} (supported: ${NORMALIZATIONS.join(', ')})`,
    );

  const finetuningScaling = bool(take(top, 'finetuning_scaling_factor'), 'finetuning_scaling_factor', false);

  const dOutRaw = take(top, 'd_out');
  let dOut = dIn;
  if (info.transcoder) dOut = posInt(dOutRaw, 'd_out');
  else if (dOutRaw !== undefined && dOutRaw !== null && dOutRaw !== dIn)
    throw new SaeError(`${where}: "d_out" (${show(dOutRaw)}) must equal "d_in" (${dIn}) for an SAE`);

  const hookTop = take(top, 'hook_name');
  const hookMeta = take(meta, 'hook_name');
  const hookName = str(hookMeta ?? hookTop, 'hook_name');
  let hookNameOut: string | null = null;
  if (info.transcoder) {
    const outTop = take(top, 'hook_name_out');
    const outMeta = take(meta, 'hook_name_out');
    hookNameOut = str(outMeta ?? outTop, 'hook_name_out');
  }

  // Storage details and format bookkeeping: Sonde computes in float32, splits heads itself, and writes
  // its own format version on save.
  for (const key of ['dtype', 'device', 'reshape_activations']) take(top, key);
  take(top, 'sae_lens_version');
  take(meta, 'sae_lens_version');

  const metadata: Json = { ...meta };
  for (const [key, v] of Object.entries(top)) if (!(key in metadata)) metadata[key] = v;

  const cfg: SaeConfig = {
    architecture: info.arch,
    dIn,
    dSae,
    dOut,
    hookName,
    hookNameOut,
    k,
    applyBDecToInput,
    normalizeActivations,
    scalingFactor: null,
    metadata,
  };
  validateSaeConfig(cfg, where);
  return { cfg, saeLensArch, skip: info.skip, rescaleByDecoderNorm, finetuningScaling };
}

// ---------------------------------------------------------------------------------------------------------
// sae_weights.safetensors -> params
// ---------------------------------------------------------------------------------------------------------

type Dim = 'd_in' | 'd_sae' | 'd_out';

/** Tensor shapes in SAELens's layout (W_skip is [d_out, d_in] there), by dimension name. */
function saeLensShapes(arch: SaeArchitecture, skip: boolean): Record<string, Dim[]> {
  const s: Record<string, Dim[]> = { W_enc: ['d_in', 'd_sae'], W_dec: ['d_sae', 'd_out'], b_dec: ['d_out'] };
  if (arch === 'gated') {
    s.b_gate = ['d_sae'];
    s.r_mag = ['d_sae'];
    s.b_mag = ['d_sae'];
  } else s.b_enc = ['d_sae'];
  if (arch === 'jumprelu') s.threshold = ['d_sae'];
  if (skip) s.W_skip = ['d_out', 'd_in'];
  return s;
}

const FLOATS = new Set(['F32', 'F16', 'BF16', 'F64']);

function readWeights(weightsPath: string, p: ParsedCfg): SaeParams {
  const { cfg } = p;
  const size: Record<Dim, number> = { d_in: cfg.dIn, d_sae: cfg.dSae, d_out: cfg.dOut };
  if (!fs.existsSync(weightsPath)) throw new SaeError(`${weightsPath}: not found`);
  let file: SafetensorsFile;
  try {
    file = SafetensorsFile.open(weightsPath);
  } catch (e) {
    throw e instanceof SondeError ? new SaeError(e.message) : e;
  }
  const what = `a ${p.saeLensArch} SAE`;
  const data = new Map<string, Float32Array>();
  let topkThreshold: number | undefined;
  try {
    const left = new Set(file.names());
    const read = (name: string, dims: Dim[]): Float32Array => {
      const info = file.info(name);
      if (!FLOATS.has(info.dtype))
        throw new SaeError(`${weightsPath}: tensor '${name}' has dtype ${info.dtype}, expected a float type`);
      const want = dims.map((d) => size[d]);
      if (info.shape.length !== want.length || info.shape.some((d, i) => d !== want[i]))
        throw new SaeError(
          `${weightsPath}: tensor '${name}' has shape [${info.shape.join(', ')}], expected ` +
            `[${want.join(', ')}] ([${dims.join(', ')}] from ${SAELENS_CFG_FILE})`,
        );
      left.delete(name);
      return file.readFloat32(name);
    };

    for (const [name, dims] of Object.entries(saeLensShapes(cfg.architecture, p.skip))) {
      if (name === 'threshold' && !file.has('threshold') && file.has('log_threshold')) {
        // A JumpReLU training state that kept log thresholds.
        data.set(name, read('log_threshold', dims).map(Math.exp));
        continue;
      }
      if (!file.has(name))
        throw new SaeError(
          `${weightsPath}: tensor '${name}' [${dims.join(', ')}] is missing (needed by ${what})`,
        );
      data.set(name, read(name, dims));
    }

    if (file.has('scaling_factor')) {
      const sf = read('scaling_factor', ['d_sae']);
      if (sf.some((v) => v !== 1)) {
        if (!p.finetuningScaling)
          throw new SaeError(
            `${weightsPath}: tensor 'scaling_factor' is not all ones but finetuning_scaling_factor is false`,
          );
        // Pre-6 SAELens decoded (acts * scaling_factor) @ W_dec: fold it into W_dec's rows.
        const wDec = data.get('W_dec')!;
        for (let i = 0; i < cfg.dSae; i++)
          for (let j = 0; j < cfg.dOut; j++) wDec[i * cfg.dOut + j] = wDec[i * cfg.dOut + j]! * sf[i]!;
      }
    }

    if (cfg.architecture === 'batchtopk' && file.has('topk_threshold')) {
      const info = file.info('topk_threshold');
      if (info.shape.reduce((a, b) => a * b, 1) !== 1)
        throw new SaeError(
          `${weightsPath}: tensor 'topk_threshold' has shape [${info.shape.join(', ')}], expected a scalar`,
        );
      left.delete('topk_threshold');
      topkThreshold = file.readFloat32('topk_threshold')[0]!;
    }

    if (left.size > 0)
      throw new SaeError(
        `${weightsPath}: unexpected tensor${left.size > 1 ? 's' : ''} ${[...left].map((n) => `'${n}'`).join(', ')} ` +
          `for ${what}`,
      );
  } catch (e) {
    throw e instanceof SondeError && !(e instanceof SaeError) ? new SaeError(e.message) : e;
  } finally {
    file.close();
  }

  if (p.rescaleByDecoderNorm) foldDecoderNorm(data, cfg, weightsPath);
  if (topkThreshold !== undefined) cfg.metadata.topk_threshold = topkThreshold;

  const params: SaeParams = new Map();
  for (const [name, arr] of data) {
    if (name === 'W_skip')
      params.set(name, new Tensor(transpose(arr, cfg.dOut, cfg.dIn), [cfg.dIn, cfg.dOut]));
    else params.set(name, new Tensor(arr, name === 'W_enc' ? [cfg.dIn, cfg.dSae] : shapeOf(name, cfg)));
  }
  return params;
}

function shapeOf(name: string, cfg: SaeConfig): number[] {
  if (name === 'W_dec') return [cfg.dSae, cfg.dOut];
  if (name === 'b_dec') return [cfg.dOut];
  return [cfg.dSae];
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(a: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(a.length);
  for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) out[j * rows + i] = a[i * cols + j]!;
  return out;
}

/**
 * SAELens TopK with rescale_acts_by_decoder_norm multiplies pre-activations by each decoder row's norm
 * and divides the latents by it before decoding; scaling W_enc's columns and b_enc by the norm and
 * normalising W_dec's rows gives the same latents and reconstruction with a plain TopK.
 */
function foldDecoderNorm(data: Map<string, Float32Array>, cfg: SaeConfig, where: string): void {
  const wEnc = data.get('W_enc')!;
  const bEnc = data.get('b_enc')!;
  const wDec = data.get('W_dec')!;
  for (let i = 0; i < cfg.dSae; i++) {
    let ss = 0;
    for (let j = 0; j < cfg.dOut; j++) ss += wDec[i * cfg.dOut + j]! ** 2;
    const n = Math.sqrt(ss);
    if (!(n > 0))
      throw new SaeError(
        `${where}: decoder row ${i} has norm 0, so rescale_acts_by_decoder_norm cannot be folded in`,
      );
    for (let j = 0; j < cfg.dOut; j++) wDec[i * cfg.dOut + j] = wDec[i * cfg.dOut + j]! / n;
    for (let j = 0; j < cfg.dIn; j++) wEnc[j * cfg.dSae + i] = wEnc[j * cfg.dSae + i]! * n;
    bEnc[i] = bEnc[i]! * n;
  }
}

// ---------------------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------------------

/**
 * Loads a SAELens SAE or transcoder folder (cfg.json + sae_weights.safetensors), in either the pre-6 or
 * the SAELens 6 layout. Weights may be float32, float16, bfloat16 or float64; they are computed in float32.
 * Folded in on load so the result takes raw activations: TopK's rescale_acts_by_decoder_norm and a pre-6
 * finetuning `scaling_factor`. Throws SaeError naming the file and the key or tensor at fault.
 */
export function loadSaeLens(dir: string): SparseAutoencoder {
  const cfgPath = path.join(dir, SAELENS_CFG_FILE);
  const parsed = parseCfg(readCfgJson(cfgPath), cfgPath);
  const params = readWeights(path.join(dir, SAELENS_WEIGHTS_FILE), parsed);
  return new SparseAutoencoder(parsed.cfg, params);
}

/** The folder's sparsity.safetensors (log10 feature density per latent), or null when it has none. */
export function readSaeLensSparsity(dir: string): Float32Array | null {
  const file = path.join(dir, SAELENS_SPARSITY_FILE);
  if (!fs.existsSync(file)) return null;
  let f: SafetensorsFile | null = null;
  try {
    f = SafetensorsFile.open(file);
    if (!f.has('sparsity')) throw new SaeError(`${file}: no tensor 'sparsity'`);
    const shape = f.info('sparsity').shape;
    if (shape.length !== 1)
      throw new SaeError(`${file}: tensor 'sparsity' has shape [${shape.join(', ')}], expected [d_sae]`);
    return f.readFloat32('sparsity');
  } catch (e) {
    throw e instanceof SondeError && !(e instanceof SaeError) ? new SaeError(e.message) : e;
  } finally {
    f?.close();
  }
}

/**
 * A BatchTopK SAE as SAELens saves it for inference: a JumpReLU SAE with the same weights and a
 * threshold per latent (SAELens uses one value for all, the running estimate of the smallest active
 * latent from training). The batch-dependence is gone: each row keeps the latents above the threshold.
 */
export function batchTopkToJumpRelu(
  sae: SparseAutoencoder,
  threshold: number | Float32Array,
): SparseAutoencoder {
  if (sae.cfg.architecture !== 'batchtopk')
    throw new SaeError(`batchTopkToJumpRelu takes a batchtopk SAE, got ${sae.cfg.architecture}`);
  const thr =
    typeof threshold === 'number' ? new Float32Array(sae.dSae).fill(threshold) : Float32Array.from(threshold);
  if (thr.length !== sae.dSae)
    throw new SaeError(`threshold has ${thr.length} values, expected one per latent (${sae.dSae})`);
  if (!thr.every((v) => Number.isFinite(v)))
    throw new SaeError(
      `threshold must be finite, got ${typeof threshold === 'number' ? threshold : 'a non-finite value'}`,
    );
  const metadata = { ...sae.cfg.metadata };
  delete metadata.topk_threshold;
  const cfg: SaeConfig = { ...sae.cfg, architecture: 'jumprelu', k: null, metadata };
  const params: SaeParams = new Map(sae.params);
  params.set('threshold', new Tensor(thr, [sae.dSae]));
  return new SparseAutoencoder(cfg, params);
}

export interface SaveSaeLensOptions {
  /** log10 feature density per latent, written to sparsity.safetensors as SAELens's trainer does. */
  sparsity?: Float32Array;
  /**
   * For a batchtopk SAE: the JumpReLU threshold it is saved with (see batchTopkToJumpRelu). Defaults to
   * cfg.metadata.topk_threshold (set when a SAELens BatchTopK training checkpoint was loaded).
   */
  batchTopkThreshold?: number;
}

/** The SAELens 6 cfg.json object and tensors for `sae` (folding the scaling factor, if any). */
async function toSaeLens(
  sae: SparseAutoencoder,
): Promise<{ cfg: Json; tensors: Record<string, TensorToWrite> }> {
  const c = sae.cfg;
  const transcoder = c.hookNameOut !== null;
  const skip = sae.params.has('W_skip');
  let arch: string;
  if (!transcoder) {
    if (skip)
      throw new SaeError('SAELens has no SAE with a skip connection (W_skip) other than skip_transcoder');
    arch = c.architecture;
  } else if (c.architecture === 'standard') arch = skip ? 'skip_transcoder' : 'transcoder';
  else if (c.architecture === 'jumprelu' && !skip) arch = 'jumprelu_transcoder';
  else
    throw new SaeError(
      `SAELens has no ${c.architecture} transcoder${skip ? ' with a skip connection' : ''} ` +
        '(it has transcoder, skip_transcoder and jumprelu_transcoder)',
    );
  if (transcoder && c.applyBDecToInput)
    throw new SaeError('SAELens transcoders do not support apply_b_dec_to_input; set applyBDecToInput false');

  // The weights are written to a file: read each once.
  const values = new Map<string, Float32Array>();
  for (const [name, t] of sae.params) values.set(name, await t.f32());
  const f32 = (name: string) => values.get(name)!;
  const tensors: Record<string, TensorToWrite> = {};
  for (const [name, t] of sae.params) tensors[name] = { dtype: 'F32', shape: [...t.shape], data: f32(name) };
  if (skip)
    tensors.W_skip = { dtype: 'F32', shape: [c.dOut, c.dIn], data: transpose(f32('W_skip'), c.dIn, c.dOut) };

  // SAELens saves SAEs that take raw activations: a known input scale is folded into the weights
  // (W_enc * s, W_dec / s, b_dec / s), which leaves thresholds, gates and the skip connection unchanged.
  let normalize: ActivationNormalization = c.normalizeActivations;
  if (c.normalizeActivations === 'expected_average_only_in' && c.scalingFactor !== null) {
    const s = c.scalingFactor;
    tensors.W_enc = { ...tensors.W_enc!, data: f32('W_enc').map((v) => v * s) };
    tensors.W_dec = { ...tensors.W_dec!, data: f32('W_dec').map((v) => v / s) };
    tensors.b_dec = { ...tensors.b_dec!, data: f32('b_dec').map((v) => v / s) };
    normalize = 'none';
  }

  const meta: Json = { sae_lens_version: SAELENS_FORMAT_VERSION };
  for (const [key, v] of Object.entries(c.metadata))
    if (key !== 'sae_lens_version' && key !== 'hook_name' && !(transcoder && key === 'hook_name_out'))
      meta[key] = v;
  meta.hook_name = c.hookName;
  if (transcoder) meta.hook_name_out = c.hookNameOut;

  const cfg: Json = {
    d_in: c.dIn,
    d_sae: c.dSae,
    dtype: 'float32',
    device: 'cpu',
    apply_b_dec_to_input: c.applyBDecToInput,
    normalize_activations: normalize,
    reshape_activations: c.hookName.endsWith('hook_z') ? 'hook_z' : 'none',
    metadata: meta,
  };
  if (c.architecture === 'topk') {
    cfg.k = c.k;
    cfg.rescale_acts_by_decoder_norm = false;
  }
  if (transcoder) cfg.d_out = c.dOut;
  cfg.architecture = arch;
  return { cfg, tensors };
}

/**
 * Saves `sae` as a SAELens 6 folder: cfg.json (architecture, d_in, d_sae, dtype "float32", device "cpu",
 * apply_b_dec_to_input, normalize_activations, k for TopK, d_out for transcoders, metadata with hook_name
 * and the SAE's metadata), sae_weights.safetensors (F32, SAELens tensor names) and, with `opts.sparsity`,
 * sparsity.safetensors. A batchtopk SAE is saved as SAELens does, as a JumpReLU SAE with a threshold. An
 * 'expected_average_only_in' scaling factor is folded into the weights. Atomic: written to a sibling temp
 * folder, then renamed over `dir`; on error nothing is left behind and an existing `dir` is untouched.
 */
export async function saveSaeLens(
  sae: SparseAutoencoder,
  dir: string,
  opts: SaveSaeLensOptions = {},
): Promise<void> {
  let out = sae;
  if (sae.cfg.architecture === 'batchtopk') {
    const t = opts.batchTopkThreshold ?? sae.cfg.metadata.topk_threshold;
    if (typeof t !== 'number')
      throw new SaeError(
        'SAELens saves BatchTopK SAEs for inference as JumpReLU SAEs with a threshold: pass ' +
          'opts.batchTopkThreshold or convert with batchTopkToJumpRelu(sae, threshold) first',
      );
    out = batchTopkToJumpRelu(sae, t);
  }
  const { cfg, tensors } = await toSaeLens(out);
  const { sparsity } = opts;
  if (sparsity !== undefined && sparsity.length !== out.dSae)
    throw new SaeError(
      `sparsity has ${sparsity.length} values, expected one per latent (d_sae = ${out.dSae})`,
    );

  const target = path.resolve(dir);
  if (fs.existsSync(target) && !fs.statSync(target).isDirectory())
    throw new SaeError(`${target}: exists and is not a folder`);
  const tmp = tempSibling(target);
  fs.mkdirSync(tmp, { recursive: true });
  try {
    writeSafetensors(path.join(tmp, SAELENS_WEIGHTS_FILE), tensors, { format: 'pt' });
    let text: string;
    try {
      text = JSON.stringify(cfg, null, 2) + '\n';
    } catch (e) {
      throw new SaeError(`${target}: cannot write ${SAELENS_CFG_FILE}: ${message(e)}`);
    }
    fs.writeFileSync(path.join(tmp, SAELENS_CFG_FILE), text);
    if (sparsity !== undefined)
      writeSafetensors(
        path.join(tmp, SAELENS_SPARSITY_FILE),
        { sparsity: { dtype: 'F32', shape: [out.dSae], data: sparsity } },
        { format: 'pt' },
      );
    replaceDir(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}
