import { ShapeError } from '../errors.js';
import type { Tensor } from '../engine/tensor.js';

/**
 * Optimizers update float32 parameter tensors in place, with PyTorch's update rules. Gradients are
 * passed explicitly (or taken from p.grad), so compiled training steps can hand them over directly.
 */
export interface Optimizer {
  readonly params: Tensor[];
  /** Learning rate used by the next step (schedules set it). */
  lr: number;
  /** Steps taken so far. */
  readonly steps: number;
  step(grads?: (Tensor | null)[]): void;
  /** Everything needed to resume exactly. */
  state(): OptimizerState;
  loadState(s: OptimizerState): void;
}

export interface OptimizerState {
  kind: string;
  steps: number;
  lr: number;
  buffers: Record<string, Float32Array>;
}

function gradsOf(params: Tensor[], grads?: (Tensor | null)[]): (Float32Array | null)[] {
  return params.map((p, i) => {
    const g = grads ? grads[i] : p.grad;
    if (!g) return null;
    if (g.size !== p.size)
      throw new ShapeError(`gradient ${i} has ${g.size} elements, parameter has ${p.size}`);
    return g.f32Sync();
  });
}

abstract class BaseOptimizer implements Optimizer {
  steps = 0;
  protected buffers = new Map<string, Float32Array>();
  constructor(
    readonly params: Tensor[],
    public lr: number,
    protected readonly kind: string,
  ) {
    for (const p of params) p.f32Sync(); // float32 only
    if (!(lr >= 0)) throw new ShapeError(`learning rate must be >= 0, got ${lr}`);
  }
  /** Steps taken by parameter i (as torch, a parameter without a gradient does not advance). */
  protected paramStep(i: number): number {
    return this.buffers.get(`step.${i}`)?.[0] ?? 0;
  }
  protected advance(i: number): void {
    this.buf('step', i, 1)[0] = this.paramStep(i) + 1;
  }
  protected buf(name: string, i: number, size = this.params[i]!.size): Float32Array {
    const key = `${name}.${i}`;
    let b = this.buffers.get(key);
    if (!b) {
      b = new Float32Array(size);
      this.buffers.set(key, b);
    }
    return b;
  }
  abstract step(grads?: (Tensor | null)[]): void;
  state(): OptimizerState {
    const buffers: Record<string, Float32Array> = {};
    for (const [k, v] of this.buffers) buffers[k] = Float32Array.from(v);
    return { kind: this.kind, steps: this.steps, lr: this.lr, buffers };
  }
  loadState(s: OptimizerState): void {
    if (s.kind !== this.kind) throw new ShapeError(`optimizer state is for ${s.kind}, not ${this.kind}`);
    for (const [k, v] of Object.entries(s.buffers)) {
      const i = Number(k.split('.').pop());
      const want = k.startsWith('step.') ? 1 : this.params[i]?.size;
      if (want === undefined || v.length !== want) {
        throw new ShapeError(
          `optimizer state buffer '${k}' has ${v.length} values, expected ${want ?? 'no such parameter'}`,
        );
      }
    }
    this.steps = s.steps;
    this.lr = s.lr;
    this.buffers = new Map(Object.entries(s.buffers).map(([k, v]) => [k, Float32Array.from(v)]));
  }
}

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
}

/** torch.optim.SGD. */
export class SGD extends BaseOptimizer {
  constructor(
    params: Tensor[],
    private readonly o: SgdOptions,
  ) {
    super(params, o.lr, 'sgd');
    if (o.nesterov && (!o.momentum || (o.dampening ?? 0) !== 0)) {
      throw new ShapeError('Nesterov momentum needs a momentum and zero dampening');
    }
  }
  step(grads?: (Tensor | null)[]): void {
    const { momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = this.o;
    const gs = gradsOf(this.params, grads);
    this.params.forEach((p, i) => {
      const g = gs[i];
      if (!g) return;
      const first = this.paramStep(i) === 0;
      this.advance(i);
      const w = p.f32Sync();
      const b = momentum ? this.buf('momentum', i) : null;
      for (let j = 0; j < w.length; j++) {
        let d = g[j]! + weightDecay * w[j]!;
        if (b) {
          b[j] = first ? d : momentum * b[j]! + (1 - dampening) * d;
          d = nesterov ? d + momentum * b[j]! : b[j]!;
        }
        w[j] = w[j]! - this.lr * d;
      }
    });
    this.steps++;
  }
}

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
}

/** torch.optim.Adam (weight decay as L2 in the gradient) and, decoupled, torch.optim.AdamW. */
export class Adam extends BaseOptimizer {
  constructor(
    params: Tensor[],
    protected readonly o: AdamOptions,
    private readonly decoupled = false,
  ) {
    super(params, o.lr, decoupled ? 'adamw' : 'adam');
  }
  step(grads?: (Tensor | null)[]): void {
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    const eps = this.o.eps ?? 1e-8;
    const wd = this.o.weightDecay ?? (this.decoupled ? 0.01 : 0);
    const gs = gradsOf(this.params, grads);
    this.params.forEach((p, i) => {
      const g = gs[i];
      if (!g) return;
      this.advance(i);
      const t = this.paramStep(i);
      const stepSize = this.lr / (1 - Math.pow(b1, t));
      const sqrtBc2 = Math.sqrt(1 - Math.pow(b2, t));
      adamUpdate(p.f32Sync(), g, this.buf('m', i), this.buf('v', i), {
        b1,
        b2,
        eps,
        stepSize,
        sqrtBc2,
        decay: this.decoupled ? 1 - this.lr * wd : 1,
        l2: this.decoupled ? 0 : wd,
      });
    });
    this.steps++;
  }
}

/** One parameter's Adam update, as one tight loop (hot: it runs over every weight each step). */
function adamUpdate(
  w: Float32Array,
  g: Float32Array,
  m: Float32Array,
  v: Float32Array,
  c: { b1: number; b2: number; eps: number; stepSize: number; sqrtBc2: number; decay: number; l2: number },
): void {
  const { b1, b2, eps, stepSize, sqrtBc2, decay, l2 } = c;
  const c1 = 1 - b1;
  const c2 = 1 - b2;
  const n = w.length;
  for (let j = 0; j < n; j++) {
    let wj = w[j]!;
    const gj = g[j]! + l2 * wj;
    wj *= decay;
    const mj = b1 * m[j]! + c1 * gj;
    const vj = b2 * v[j]! + c2 * gj * gj;
    m[j] = mj;
    v[j] = vj;
    w[j] = wj - (stepSize * mj) / (Math.sqrt(vj) / sqrtBc2 + eps);
  }
}

export class AdamW extends Adam {
  constructor(params: Tensor[], o: AdamOptions) {
    super(params, o, true);
  }
}

/** torch.nn.utils.clip_grad_norm_: scales gradients in place so their global L2 norm is at most maxNorm. Returns the norm before clipping. */
export function clipGradNorm(grads: (Tensor | null)[], maxNorm: number): number {
  let total = 0;
  for (const g of grads) {
    if (!g) continue;
    const d = g.f32Sync();
    for (let j = 0; j < d.length; j++) total += d[j]! * d[j]!;
  }
  const norm = Math.sqrt(total);
  const coef = maxNorm / (norm + 1e-6);
  if (coef < 1) {
    for (const g of grads) {
      if (!g) continue;
      const d = g.f32Sync();
      for (let j = 0; j < d.length; j++) d[j] = d[j]! * coef;
    }
  }
  return norm;
}

export type Schedule = (step: number) => number;

/** Learning-rate schedules: functions of the step (0-based) giving the learning rate. */
export const schedules = {
  constant:
    (lr: number): Schedule =>
    () =>
      lr,
  /** Linear warm-up from lr/warmup to lr over `warmup` steps, then constant. */
  linearWarmup:
    (lr: number, warmup: number): Schedule =>
    (step) =>
      warmup > 0 && step < warmup ? (lr * (step + 1)) / warmup : lr,
  /** Linear warm-up, then cosine decay to minLr at totalSteps. */
  cosine:
    (lr: number, totalSteps: number, warmup = 0, minLr = 0): Schedule =>
    (step) => {
      if (warmup > 0 && step < warmup) return (lr * (step + 1)) / warmup;
      const progress = Math.min(1, (step - warmup) / Math.max(1, totalSteps - warmup));
      return minLr + 0.5 * (lr - minLr) * (1 + Math.cos(Math.PI * progress));
    },
};
