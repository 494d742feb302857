// Steering and directional ablation: a concept's direction by difference of means of two prompt sets
// (ActAdd / CAA style) or from a probe, added at a hook point while running or generating, or projected
// out of the activations there.
import { ShapeError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { addAt, indexTensor } from '../engine/ops/intervene.js';
import { logSoftmax } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { slice } from '../engine/ops/shape.js';
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
export async function differenceOfMeans(
  model: HookedTransformer,
  textsA: (string | number[])[],
  textsB: (string | number[])[],
  hook: string,
  opts: { position?: Position } = {},
): Promise<DifferenceOfMeans> {
  if (textsA.length === 0 || textsB.length === 0)
    throw new ShapeError('differenceOfMeans needs at least one text in each set');
  const position = opts.position ?? 'last';
  const mean = async (texts: (string | number[])[]) => {
    const X = await collectActivations(model, texts, hook, { position });
    const m = new Float64Array(X.dim);
    for (let i = 0; i < X.rows; i++) for (let j = 0; j < X.dim; j++) m[j]! += X.data[i * X.dim + j]! / X.rows;
    return m;
  };
  const a = await mean(textsA);
  const b = await mean(textsB);
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

/**
 * A forward hook adding coefficient * vector to the activation at `hook` ([batch, pos, d]); the vector
 * enters the graph as a tensor, so gradients flow through the hook to the activation and, when `vector`
 * is a Tensor that requires grad, to the vector.
 */
export function steeringHook(
  hook: HookSelector,
  vector: ArrayLike<number> | Tensor,
  coefficient: number,
  opts: SteeringOptions = {},
): ForwardHook {
  const positions = opts.positions ?? 'all';
  const v = vector instanceof Tensor ? vector : Tensor.from(Float32Array.from(vector));
  if (v.rank !== 1) throw new ShapeError(`steering vector must be 1-D [d_model], got [${v.shape}]`);
  return {
    name: hook,
    fn: (x) => {
      const d = x.shape[x.rank - 1]!;
      if (d !== v.size) throw new ShapeError(`steering vector has dim ${v.size}, activation ${d}`);
      const delta = mul(v, coefficient);
      if (positions === 'all' || x.rank < 2) return add(x, delta);
      // Positions of this call's sequence axis (during generation with a KV cache: of the new tokens).
      const P = x.shape[x.rank - 2]!;
      const at =
        positions === 'last' ? [P - 1] : positions.filter((p) => Number.isInteger(p) && p >= 0 && p < P);
      return at.length ? addAt(x, -2, indexTensor([...new Set(at)]), delta) : x;
    },
  };
}

/** A forward hook that projects `direction` out of the activation at `hook`: x - (x·u) u, u = unit(direction). */
export function directionalAblationHook(hook: HookSelector, direction: ArrayLike<number>): ForwardHook {
  const u = Tensor.from(unit(direction));
  return {
    name: hook,
    fn: (x) => {
      const d = x.shape[x.rank - 1]!;
      if (d !== u.size) throw new ShapeError(`direction has dim ${u.size}, activation ${d}`);
      return sub(x, mul(sum(mul(x, u), -1, true), u));
    },
  };
}

/** The same sampling (prompt, seed, temperature) without and with the hooks. */
export async function steeredGeneration(
  model: HookedTransformer,
  prompt: string | number[],
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
export async function nextTokenLogProbs(
  model: HookedTransformer,
  prompt: string | number[],
  hooks: ForwardHook[] = [],
): Promise<Float64Array> {
  const logits = hooks.length ? model.runWithHooks(prompt, { fwd: hooks }) : model.run(prompt);
  const last = slice(logits, -2, -1); // [batch, 1, vocab]
  const lp = await logSoftmax(last, -1).f32();
  return Float64Array.from(lp.subarray(lp.length - logits.shape[logits.rank - 1]!));
}
