import { Tensor } from './tensor.js';

/** Seeded PRNG (mulberry32): reproducible sampling and weight init across runs and machines. */
export class Rng {
  private state: number;
  constructor(seed = 0) {
    this.state = seed >>> 0;
  }
  /** The generator's whole state, for exact resume from a checkpoint. */
  getState(): number {
    return this.state;
  }
  setState(state: number): void {
    this.state = state >>> 0;
  }
  /** Uniform in [0, 1). */
  next(): number {
    let t = (this.state = (this.state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  /** Standard normal (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}

export function randn(shape: number[], rng: Rng, std = 1): Tensor {
  const t = Tensor.zeros(shape);
  const d = t.f32Sync();
  for (let i = 0; i < d.length; i++) d[i] = rng.normal() * std;
  return t;
}
