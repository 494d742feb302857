// A sparse autoencoder (or transcoder) as data (config + named parameters) and a forward function with
// SAELens's internal hook points. Rows are [n, d_in]; hook activations of any shape [..., d_in] (or
// [batch, pos, head, d_head] flattened to n_heads * d_head) are reshaped on the way in and out.
import { add, div, exp, gt, mul, relu, sqrt, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { mean, sum, topk } from '../engine/ops/reduce.js';
import { cast, reshape, scatterAdd } from '../engine/ops/shape.js';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import type { Splice, Spliceable, SpliceTarget } from '../hooks/splice.js';
import { hookNames } from '../models/hook-table.js';
import { paramShapes, SaeError, validateSaeConfig, type SaeConfig, type SaeHookName } from './config.js';

import { checkSplice, type SplicedSae, type SpliceOptions } from './splice.js';

export { SAE_HOOKS, type SaeHookName } from './config.js';

/** Called at each internal hook point (short names); may return a replacement. */
export type SaeHook = (name: SaeHookName, x: Tensor) => Tensor;
const NO_HOOK: SaeHook = (_n, x) => x;

export type SaeParams = Map<string, Tensor>;

export interface SaeForward {
  /** Latent activations [n, d_sae]. */
  acts: Tensor;
  /** Pre-activations [n, d_sae] (the magnitude path for gated SAEs). */
  pre: Tensor;
  /** Reconstruction (or transcoder prediction) [n, d_out], in the input's units. */
  recons: Tensor;
}

export class SparseAutoencoder implements Spliceable<SpliceOptions> {
  readonly cfg: SaeConfig;
  readonly params: SaeParams;

  constructor(cfg: SaeConfig, params: SaeParams) {
    validateSaeConfig(cfg);
    const want = paramShapes(cfg, params.has('W_skip'));
    for (const [name, shape] of Object.entries(want)) {
      const t = params.get(name);
      if (!t) throw new SaeError(`${cfg.architecture} SAE is missing parameter '${name}' [${shape}]`);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i]))
        throw new SaeError(
          `SAE parameter '${name}' has shape [${t.shape}], expected [${shape}] from the config`,
        );
      if (t.dtype !== 'float32')
        throw new SaeError(`SAE parameter '${name}' must be float32, got ${t.dtype}`);
    }
    for (const name of params.keys())
      if (!(name in want)) throw new SaeError(`unexpected parameter '${name}' for a ${cfg.architecture} SAE`);
    this.cfg = cfg;
    this.params = params;
  }

  /**
   * SAELens-style initialisation: decoder rows random with norm `decoderNorm`, encoder its transpose,
   * biases zero (JumpReLU thresholds at `threshold`).
   */
  static init(
    cfg: SaeConfig,
    opts: { seed?: number; decoderNorm?: number; skip?: boolean; threshold?: number } = {},
  ): SparseAutoencoder {
    const rng = new Rng(opts.seed ?? 0);
    const shapes = paramShapes(cfg, opts.skip ?? false);
    const params: SaeParams = new Map();
    // Drawn on the host from the seed, then made tensors.
    const dec = new Float32Array(cfg.dSae * cfg.dOut);
    const enc = new Float32Array(cfg.dIn * cfg.dSae);
    const norm = opts.decoderNorm ?? 0.1;
    for (let i = 0; i < cfg.dSae; i++) {
      const row = dec.subarray(i * cfg.dOut, (i + 1) * cfg.dOut);
      let ss = 0;
      for (let j = 0; j < row.length; j++) ss += (row[j] = rng.normal()) ** 2;
      const s = norm / Math.sqrt(ss);
      for (let j = 0; j < row.length; j++) row[j]! *= s;
      // The encoder starts as the decoder's transpose (a transcoder's d_out may differ from d_in).
      for (let j = 0; j < cfg.dIn; j++)
        enc[j * cfg.dSae + i] = j < cfg.dOut ? row[j]! : rng.normal() * (norm / Math.sqrt(cfg.dIn));
    }
    for (const [n, s] of Object.entries(shapes)) {
      if (n === 'W_dec') params.set(n, new Tensor(dec, s));
      else if (n === 'W_enc') params.set(n, new Tensor(enc, s));
      else if (n === 'threshold') params.set(n, Tensor.full(s, opts.threshold ?? 0.001));
      else params.set(n, Tensor.zeros(s));
    }
    return new SparseAutoencoder(cfg, params);
  }

  get dIn(): number {
    return this.cfg.dIn;
  }
  get dSae(): number {
    return this.cfg.dSae;
  }
  param(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new SaeError(`this ${this.cfg.architecture} SAE has no parameter '${name}'`);
    return t;
  }

  /** Pre-activations [n, d_sae] of rows x [n, d_in] (already normalised). */
  encodePre(x: Tensor): Tensor {
    const c = this.cfg;
    const sae_in = c.applyBDecToInput ? sub(x, this.param('b_dec')) : x;
    if (c.architecture === 'gated') {
      return add(matmul(sae_in, mul(this.param('W_enc'), exp(this.param('r_mag')))), this.param('b_mag'));
    }
    return add(matmul(sae_in, this.param('W_enc')), this.param('b_enc'));
  }

  /** Latents from pre-activations; `x` is needed by gated SAEs (their gate reads the input). */
  activate(pre: Tensor, x?: Tensor): Tensor {
    const c = this.cfg;
    switch (c.architecture) {
      case 'standard':
        return relu(pre);
      case 'jumprelu':
        return mul(relu(pre), cast(gt(pre, this.param('threshold')), 'float32'));
      case 'topk':
        return topkActs(pre, c.k!);
      case 'batchtopk':
        return batchTopkActs(pre, c.k!);
      case 'gated': {
        if (!x) throw new SaeError('a gated SAE needs its input to compute the gate');
        const sae_in = c.applyBDecToInput ? sub(x, this.param('b_dec')) : x;
        const gate = add(matmul(sae_in, this.param('W_enc')), this.param('b_gate'));
        return mul(cast(gt(gate, 0), 'float32'), relu(pre));
      }
    }
  }

  /** Reconstruction [n, d_out] from latents (and the input, for a transcoder's skip connection). */
  decode(acts: Tensor, x?: Tensor): Tensor {
    let y = add(matmul(acts, this.param('W_dec')), this.param('b_dec'));
    const skip = this.params.get('W_skip');
    if (skip) {
      if (!x) throw new SaeError('a transcoder with a skip connection needs its input to decode');
      y = add(y, matmul(x, skip));
    }
    return y;
  }

  /** Latents [n, d_sae] for raw rows [n, d_in]. */
  encode(rows: Tensor): Tensor {
    return this.forwardRows(rows).acts;
  }

  /**
   * The whole pass on raw rows [n, d_in], calling `hook` at hook_sae_input (the raw rows, as SAELens),
   * acts_pre, acts_post and recons (here in the input's units, after undoing any normalisation).
   */
  forwardRows(rows: Tensor, hook: SaeHook = NO_HOOK): SaeForward {
    this.checkRows(rows);
    const norm = normalizer(this.cfg, hook('hook_sae_input', rows));
    const x = norm.input;
    const pre = hook('hook_sae_acts_pre', this.encodePre(x));
    const acts = hook('hook_sae_acts_post', this.activate(pre, x));
    const recons = hook('hook_sae_recons', norm.output(this.decode(acts, x)));
    return { acts, pre, recons };
  }

  /** Its splice into a model (Spliceable, for model.addSAE): checked against the model's hook table. */
  splice(target: SpliceTarget, current: readonly Splice[], opts: SpliceOptions = {}): SplicedSae {
    return checkSplice(target.cfg, hookNames(target.cfg, { useAttnResult: true }), current, this, opts);
  }

  /**
   * Runs on a hook activation [..., d_in] (heads are flattened); returns its replacement of shape
   * `outShape` (the input's shape for an SAE), adding back the reconstruction error when `target`
   * (the activation being replaced) is given, as SAELens's use_error_term.
   *
   * `hook` sees the internal points with the activation's leading axes, as SAELens's HookedSAETransformer:
   * [batch, pos, d_sae] for latents of an activation [batch, pos, d_in] (or [batch, pos, n_heads * d_head]);
   * hook_sae_input, acts_pre and acts_post keep the input's leading axes, hook_sae_recons, error and output
   * those of `outShape`. A replacement must have the shape it was given.
   */
  spliceActivation(input: Tensor, outShape: readonly number[], hook: SaeHook, target?: Tensor): Tensor {
    const c = this.cfg;
    const rows = this.toRows(input, c.dIn, c.hookName);
    const n = rows.shape[0]!;
    const inLead = leadingAxes(input.shape, c.dIn);
    const outLead = leadingAxes(outShape, c.dOut);
    if (size(outLead) !== n)
      throw new SaeError(
        `SAE for '${c.hookNameOut ?? c.hookName}': ${n} input rows of width ${c.dIn} cannot fill an output of shape [${outShape}] (width d_out=${c.dOut})`,
      );
    const shaped: SaeHook = (name, t) => {
      const lead =
        name === 'hook_sae_input' || name === 'hook_sae_acts_pre' || name === 'hook_sae_acts_post'
          ? inLead
          : outLead;
      const x = reshape(t, [...lead, t.shape[1]!]);
      const r = hook(name, x);
      if (r !== x && (r.rank !== x.rank || r.shape.some((d, i) => d !== x.shape[i])))
        throw new SaeError(`hook on ${name} returned shape [${r.shape}], expected [${x.shape}]`);
      // Always through the reshape, so that gradients reach the tensor the hook saw.
      return reshape(r, t.shape);
    };
    const { recons } = this.forwardRows(rows, shaped);
    let out = recons;
    if (target) {
      // The error is measured without interventions, so edits to latents change the output.
      const clean = this.forwardRows(rows).recons;
      const t = this.toRows(target, c.dOut, c.hookNameOut ?? c.hookName);
      const e = sub(t, clean);
      const err = shaped('hook_sae_error', e);
      // recons + err, arranged so that without edits the output is the target exactly (not up to rounding).
      out = add(add(t, sub(recons, clean)), sub(err, e));
    }
    return reshape(shaped('hook_sae_output', out), outShape);
  }

  /** [..., d] (or [batch, pos, head, d_head]) to rows [n, d], checking the width. */
  toRows(x: Tensor, d: number, hookName: string): Tensor {
    const last = x.shape[x.rank - 1]!;
    const lastTwo = x.rank >= 4 ? last * x.shape[x.rank - 2]! : -1;
    if (last === d) return reshape(x, [x.size / d, d]);
    if (lastTwo === d) return reshape(x, [x.size / d, d]);
    throw new SaeError(
      `SAE for '${hookName}' expects width d_in=${d}, but the activation has shape [${x.shape}]`,
    );
  }

  private checkRows(rows: Tensor): void {
    if (rows.rank !== 2 || rows.shape[1] !== this.cfg.dIn)
      throw new SaeError(`SAE expects rows [n, ${this.cfg.dIn}], got [${rows.shape}]`);
  }
}

/** The axes of `shape` before its rows of width d (the last axis, or the last two flattened). */
function leadingAxes(shape: readonly number[], d: number): number[] {
  const r = shape.length;
  if (shape[r - 1] === d) return shape.slice(0, r - 1);
  if (r >= 4 && shape[r - 1]! * shape[r - 2]! === d) return shape.slice(0, r - 2);
  throw new SaeError(`an activation of shape [${shape}] has no rows of width ${d}`);
}

function size(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Top-k of relu(pre) per row, scattered back into a dense [n, d_sae] tensor. */
export function topkActs(pre: Tensor, k: number): Tensor {
  const { values, indices } = topk(pre, k, -1);
  return scatterAdd(Tensor.zeros(pre.shape, pre.dtype), 1, indices, relu(values));
}

/** The n*k largest relu(pre) over the whole batch (BatchTopK, Bussmann et al. 2024). */
export function batchTopkActs(pre: Tensor, k: number): Tensor {
  const flat = reshape(relu(pre), [1, pre.size]);
  const kk = Math.min(pre.size, k * pre.shape[0]!);
  const { values, indices } = topk(flat, kk, -1);
  return reshape(scatterAdd(Tensor.zeros([1, pre.size], pre.dtype), 1, indices, values), pre.shape);
}

interface Normalizer {
  input: Tensor;
  output(y: Tensor): Tensor;
}

/** Input normalisation and its inverse on the output, per cfg.normalizeActivations. */
function normalizer(cfg: SaeConfig, x: Tensor): Normalizer {
  switch (cfg.normalizeActivations) {
    case 'none':
      return { input: x, output: (y) => y };
    case 'expected_average_only_in': {
      const s = cfg.scalingFactor ?? 1;
      return s === 1 ? { input: x, output: (y) => y } : { input: mul(x, s), output: (y) => div(y, s) };
    }
    case 'constant_norm_rescale': {
      const norm = sqrt(sum(mul(x, x), -1, true)); // [n, 1]
      const target = Math.sqrt(cfg.dIn);
      return { input: div(mul(x, target), add(norm, 1e-12)), output: (y) => div(mul(y, norm), target) };
    }
    case 'layer_norm': {
      // As SAELens: divide by the unbiased standard deviation plus 1e-5.
      const mu = mean(x, -1, true);
      const c = sub(x, mu);
      const std = add(sqrt(div(sum(mul(c, c), -1, true), Math.max(1, cfg.dIn - 1))), 1e-5);
      return { input: div(c, std), output: (y) => add(mul(y, std), mu) };
    }
  }
}
