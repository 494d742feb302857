// Training losses of each SAE architecture, written with engine ops so a whole step (forward, loss,
// backward) traces into one ONNX graph. Hyperparameters that change during training (the sparsity
// coefficient's warm-up, the dead-latent mask) are tensors, so the traced graph takes them as inputs.
import { abs, add, div, exp, gt, lt, mul, relu, sqrt, sub, where } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { mean, sum, topk } from '../engine/ops/reduce.js';
import { cast, reshape, scatterAdd, transpose } from '../engine/ops/shape.js';
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
  /** topk/batchtopk: 1 for latents dead over REVIVE_WINDOWS windows [d_sae]; see reviveLoss. */
  longDead?: Tensor;
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
      const encoded = matmul(sae_in, W_enc);
      const b_enc = p.get('b_enc')!;
      const pre = add(encoded, b_enc);
      acts = s.architecture === 'topk' ? topkActs(pre, s.k!) : batchTopkActs(pre, s.k!);
      if (s.auxKCoefficient > 0) {
        const residual = unexpressedResidual(inp.y, decode(acts), acts, W_dec);
        // Both terms' MSEs are normalised by the residual's variance, as Gao et al.'s: the residual
        // shrinks as training goes, and an unnormalised term (or one scaled down by n_dead / k_aux)
        // fades with it and leaves rare features dead. Times the target's variance, they sit on the main
        // loss's scale (summed squared error).
        const scale = noGrad(() => div(variance(inp.y), add(variance(residual), 1e-12)));
        let terms = auxKLoss(encoded, residual, W_dec, inp.dead, s.kAux);
        if (inp.longDead) {
          // The encoder with its bias (it must win the top-k), without b_dec's gradient.
          const x = s.applyBDecToInput ? sub(inp.x, b_dec.detach()) : inp.x;
          const preRevive = add(matmul(x, W_enc), b_enc);
          terms = add(terms, reviveLoss(preRevive, residual, W_dec, inp.longDead, REVIVE_PAIRS));
        }
        aux = mul(mul(terms, scale), s.auxKCoefficient);
      }
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
 * The residual y - ŷ without its components along the decoder rows of the latents active on each row.
 * Most of a TopK SAE's residual is those latents' own shrinkage along their features; an aux loss that
 * fits it turns dead latents into near-copies of live ones (decoder cosine 0.6-0.8 to a live latent and
 * its feature, all 14 dead latents of the synthetic benchmark at seed 0). What is left is what the
 * active latents cannot express: features no latent has yet. Decoder rows are unit norm and nearly
 * orthogonal, so one projection per active row is enough.
 */
function unexpressedResidual(y: Tensor, recons: Tensor, acts: Tensor, W_dec: Tensor): Tensor {
  return noGrad(() => {
    const r = sub(y, recons); // [batch, d_out]
    const active = cast(gt(acts, 0), acts.dtype); // [batch, d_sae]
    return sub(r, matmul(mul(matmul(r, transpose(W_dec)), active), W_dec));
  });
}

/**
 * Gao et al. 2024's auxiliary loss: the k_aux largest encoder responses among dead latents reconstruct
 * the residual, so dead latents get gradient toward what the live ones miss. The response is
 * `encoded` = (x - b_dec) W_enc, without b_enc: with it, a dead latent whose bias has gone negative (as
 * the live ones' do, about -0.7 on the synthetic benchmark) is positive on almost no rows (0-4 of 8,192),
 * so its ReLU'd activation and its gradient are zero and the loss cannot reach it; without, it responds
 * on about half the rows. (Dropping the ReLU instead lets negative activations fit the residual densely:
 * MMCS 0.97 -> 0.87.) Its gradient reaches dead latents' encoder columns and decoder rows, and b_dec.
 */
function auxKLoss(encoded: Tensor, residual: Tensor, W_dec: Tensor, dead: Tensor, kAux: number): Tensor {
  const masked = where(gt(dead, 0.5), encoded, -1e9); // live latents can never be picked
  const { values, indices } = topk(masked, Math.min(kAux, encoded.shape[1]!), -1);
  const auxActs = scatterAdd(Tensor.zeros(encoded.shape, encoded.dtype), 1, indices, relu(values));
  // No b_dec: the aux latents reconstruct the error the live latents left.
  return mean(sum(square(sub(matmul(auxActs, W_dec), residual)), -1));
}

/** (row, latent) pairs per batch that reviveLoss trains. */
export const REVIVE_PAIRS = 32;
/** A latent silent for this many dead windows is long dead (reviveLoss). */
export const REVIVE_WINDOWS = 4;

/**
 * The aux-k loss finds rare features but leaves some latents dead for good (synthetic benchmark, topk:
 * 8-9 of 512 at the end), each a near-copy of a live latent that always wins the top-k. Latents dead
 * for REVIVE_WINDOWS windows are trained as a dictionary on the residual instead: across the whole batch,
 * the `pairs` largest matches (residual row · decoder row) among them each take that row, their decoder
 * rows move toward it (the activation is the match itself), and their pre-activation, bias included, is
 * regressed onto the match there and pushed to at most 0 on the rows they did not take, so they fire where
 * they explain something and nowhere else. The largest matches across a batch are the rows whose residual
 * one direction explains best: a feature no latent has. Alone (in place of the aux-k loss) it revives
 * every latent but finds few rare features (MMCS 0.91); after the aux-k loss has had its four windows it
 * takes what is left, at some cost to the rarest features. k 5, width 512, 2^20 rows, seeds 0 / 1, as
 * committed: topk 0.955 / 0.956 MMCS with 3 / 3 dead (aux-k changes alone: 0.980 / 0.980 with 9 / 8);
 * batchtopk 0.973 / 0.972 with 0 / 0 (0.968 with 12 at seed 0). The trajectory is sensitive to float
 * order: an earlier build of the same maths gave topk 0.949 / 0.947 with 4 / 6 dead. Eight windows
 * traded the other way there (topk 0.966 / 0.965 with 6 / 3 dead; batchtopk 3 / 3); 8 pairs per batch
 * revived fewer (7 dead), 128 hurt more (MMCS 0.942).
 * stories260K, blocks.2.hook_resid_post, k 32, width 2048, 2^20 rows: 768 -> 241 of 2048 silent on the
 * last 35,825 stored rows (explained variance 0.9805 -> 0.9793).
 */
function reviveLoss(pre: Tensor, residual: Tensor, W_dec: Tensor, longDead: Tensor, pairs: number): Tensor {
  const [n, width] = pre.shape as [number, number];
  const match = matmul(residual, transpose(W_dec)); // [batch, d_sae], gradient to W_dec
  const flat = reshape(where(gt(longDead, 0.5), match, -1e9), [1, n * width]);
  const { values, indices } = topk(flat, Math.min(pairs, n * width), -1);
  const taken = (v: Tensor) =>
    reshape(scatterAdd(Tensor.zeros([1, n * width], v.dtype), 1, indices, v), [n, width]);
  const acts = taken(relu(values)); // [batch, d_sae]
  const decoderErr = mean(sum(square(sub(matmul(acts, W_dec), residual)), -1));
  const [on, off] = noGrad(() => {
    const t = taken(cast(gt(values, 0), values.dtype));
    return [t, mul(sub(1, t), cast(gt(longDead, 0.5), pre.dtype))];
  });
  const target = acts.detach();
  const encoderErr = mean(sum(add(mul(on!, square(sub(pre, target))), mul(off!, square(relu(pre)))), -1));
  return add(decoderErr, encoderErr);
}

function variance(t: Tensor): Tensor {
  return mean(sum(square(sub(t, mean(t, 0, true))), -1));
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
