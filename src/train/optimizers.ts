import { ShapeError } from '../errors.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import { TracedFunction } from '../engine/trace.js';
import { add, div, minimum, mul, sqrt, sub } from '../engine/ops/elementwise.js';
import { sum } from '../engine/ops/reduce.js';
import { reshape } from '../engine/ops/shape.js';

/**
 * Optimizers with PyTorch's update rules, written as engine ops: a step issues one compiled graph over
 * every parameter and reads nothing back, so training runs on any backend (and on a device, the
 * weights and moments stay there). Tensors are immutable, so a step *replaces* the entries of
 * `params`: read the current values from `opt.params` (and replace an entry to project a parameter,
 * e.g. renormalise decoder rows). Gradients are passed explicitly (or taken from p.grad).
 */
export interface Optimizer {
  /** The parameters' current values; step() replaces the entries. */
  readonly params: Tensor[];
  /** Learning rate used by the next step (schedules set it). */
  lr: number;
  /** Steps taken so far. */
  readonly steps: number;
  step(grads?: (Tensor | null)[]): void;
  /** Everything needed to resume exactly (reads the moment buffers). */
  state(): Promise<OptimizerState>;
  loadState(s: OptimizerState): void;
  /** Releases the compiled update graphs. */
  dispose(): void;
}

export interface OptimizerState {
  kind: string;
  steps: number;
  lr: number;
  buffers: Record<string, Float32Array>;
}

function gradsOf(params: Tensor[], grads?: (Tensor | null)[]): (Tensor | null)[] {
  return params.map((p, i) => {
    const g = grads ? grads[i] : p.grad;
    if (!g) return null;
    if (g.size !== p.size)
      throw new ShapeError(`gradient ${i} has ${g.size} elements, parameter has ${p.size}`);
    return g.shape.length === p.shape.length && g.shape.every((d, j) => d === p.shape[j])
      ? g
      : reshape(g, p.shape);
  });
}

/**
 * One parameter's update: (param, grad, buffers..., per-step scalars...) -> (param', buffers'...).
 * Per-step numbers (learning rate, bias corrections) are scalar inputs, so one compiled graph serves
 * every step.
 */
type Update = (p: Tensor, g: Tensor, bufs: Tensor[], scalars: Tensor[]) => [Tensor, Tensor[]];

abstract class BaseOptimizer implements Optimizer {
  steps = 0;
  readonly params: Tensor[];
  /** Moment buffers as tensors, `${name}.${i}`; per-parameter step counts on the host. */
  protected buffers = new Map<string, Tensor>();
  protected stepCounts: number[];
  private compiled = new Map<string, TracedFunction>();
  constructor(
    params: Tensor[],
    public lr: number,
    protected readonly kind: string,
    private readonly bufferNames: string[],
  ) {
    this.params = [...params];
    for (const p of params)
      if (p.dtype !== 'float32') throw new ShapeError(`optimizers update float32 parameters, got ${p.dtype}`);
    if (!(lr >= 0)) throw new ShapeError(`learning rate must be >= 0, got ${lr}`);
    this.stepCounts = params.map(() => 0);
  }
  protected abstract update: Update;
  /** Scalars of parameter i's update at this step (its step count already advanced). */
  protected abstract scalars(i: number): number[];

  protected buf(name: string, i: number): Tensor {
    const key = `${name}.${i}`;
    let b = this.buffers.get(key);
    if (!b) {
      b = Tensor.zeros(this.params[i]!.shape);
      this.buffers.set(key, b);
    }
    return b;
  }

  step(grads?: (Tensor | null)[]): void {
    const gs = gradsOf(this.params, grads);
    const active = gs.flatMap((g, i) => (g ? [i] : []));
    // As torch, a parameter without a gradient does not advance.
    for (const i of active) this.stepCounts[i]!++;
    const inputs = active.flatMap((i) => [
      this.params[i]!,
      gs[i]!,
      ...this.bufferNames.map((n) => this.buf(n, i)),
      ...this.scalars(i).map((v) => Tensor.scalar(v)),
    ]);
    if (active.length === 0) {
      this.steps++;
      return;
    }
    const key = active.join(',');
    let fn = this.compiled.get(key);
    if (!fn) {
      const per = 2 + this.bufferNames.length + this.scalars(active[0]!).length;
      fn = noGrad(() =>
        TracedFunction.trace(
          (xs) =>
            active.flatMap((_, k) => {
              const [p, g, ...rest] = xs.slice(k * per, (k + 1) * per);
              const nb = this.bufferNames.length;
              const [p2, b2] = this.update(p!, g!, rest.slice(0, nb), rest.slice(nb));
              return [p2, ...b2];
            }),
          inputs,
          { inlineLimit: 0 },
        ),
      ).fn;
      this.compiled.set(key, fn);
    }
    // Every step, the first included, runs the compiled graph: eager and compiled kernels round
    // differently, and a resumed run must repeat a straight one bit for bit.
    const out = fn.run(inputs);
    const per = 1 + this.bufferNames.length;
    active.forEach((i, k) => {
      this.params[i] = out[k * per]!;
      this.bufferNames.forEach((n, b) => this.buffers.set(`${n}.${i}`, out[k * per + 1 + b]!));
    });
    this.steps++;
  }

  /**
   * A whole training step as one compiled graph: `lossAndGrads(inputs, params)` (traced with autodiff)
   * and then this optimizer's update of every parameter. `run(inputs)` advances the optimizer as step()
   * would and returns lossAndGrads' outputs. One graph launch per step instead of two: on small models,
   * where launches dominate (the superposition organism), this is most of the optimizer's cost.
   */
  compileStep(
    lossAndGrads: (inputs: Tensor[], params: Tensor[]) => { outputs: Tensor[]; grads: Tensor[] },
    example: Tensor[],
  ): { run: (inputs: Tensor[]) => Tensor[]; dispose: () => void } {
    const nIn = example.length;
    const nP = this.params.length;
    const nb = this.bufferNames.length;
    const feed = (inputs: Tensor[]) => [
      ...inputs,
      ...this.params,
      ...this.params.flatMap((_, i) => this.bufferNames.map((n) => this.buf(n, i))),
      ...this.params.flatMap((_, i) => this.scalars(i).map((v) => Tensor.scalar(v))),
    ];
    const nS = this.scalars(0).length;
    let nOut = 0;
    // Traced on detached copies, so the live parameters never get autodiff state.
    const ex = feed(example).map((t) => t.detach());
    const { fn } = TracedFunction.trace(
      (xs) => {
        const ps = xs.slice(nIn, nIn + nP).map((p) => p.requireGrad());
        const { outputs, grads } = lossAndGrads(xs.slice(0, nIn), ps);
        nOut = outputs.length;
        const bufs = xs.slice(nIn + nP, nIn + nP + nP * nb);
        const scal = xs.slice(nIn + nP + nP * nb);
        const next = noGrad(() =>
          ps.map((p, i) =>
            this.update(
              p.detach(),
              grads[i]!,
              bufs.slice(i * nb, (i + 1) * nb),
              scal.slice(i * nS, (i + 1) * nS),
            ),
          ),
        );
        return [
          ...outputs.map((o) => o.detach()),
          ...next.map(([p2]) => p2),
          ...next.flatMap(([, b2]) => b2),
        ];
      },
      ex,
      { inlineLimit: 0 },
    );
    return {
      run: (inputs) => {
        for (let i = 0; i < nP; i++) this.stepCounts[i]!++;
        const out = fn.run(feed(inputs));
        for (let i = 0; i < nP; i++) {
          this.params[i] = out[nOut + i]!;
          this.bufferNames.forEach((n, b) => this.buffers.set(`${n}.${i}`, out[nOut + nP + i * nb + b]!));
        }
        this.steps++;
        return out.slice(0, nOut);
      },
      dispose: () => fn.dispose(),
    };
  }

  /** Multiplies parameter i's moment buffers by `keep` (broadcast), e.g. zeros for resampled latents. */
  scaleBuffers(i: number, keep: Tensor): void {
    for (const n of this.bufferNames) {
      const b = this.buffers.get(`${n}.${i}`);
      if (b) this.buffers.set(`${n}.${i}`, mul(b, keep));
    }
  }

  async state(): Promise<OptimizerState> {
    const buffers: Record<string, Float32Array> = {};
    for (const [k, v] of this.buffers) buffers[k] = Float32Array.from(await v.f32());
    this.stepCounts.forEach((c, i) => {
      if (c > 0) buffers[`step.${i}`] = Float32Array.of(c);
    });
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
    this.stepCounts = this.params.map(() => 0);
    this.buffers = new Map();
    for (const [k, v] of Object.entries(s.buffers)) {
      const i = Number(k.split('.').pop());
      if (k.startsWith('step.')) this.stepCounts[i] = v[0]!;
      else this.buffers.set(k, new Tensor(Float32Array.from(v), this.params[i]!.shape));
    }
  }

  dispose(): void {
    for (const fn of this.compiled.values()) fn.dispose();
    this.compiled.clear();
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
    super(params, o.lr, 'sgd', o.momentum ? ['momentum'] : []);
    if (o.nesterov && (!o.momentum || (o.dampening ?? 0) !== 0)) {
      throw new ShapeError('Nesterov momentum needs a momentum and zero dampening');
    }
  }
  // Scalars: lr, and `first` (1 at the parameter's first step, where torch starts the buffer at d).
  protected scalars(i: number): number[] {
    return [this.lr, this.stepCounts[i] === 1 ? 1 : 0];
  }
  protected update: Update = (p, g, bufs, [lr, first]) => {
    const { momentum = 0, dampening = 0, weightDecay = 0, nesterov = false } = this.o;
    let d = weightDecay ? add(g, mul(p, weightDecay)) : g;
    const next: Tensor[] = [];
    if (momentum) {
      const later = add(mul(bufs[0]!, momentum), mul(d, 1 - dampening));
      const b = add(mul(d, first!), mul(later, sub(1, first!)));
      next.push(b);
      d = nesterov ? add(d, mul(b, momentum)) : b;
    }
    return [sub(p, mul(d, lr!)), next];
  };
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
    super(params, o.lr, decoupled ? 'adamw' : 'adam', ['m', 'v']);
  }
  private get wd(): number {
    return this.o.weightDecay ?? (this.decoupled ? 0.01 : 0);
  }
  // Scalars: step size lr / (1 - b1^t), sqrt(1 - b2^t), the decoupled decay factor 1 - lr wd.
  protected scalars(i: number): number[] {
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    const t = this.stepCounts[i]!;
    return [
      this.lr / (1 - Math.pow(b1, t)),
      Math.sqrt(1 - Math.pow(b2, t)),
      this.decoupled ? 1 - this.lr * this.wd : 1,
    ];
  }
  protected update: Update = (p, g, [m, v], [stepSize, sqrtBc2, decay]) => {
    const [b1, b2] = this.o.betas ?? [0.9, 0.999];
    const eps = this.o.eps ?? 1e-8;
    const gj = !this.decoupled && this.wd ? add(g, mul(p, this.wd)) : g;
    const w = this.decoupled ? mul(p, decay!) : p;
    const m2 = add(mul(m!, b1), mul(gj, 1 - b1));
    const v2 = add(mul(v!, b2), mul(mul(gj, gj), 1 - b2));
    const denom = add(div(sqrt(v2), sqrtBc2!), eps);
    return [sub(w, div(mul(m2, stepSize!), denom)), [m2, v2]];
  };
}

export class AdamW extends Adam {
  constructor(params: Tensor[], o: AdamOptions) {
    super(params, o, true);
  }
}

/**
 * torch.nn.utils.clip_grad_norm_, as engine ops: the gradients scaled so their global L2 norm is at
 * most maxNorm, and that norm before clipping (a scalar tensor: read it only when it is logged).
 */
export function clipGradNorm<G extends Tensor | null>(
  grads: G[],
  maxNorm: number,
): { grads: G[]; norm: Tensor } {
  const present = grads.filter((g): g is NonNullable<G> => g !== null);
  if (present.length === 0) return { grads, norm: Tensor.scalar(0) };
  return noGrad(() => {
    const total = present.map((g) => sum(mul(g, g))).reduce((a, b) => add(a, b));
    const norm = sqrt(total);
    const coef = minimum(div(maxNorm, add(norm, 1e-6)), Tensor.scalar(1));
    return { grads: grads.map((g) => (g ? mul(g, coef) : g)) as G[], norm };
  });
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
