// Steering and directional ablation: a concept's direction by difference of means of two prompt sets
// (ActAdd / CAA style) or from a probe, added at a hook point while running or generating, or projected
// out of the activations there.
import { ShapeError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { GenerateOptions, GenerateResult } from '../hooks/generate.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ForwardHook, HookSelector } from '../hooks/hooks.js';
import { collectActivations, type Position } from './probes.js';

export interface DifferenceOfMeans {
  /** mean(A) - mean(B) at the hook, in activation units. */
  vector: Float32Array;
  /** |vector|. */
  norm: number;
  /** vector / |vector|. */
  direction: Float32Array;
  hook: string;
}

/** mean(activations of textsA) - mean(activations of textsB) at `hook` (default: each text's last token). */
export function differenceOfMeans(
  model: HookedTransformer,
  textsA: string[],
  textsB: string[],
  hook: string,
  opts: { position?: Position } = {},
): DifferenceOfMeans {
  if (textsA.length === 0 || textsB.length === 0)
    throw new ShapeError('differenceOfMeans needs at least one text in each set');
  const position = opts.position ?? 'last';
  const mean = (texts: string[]) => {
    const X = collectActivations(model, texts, hook, { position });
    const m = new Float64Array(X.dim);
    for (let i = 0; i < X.rows; i++) for (let j = 0; j < X.dim; j++) m[j]! += X.data[i * X.dim + j]! / X.rows;
    return m;
  };
  const a = mean(textsA);
  const b = mean(textsB);
  const vector = Float32Array.from(a, (x, j) => x - b[j]!);
  const norm = Math.hypot(...vector);
  return { vector, norm, direction: unit(vector), hook };
}

export function unit(v: ArrayLike<number>): Float32Array {
  let n = 0;
  for (let i = 0; i < v.length; i++) n += v[i]! * v[i]!;
  n = Math.sqrt(n);
  if (!(n > 0)) throw new ShapeError('cannot normalize a zero vector');
  return Float32Array.from(v as ArrayLike<number>, (x) => x / n);
}

export interface SteeringOptions {
  /** Positions that get the vector: 'all' (default; during generation every new token too), 'last', or indices. */
  positions?: 'all' | 'last' | number[];
}

/** A forward hook adding coefficient * vector to the activation at `hook` ([batch, pos, d]). */
export function steeringHook(
  hook: HookSelector,
  vector: ArrayLike<number>,
  coefficient: number,
  opts: SteeringOptions = {},
): ForwardHook {
  const positions = opts.positions ?? 'all';
  return {
    name: hook,
    fn: (x) => {
      const d = x.shape[x.rank - 1]!;
      if (d !== vector.length)
        throw new ShapeError(`steering vector has dim ${vector.length}, activation ${d}`);
      const P = x.rank >= 2 ? x.shape[x.rank - 2]! : 1;
      const src = x.f32Sync();
      const out = new Float32Array(src);
      const rows = src.length / d;
      for (let r = 0; r < rows; r++) {
        const p = r % P;
        if (positions === 'last' && p !== P - 1) continue;
        if (Array.isArray(positions) && !positions.includes(p)) continue;
        for (let j = 0; j < d; j++) out[r * d + j]! += coefficient * vector[j]!;
      }
      return new Tensor(out, x.shape);
    },
  };
}

/** A forward hook that projects `direction` out of the activation at `hook`: x - (x·u) u, u = unit(direction). */
export function directionalAblationHook(hook: HookSelector, direction: ArrayLike<number>): ForwardHook {
  const u = unit(direction);
  return {
    name: hook,
    fn: (x) => {
      const d = x.shape[x.rank - 1]!;
      if (d !== u.length) throw new ShapeError(`direction has dim ${u.length}, activation ${d}`);
      const out = new Float32Array(x.f32Sync());
      for (let r = 0; r < out.length / d; r++) {
        let dot = 0;
        for (let j = 0; j < d; j++) dot += out[r * d + j]! * u[j]!;
        for (let j = 0; j < d; j++) out[r * d + j]! -= dot * u[j]!;
      }
      return new Tensor(out, x.shape);
    },
  };
}

/** The same sampling (prompt, seed, temperature) without and with the hooks. */
export async function steeredGeneration(
  model: HookedTransformer,
  prompt: string,
  hooks: ForwardHook[],
  opts: Omit<GenerateOptions, 'hooks'> = {},
): Promise<{ unsteered: GenerateResult; steered: GenerateResult }> {
  const base = { ...opts, seed: opts.seed ?? 0 };
  return {
    unsteered: await model.generate(prompt, { ...base, hooks: [] }),
    steered: await model.generate(prompt, { ...base, hooks }),
  };
}

/** Log-probabilities of the next token after the prompt (last position), optionally with hooks. */
export function nextTokenLogProbs(
  model: HookedTransformer,
  prompt: string,
  hooks: ForwardHook[] = [],
): Float64Array {
  const logits = hooks.length ? model.runWithHooks(prompt, { fwd: hooks }) : model.run(prompt);
  const V = logits.shape[logits.rank - 1]!;
  const all = logits.f32Sync();
  const row = all.subarray(all.length - V);
  let m = -Infinity;
  for (const v of row) m = Math.max(m, v);
  let s = 0;
  for (const v of row) s += Math.exp(v - m);
  const lse = m + Math.log(s);
  return Float64Array.from(row, (v) => v - lse);
}
