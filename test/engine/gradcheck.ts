import { noGrad, Rng, Tensor } from '../../src/engine/index.js';
import { isFloat } from '../../src/engine/dtype.js';

export interface GradcheckOptions {
  /** Label for error messages and the float32-fallback record. */
  name?: string;
  /** Seed for the random output weighting R. */
  seed?: number;
  /** Indices of the inputs to check (default: every float input). */
  wrt?: number[];
  /** Skip the float64 attempt (for ops known to lack double kernels). */
  forceFloat32?: boolean;
  /** float64 settings: step 1e-6, tolerance 1e-6 relative + 1e-6 absolute. */
  eps64?: number;
  rtol64?: number;
  atol64?: number;
  /** float32 settings: step 1e-2 * max(1, |x|), tolerance 1e-2 relative + 2e-3 absolute. */
  eps32?: number;
  rtol32?: number;
  atol32?: number;
}

export interface GradcheckResult {
  dtype: 'float32' | 'float64';
  /** Largest |analytic - numeric| over all checked elements. */
  maxAbsError: number;
  /** Number of gradient elements compared. */
  checked: number;
}

/** Ops (by gradcheck name) that had to fall back to float32 because ORT's CPU provider has no double kernel. */
export const float32Fallbacks = new Map<string, string>();

/** True for ORT's "no kernel for this type" failures, which gradcheck answers by retrying in float32. */
export function isMissingKernelError(e: unknown): boolean {
  const msg = e instanceof Error ? e.message : String(e);
  return /Could not find an implementation|NOT_IMPLEMENTED/i.test(msg);
}

function toDtype(t: Tensor, dtype: 'float32' | 'float64'): Tensor {
  const data =
    dtype === 'float64'
      ? Float64Array.from(t.dataSync() as Float32Array)
      : Float32Array.from(t.dataSync() as Float64Array);
  return new Tensor(data, t.shape);
}

function weighting(shape: number[], dtype: 'float32' | 'float64', seed: number): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((p, d) => p * d, 1);
  const data = dtype === 'float64' ? new Float64Array(n) : new Float32Array(n);
  // Uniform in [0.5, 1.5) with a random sign: every output element matters, none cancels by accident.
  for (let i = 0; i < n; i++) data[i] = (rng.next() < 0.5 ? -1 : 1) * (0.5 + rng.next());
  return new Tensor(data, shape);
}

function dot(out: Tensor, r: Tensor): number {
  const a = out.dataSync() as Float32Array | Float64Array;
  const b = r.dataSync() as Float32Array | Float64Array;
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

function runIn(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  dtype: 'float32' | 'float64',
  opts: GradcheckOptions,
): GradcheckResult {
  const name = opts.name ?? fn.name ?? 'fn';
  const wrt = new Set(opts.wrt ?? inputs.map((t, i) => (isFloat(t.dtype) ? i : -1)).filter((i) => i >= 0));
  for (const i of wrt) {
    if (!isFloat(inputs[i]!.dtype))
      throw new Error(`gradcheck(${name}): input ${i} is ${inputs[i]!.dtype}, not float`);
  }
  const base = inputs.map((t) => (isFloat(t.dtype) ? toDtype(t, dtype) : t));
  const leaves = base.map((t, i) => (wrt.has(i) ? toDtype(t, dtype).requireGrad() : t));

  const out = fn(...leaves);
  if (out.dtype !== dtype) throw new Error(`gradcheck(${name}): output is ${out.dtype}, expected ${dtype}`);
  if (!out.requiresGrad) throw new Error(`gradcheck(${name}): output does not require grad`);
  const r = weighting(out.shape, dtype, opts.seed ?? 1234);
  // d/dx sum(out * R) is the vector-Jacobian product with R.
  out.backward(r);

  const f64 = dtype === 'float64';
  const rtol = f64 ? (opts.rtol64 ?? 1e-6) : (opts.rtol32 ?? 1e-2);
  const atol = f64 ? (opts.atol64 ?? 1e-6) : (opts.atol32 ?? 2e-3);
  const step = f64 ? (opts.eps64 ?? 1e-6) : (opts.eps32 ?? 1e-2);
  const failures: string[] = [];
  let maxAbsError = 0;
  let checked = 0;

  for (const i of wrt) {
    const leaf = leaves[i]!;
    const g = leaf.grad;
    if (g && (g.dtype !== dtype || g.shape.join() !== leaf.shape.join())) {
      throw new Error(
        `gradcheck(${name}): grad of input ${i} is ${g.dtype} [${g.shape}], expected ${dtype} [${leaf.shape}]`,
      );
    }
    const analytic = g ? (g.dataSync() as Float32Array | Float64Array) : new Float64Array(leaf.size);
    const x0 = base[i]!.dataSync() as Float32Array | Float64Array;
    for (let j = 0; j < x0.length; j++) {
      // float32 steps scale with |x| so the perturbation is representable; float64 steps stay absolute.
      const h = f64 ? step : step * Math.max(1, Math.abs(x0[j]!));
      const evalAt = (delta: number): number => {
        const xs = base.map((t, k) => {
          if (k !== i) return t;
          const d = (dtype === 'float64' ? Float64Array : Float32Array).from(x0);
          d[j] = x0[j]! + delta;
          return new Tensor(d, t.shape);
        });
        return dot(
          noGrad(() => fn(...xs)),
          r,
        );
      };
      // Use the perturbation the dtype actually represents.
      const hp = (dtype === 'float64' ? x0[j]! + h : Math.fround(x0[j]! + h)) - x0[j]!;
      const hm = x0[j]! - (dtype === 'float64' ? x0[j]! - h : Math.fround(x0[j]! - h));
      const numeric = (evalAt(hp) - evalAt(-hm)) / (hp + hm);
      const a = analytic[j]!;
      const err = Math.abs(a - numeric);
      checked++;
      if (!(err <= atol + rtol * Math.abs(numeric))) {
        failures.push(
          `input ${i}[${j}]: autodiff ${a} vs finite difference ${numeric} (|diff| ${err.toExponential(2)})`,
        );
      }
      maxAbsError = Math.max(maxAbsError, err); // NaN sticks, and is also reported as a failure
    }
  }
  if (failures.length) {
    const head = failures.slice(0, 8).join('\n  ');
    const more = failures.length > 8 ? `\n  ... and ${failures.length - 8} more` : '';
    throw new Error(
      `gradcheck(${name}, ${dtype}): ${failures.length}/${checked} gradients differ:\n  ${head}${more}`,
    );
  }
  return { dtype, maxAbsError, checked };
}

/**
 * Compares reverse-mode gradients of fn at `inputs` with central finite differences of sum(fn(...) * R),
 * R a seeded random weighting. Runs in float64 (step 1e-6, tolerance 1e-6); when ORT has no double kernel
 * for an op, retries in float32 (step 1e-2 * max(1, |x|), tolerance 1e-2 relative + 2e-3 absolute) and
 * records the fallback in `float32Fallbacks`. Integer inputs (indices, targets) pass through unchanged.
 * Throws with the worst mismatches on failure.
 */
export function gradcheck(
  fn: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: GradcheckOptions = {},
): GradcheckResult {
  const name = opts.name ?? (fn.name || 'fn');
  if (!opts.forceFloat32) {
    try {
      return runIn(fn, inputs, 'float64', opts);
    } catch (e) {
      if (!isMissingKernelError(e)) throw e;
      float32Fallbacks.set(name, (e as Error).message.split('\n')[0]!);
    }
  } else {
    float32Fallbacks.set(name, 'forced');
  }
  return runIn(fn, inputs, 'float32', opts);
}

/** Seeded normal tensor (float32; gradcheck widens it as needed). */
export function randnT(shape: number[], rng: Rng, std = 1): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = rng.normal() * std;
  return new Tensor(d, shape);
}

/** Seeded uniform tensor in [lo, hi). */
export function uniformT(shape: number[], rng: Rng, lo: number, hi: number): Tensor {
  const n = shape.reduce((p, d) => p * d, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = lo + (hi - lo) * rng.next();
  return new Tensor(d, shape);
}

/** Seeded tensor whose entries have |x| in [lo, hi) with random signs (for kinks at 0: relu, abs). */
export function awayFromZeroT(shape: number[], rng: Rng, lo = 0.2, hi = 1.5): Tensor {
  const t = uniformT(shape, rng, lo, hi);
  const d = t.dataSync() as Float32Array;
  for (let i = 0; i < d.length; i++) if (rng.next() < 0.5) d[i] = -d[i]!;
  return t;
}
