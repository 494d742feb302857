// Training losses of each SAE architecture, written with engine ops so a whole step (forward, loss,
// backward) traces into one ONNX graph. Hyperparameters that change during training (the sparsity
// coefficient's warm-up, the dead-latent mask) are tensors, so the traced graph takes them as inputs.
import { abs, add, div, exp, gt, lt, mul, relu, sqrt, sub, where } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { mean, sum, topk } from '../engine/ops/reduce.js';
import { cast, scatterAdd } from '../engine/ops/shape.js';
import { attachGrad, noGrad, Tensor } from '../engine/tensor.js';
import type { SaeArchitecture } from './config.js';
import { batchTopkActs, topkActs } from './sae.js';

/** Per-step inputs of the loss besides the batch and the parameters. */
export interface LossInputs {
  x: Tensor; // [batch, d_in] (normalised)
  /** Target [batch, d_out]: x for an SAE, the output hook's activation for a transcoder. */
  y: Tensor;
  /** Sparsity coefficient [1] (L1 for standard/gated, L0 for JumpReLU), warmed up by the trainer. */
  coef: Tensor;
  /** 1 for latents dead over the window, else 0 [d_sae]; used by the aux-k loss. */
  dead: Tensor;
}

export interface LossSettings {
  architecture: SaeArchitecture;
  k: number | null;
  applyBDecToInput: boolean;
  /** Weight the L1 penalty by decoder row norms (Anthropic's April 2024 variant). */
  l1DecoderNorm: boolean;
  /** Aux-k loss coefficient for topk/batchtopk (0 = off). */
  auxKCoefficient: number;
  /** Latents used by the aux-k loss. */
  kAux: number;
  /** JumpReLU: rectangle-kernel bandwidth of the straight-through estimator. */
  bandwidth: number;
}

export interface LossParts {
  loss: Tensor;
  mse: Tensor;
  sparsity: Tensor;
  aux: Tensor;
  /** Latents [batch, d_sae] (for firing statistics). */
  acts: Tensor;
}

/**
 * One step's loss. MSE is summed over features and averaged over rows (SAELens's convention). For
 * JumpReLU the parameters hold `log_threshold` instead of `threshold` (it keeps thresholds positive).
 */
export function saeLoss(p: Map<string, Tensor>, s: LossSettings, inp: LossInputs): LossParts {
  const W_enc = p.get('W_enc')!;
  const W_dec = p.get('W_dec')!;
  const b_dec = p.get('b_dec')!;
  const sae_in = s.applyBDecToInput ? sub(inp.x, b_dec) : inp.x;
  const decode = (acts: Tensor) => {
    let out = add(matmul(acts, W_dec), b_dec);
    const skip = p.get('W_skip');
    if (skip) out = add(out, matmul(inp.x, skip));
    return out;
  };
  const sqErr = (a: Tensor, b: Tensor) => mean(sum(square(sub(a, b)), -1));
  const zero = Tensor.scalar(0, inp.x.dtype);
  let acts: Tensor;
  let sparsity: Tensor = zero;
  let aux: Tensor = zero;
  const decNorms = () => sqrt(add(sum(square(W_dec), -1, true), 1e-12)); // [d_sae, 1]
  // Σ_j a_j ||W_dec[j]|| (or Σ_j a_j) averaged over rows, for non-negative latents a. As a matmul: its
  // backward is two small matmuls instead of broadcasts and axis-0 reductions over [batch, d_sae].
  const l1 = (a: Tensor) =>
    mean(matmul(a, s.l1DecoderNorm ? decNorms() : Tensor.full([a.shape[1]!, 1], 1, a.dtype)));

  switch (s.architecture) {
    case 'standard': {
      const pre = add(matmul(sae_in, W_enc), p.get('b_enc')!);
      acts = relu(pre);
      sparsity = mul(l1(acts), inp.coef);
      break;
    }
    case 'topk':
    case 'batchtopk': {
      const pre = add(matmul(sae_in, W_enc), p.get('b_enc')!);
      acts = s.architecture === 'topk' ? topkActs(pre, s.k!) : batchTopkActs(pre, s.k!);
      if (s.auxKCoefficient > 0) aux = mul(auxKLoss(pre, decode(acts), W_dec, inp, s), s.auxKCoefficient);
      break;
    }
    case 'jumprelu': {
      const pre = add(matmul(sae_in, W_enc), p.get('b_enc')!);
      const threshold = exp(p.get('log_threshold')!);
      acts = jumpRelu(pre, threshold, s.bandwidth);
      sparsity = mul(mean(sum(stepFn(pre, threshold, s.bandwidth), -1)), inp.coef);
      break;
    }
    case 'gated': {
      // Rajamanoharan et al. 2024: the gate is trained by the L1 and auxiliary terms only.
      const piGate = add(matmul(sae_in, W_enc), p.get('b_gate')!);
      const mag = relu(add(matmul(sae_in, mul(W_enc, exp(p.get('r_mag')!))), p.get('b_mag')!));
      acts = mul(cast(gt(piGate, 0), piGate.dtype), mag);
      const gateActs = relu(piGate);
      sparsity = mul(l1(gateActs), inp.coef);
      const frozen = add(matmul(gateActs, W_dec.detach()), b_dec.detach());
      aux = sqErr(frozen, inp.y);
      break;
    }
  }
  const mse = sqErr(decode(acts), inp.y);
  return { loss: add(add(mse, sparsity), aux), mse, sparsity, aux, acts };
}

/**
 * Gao et al. 2024's auxiliary loss: the k_aux largest pre-activations among dead latents reconstruct
 * the residual error, so dead latents get gradient toward what the live ones miss. As theirs, its MSE is
 * normalised by the residual's variance: the residual shrinks as training goes, and an unnormalised aux
 * term (or one scaled down by n_dead / k_aux) fades with it and leaves rare features dead. Multiplied by
 * the target's variance, it sits on the main loss's scale (summed squared error).
 */
function auxKLoss(pre: Tensor, recons: Tensor, W_dec: Tensor, inp: LossInputs, s: LossSettings): Tensor {
  const residual = sub(inp.y, recons).detach();
  const masked = where(gt(inp.dead, 0.5), pre, -1e9); // live latents can never be picked
  const { values, indices } = topk(masked, Math.min(s.kAux, pre.shape[1]!), -1);
  const auxActs = scatterAdd(Tensor.zeros(pre.shape, pre.dtype), 1, indices, relu(values));
  // No b_dec: the aux latents reconstruct the error the live latents left.
  const recon = matmul(auxActs, W_dec);
  const err = mean(sum(square(sub(recon, residual)), -1));
  const variance = (t: Tensor) => mean(sum(square(sub(t, mean(t, 0, true))), -1));
  const scale = noGrad(() => div(variance(inp.y), add(variance(residual), 1e-12)));
  return mul(err, scale);
}

function square(x: Tensor): Tensor {
  return mul(x, x);
}

/** |u| < 1/2, as float32. */
function rectangle(u: Tensor): Tensor {
  return cast(lt(abs(u), 0.5), u.dtype);
}

/**
 * JumpReLU(z) = z * H(z - θ). Gradient to z: H(z - θ); to θ, the straight-through estimate
 * -(θ/ε) K((z - θ)/ε) (Rajamanoharan et al. 2024, rectangle kernel K).
 */
function jumpRelu(z: Tensor, theta: Tensor, eps: number): Tensor {
  const [y, h] = noGrad(() => {
    const on = cast(gt(z, theta), z.dtype);
    return [mul(z, on), on];
  });
  attachGrad('JumpReLU', [z, theta], [y!], ([g]) => {
    const k = rectangle(mul(sub(z, theta), 1 / eps));
    const gTheta = sum(mul(mul(g!, k), mul(theta, -1 / eps)), 0);
    return [mul(g!, h!), gTheta];
  });
  return y!;
}

/** H(z - θ) with the straight-through gradient -(1/ε) K((z - θ)/ε) to θ and none to z. */
function stepFn(z: Tensor, theta: Tensor, eps: number): Tensor {
  const y = noGrad(() => cast(gt(z, theta), z.dtype));
  attachGrad('Step', [z, theta], [y], ([g]) => {
    const k = rectangle(mul(sub(z, theta), 1 / eps));
    return [null, sum(mul(mul(g!, k), -1 / eps), 0)];
  });
  return y;
}

/** The straight-through estimators, exported for gradient tests. */
export const estimators = { jumpRelu, stepFn };
