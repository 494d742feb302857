import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { getBackend, setBackend } from '../../src/engine/backend/backend.js';
import { OrtAsyncBackend } from '../../src/engine/backend/ort-async.js';
import {
  add,
  gelu,
  isGradEnabled,
  lazily,
  matmul,
  mean,
  mul,
  noGrad,
  realize,
  reshape,
  slice,
  softmax,
  sum,
  Tensor,
  topk,
  transpose,
} from '../../src/engine/index.js';
import { lazyGraphCount } from '../../src/engine/lazy.js';
import { randn as randnRng, Rng } from '../../src/engine/random.js';

const randn = (shape: number[], seed: number) => randnRng(shape, new Rng(seed));

/** A small computation touching views, reductions, multi-output kernels and autograd. */
function work(x: Tensor, w: Tensor): { y: Tensor; top: Tensor } {
  const h = gelu(matmul(x, w));
  const r = reshape(h, [2, 3, 4]);
  const s = softmax(add(slice(r, 1, 1, 3), mean(slice(r, 1, 0, 2), -1, true)), -1);
  const y = sum(mul(s, slice(r, 1, 0, 2)));
  void transpose;
  return { y, top: topk(reshape(h, [6, 4]), 2, -1).values };
}

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-5) =>
  Array.from(a).forEach((v, i) => expect(v).toBeCloseTo(b[i]!, -Math.log10(tol)));

describe('lazy engine', () => {
  const x = randn([6, 5], 1);
  const w = randn([5, 4], 2);

  it('computes what eager computes, and records instead of running', async () => {
    const eager = work(x, w);
    const lazy = lazily(() => work(x, w));
    expect(lazy.y.isReady).toBe(false);
    expect(lazy.top.shape).toEqual([6, 2]);
    close(await lazy.y.f32(), eager.y.dataSync() as Float32Array);
    close(await lazy.top.f32(), eager.top.dataSync() as Float32Array);
  });

  it('compiles a structure on its second sight and feeds new values to the same graph', async () => {
    const before = lazyGraphCount();
    const run = (seed: number) => lazily(() => work(randn([6, 5], seed), w).y);
    await run(10).data(); // the first sight of a structure runs kernel by kernel, the second compiles
    for (const seed of [11, 12, 13]) {
      const got = await run(seed).f32();
      close(got, work(randn([6, 5], seed), w).y.dataSync() as Float32Array);
    }
    expect(lazyGraphCount()).toBe(before + 1);
  });

  it('differentiates lazily: gradients equal the eager ones', async () => {
    const grads = (lazy: boolean) => {
      const xx = x.detach().requireGrad();
      const ww = w.detach().requireGrad();
      const go = () => work(xx, ww).y.backward();
      if (lazy) lazily(go);
      else go();
      return [xx.grad!, ww.grad!];
    };
    const e = grads(false);
    const l = grads(true);
    expect(l[0]!.isReady).toBe(false);
    await realize(...l);
    close(l[0]!.dataSync() as Float32Array, e[0]!.dataSync() as Float32Array);
    close(l[1]!.dataSync() as Float32Array, e[1]!.dataSync() as Float32Array);
  });

  it('keeps grad mode per asynchronous call', async () => {
    const tick = () => new Promise((r) => setTimeout(r, 5));
    const seen: boolean[] = [];
    await Promise.all([
      noGrad(async () => {
        await tick();
        seen.push(isGradEnabled());
        await tick();
        seen.push(isGradEnabled());
      }),
      (async () => {
        await tick();
        seen.push(isGradEnabled());
      })(),
    ]);
    expect(seen.sort()).toEqual([false, false, true]);
    expect(isGradEnabled()).toBe(true);
  });
});

describe('asynchronous backend (public InferenceSession API only)', () => {
  it('runs ops lazily, refuses synchronous reads, and matches the synchronous backend', async () => {
    const expected = work(randn([6, 5], 3), randn([5, 4], 4));
    const prev = setBackend(new OrtAsyncBackend());
    try {
      expect(getBackend().synchronous).toBe(false);
      const got = work(randn([6, 5], 3), randn([5, 4], 4));
      expect(() => got.y.dataSync()).toThrow(/await t.data\(\)/);
      close(await got.y.f32(), expected.y.dataSync() as Float32Array);
      close(await got.top.f32(), expected.top.dataSync() as Float32Array);
    } finally {
      setBackend(prev);
    }
  });
});
