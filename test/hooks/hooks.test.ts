import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { add, mul } from '../../src/engine/ops/elementwise.js';
import { softmax } from '../../src/engine/ops/nn.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';

const FIXTURES = path.resolve('test/fixtures');
const IDS = [[3, 14, 15, 92, 65, 35, 89, 79, 32, 38]];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])));
  return m;
}

describe.each(['gpt2-tiny', 'llama-tiny'])('hooks on %s', (name) => {
  const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });
  const L = model.cfg.nLayers;

  it('caches every hook point with TransformerLens shapes', () => {
    const { cache } = model.runWithCache(IDS);
    expect(cache.keys().sort()).toEqual(model.hookNames().sort());
    const { nHeads: H, nKvHeads: KV, dHead: dh, dModel: D, dMlp: F } = model.cfg;
    const P = IDS[0]!.length;
    expect(cache.get('blocks.0.attn.hook_q').shape).toEqual([1, P, H, dh]);
    expect(cache.get('blocks.0.attn.hook_k').shape).toEqual([1, P, KV, dh]);
    expect(cache.get('blocks.0.attn.hook_pattern').shape).toEqual([1, H, P, P]);
    expect(cache.get('blocks.0.attn.hook_z').shape).toEqual([1, P, H, dh]);
    expect(cache.get('blocks.0.mlp.hook_post').shape).toEqual([1, P, F]);
    expect(cache.get(`blocks.${L - 1}.hook_resid_post`).shape).toEqual([1, P, D]);
  });

  it('residual stream identities hold', () => {
    const { cache } = model.runWithCache(IDS);
    for (let l = 0; l < L; l++) {
      const b = `blocks.${l}`;
      const mid = add(cache.get(`${b}.hook_resid_pre`), cache.get(`${b}.hook_attn_out`));
      expect(maxAbsDiff(mid.f32Sync(), cache.get(`${b}.hook_resid_mid`).f32Sync())).toBeLessThan(1e-5);
      const post = add(cache.get(`${b}.hook_resid_mid`), cache.get(`${b}.hook_mlp_out`));
      expect(maxAbsDiff(post.f32Sync(), cache.get(`${b}.hook_resid_post`).f32Sync())).toBeLessThan(1e-5);
    }
    const pattern = cache.get('blocks.0.attn.hook_pattern');
    const [, H, P] = pattern.shape as [number, number, number];
    const p = pattern.f32Sync();
    for (let h = 0; h < H; h++) {
      for (let q = 0; q < P; q++) {
        const row = p.subarray((h * P + q) * P, (h * P + q + 1) * P);
        expect(row.reduce((a, b) => a + b, 0)).toBeCloseTo(1, 5);
        for (let k = q + 1; k < P; k++) expect(row[k]).toBe(0);
      }
    }
    // pattern = softmax(attn_scores)
    const again = softmax(cache.get('blocks.0.attn.hook_attn_scores'));
    expect(maxAbsDiff(again.f32Sync(), p)).toBeLessThan(1e-6);
  });

  it('per-head results sum to the attention output', () => {
    const { cache } = model.runWithCache(IDS, {
      useAttnResult: true,
      names: ['blocks.0.attn.hook_result', 'blocks.0.hook_attn_out'],
    });
    const result = cache.get('blocks.0.attn.hook_result');
    expect(result.shape).toEqual([1, IDS[0]!.length, model.cfg.nHeads, model.cfg.dModel]);
    let total = sum(result, 2);
    const bO = model.weights.get('blocks.0.attn.b_O');
    if (bO) total = add(total, bO);
    expect(maxAbsDiff(total.f32Sync(), cache.get('blocks.0.hook_attn_out').f32Sync())).toBeLessThan(1e-5);
  });

  it('a forward hook can replace an activation', () => {
    const clean = model.run(IDS);
    const same = model.runWithHooks(IDS, { fwd: [{ name: 'blocks.0.hook_resid_mid', fn: (x) => x }] });
    expect(maxAbsDiff(same.f32Sync(), clean.f32Sync())).toBe(0);
    // Zeroing the last residual stream leaves ln_final's bias through the unembedding (+ b_U).
    const zeroed = model.runWithHooks(IDS, {
      fwd: [{ name: `blocks.${L - 1}.hook_resid_post`, fn: (x) => mul(x, 0) }],
    });
    const bU = model.weights.get('unembed.b_U')?.f32Sync();
    const lnB = model.weights.get('ln_final.b')?.f32Sync();
    const U = model.weights.get('unembed.W_U')!.f32Sync();
    const V = model.cfg.vocabSize;
    const D = model.cfg.dModel;
    const row = new Float32Array(V);
    for (let v = 0; v < V; v++) {
      let acc = bU ? bU[v]! : 0;
      if (lnB) for (let d = 0; d < D; d++) acc += lnB[d]! * U[d * V + v]!;
      row[v] = acc;
    }
    const want = new Float32Array(zeroed.size);
    for (let i = 0; i < want.length; i++) want[i] = row[i % V]!;
    expect(maxAbsDiff(zeroed.f32Sync(), want)).toBeLessThan(1e-5);
    // A filter selects many hook points; each call sees its own name and layer.
    const seen: string[] = [];
    model.runWithHooks(IDS, {
      fwd: [
        { name: (n) => n.endsWith('hook_pattern'), fn: (_x, h) => void seen.push(`${h.name}@${h.layer}`) },
      ],
    });
    expect(seen).toEqual(Array.from({ length: L }, (_, l) => `blocks.${l}.attn.hook_pattern@${l}`));
  });

  it('rejects unknown hook names and wrong replacement shapes', () => {
    expect(() =>
      model.runWithHooks(IDS, { fwd: [{ name: 'blocks.0.hook_resid_prez', fn: () => undefined }] }),
    ).toThrow(HookError);
    expect(() => model.runWithCache(IDS, { names: ['blocks.99.hook_resid_pre'] })).toThrow(
      /unknown hook point 'blocks.99.hook_resid_pre'/,
    );
    expect(() =>
      model.runWithHooks(IDS, {
        fwd: [{ name: 'blocks.0.hook_resid_pre', fn: () => Tensor.zeros([1, 2, 3]) }],
      }),
    ).toThrow(/returned shape \[1,2,3\]/);
  });

  it('gradients with respect to an activation match finite differences', async () => {
    const hook = 'blocks.0.hook_resid_mid';
    const { loss, grads } = model.gradients(IDS, { names: [hook] });
    expect(await loss.item()).toBeCloseTo(await model.loss(IDS), 5);
    const g = grads.get(hook).f32Sync();
    const D = model.cfg.dModel;
    const eps = 1e-2;
    for (const [pos, dim] of [
      [2, 3],
      [7, 0],
      [0, D - 1],
    ] as const) {
      const bump = (s: number) => (x: Tensor) => {
        const d = Float32Array.from(x.f32Sync());
        d[pos * D + dim]! += s;
        return new Tensor(d, x.shape);
      };
      const lossAt = (s: number) => {
        const logits = model.runWithHooks(IDS, { fwd: [{ name: hook, fn: bump(s) }] });
        return nextLoss(logits, IDS[0]!);
      };
      const fd = (lossAt(eps) - lossAt(-eps)) / (2 * eps);
      expect(Math.abs(fd - g[pos * D + dim]!)).toBeLessThan(2e-3 + 0.02 * Math.abs(fd));
    }
  });

  it('backward hooks see the gradient and may replace it', () => {
    const seen: number[][] = [];
    const logits = model.runWithHooks(IDS, {
      bwd: [
        { name: 'blocks.1.hook_resid_pre', fn: (g) => void seen.push(g.shape) },
        { name: 'blocks.0.hook_attn_out', fn: (g) => mul(g, 0) },
      ],
    });
    sum(logits).backward();
    expect(seen).toEqual([[1, IDS[0]!.length, model.cfg.dModel]]);
  });

  it('KV-cache generation equals greedy decoding without a cache', async () => {
    const prompt = IDS[0]!.slice(0, 4);
    const { generated } = await model.generate(prompt, { maxTokens: 6, temperature: 0, stopAtEos: false });
    const ids = [...prompt];
    for (let i = 0; i < 6; i++) {
      const logits = model.run([ids]).f32Sync();
      const V = model.cfg.vocabSize;
      const last = logits.subarray((ids.length - 1) * V);
      ids.push(last.indexOf(Math.max(...last)));
    }
    expect(generated).toEqual(ids.slice(4));
  });
});

function nextLoss(logits: Tensor, ids: number[]): number {
  const V = logits.shape[2]!;
  const d = logits.f32Sync();
  let total = 0;
  for (let i = 0; i < ids.length - 1; i++) {
    const row = d.subarray(i * V, (i + 1) * V);
    const m = Math.max(...row);
    const lse = m + Math.log(row.reduce((a, b) => a + Math.exp(b - m), 0));
    total += lse - row[ids[i + 1]!]!;
  }
  return total / (ids.length - 1);
}

describe('starting the forward pass at a layer', () => {
  it('from a cached hook_resid_pre gives the same logits', async () => {
    const { forward } = await import('../../src/models/transformer.js');
    for (const name of ['gpt2-tiny', 'llama-tiny']) {
      const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });
      const { tokens } = model.toTokens(IDS);
      const { logits, cache } = model.runWithCache(tokens);
      const resid = cache.get('blocks.1.hook_resid_pre');
      const again = forward(model.cfg, model.weights, tokens, { startAtLayer: 1, residual: resid });
      expect(maxAbsDiff(again.f32Sync(), logits.f32Sync())).toBeLessThan(1e-5);
      expect(() => forward(model.cfg, model.weights, tokens, { startAtLayer: 1 })).toThrow(
        /needs a residual/,
      );
    }
  });
});
