// What a TransformerLens user pokes at first: clear errors for the usual slips, and the conveniences
// (persistent hooks, per-head weights, token helpers, residual-stream cache helpers) checked by construction.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { mul } from '../../src/engine/ops/elementwise.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookError, ShapeError, UsageError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import type { ForwardHookFn } from '../../src/hooks/hooks.js';
import { directLogitAttribution } from '../../src/methods/dla.js';

const FIXTURES = path.resolve('test/fixtures');
const IDS = [[3, 14, 15, 92, 65, 35, 89, 79, 32, 38]];
const P = IDS[0]!.length;

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(Number(a[i]) - Number(b[i])));
  return m;
}

const stories = HookedTransformer.load(undefined, { compile: 'never' });
const gpt2 = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny'), { compile: 'never' });
// GQA: 6 query heads over 2 key/value heads.
const llama = HookedTransformer.load(path.join(FIXTURES, 'llama-tiny'), { compile: 'never' });

describe('clear errors (or support) for the usual slips', () => {
  it('a hook returning a non-Tensor names the hook and what it must return', () => {
    const fn = (() => 42) as unknown as ForwardHookFn;
    expect(() => gpt2.runWithHooks(IDS, { fwd: [{ name: 'blocks.0.hook_resid_pre', fn }] })).toThrow(
      new HookError(
        "hook on 'blocks.0.hook_resid_pre' returned number 42: return a Tensor of shape [1,10,32], or nothing",
      ),
    );
    // null counts as "nothing", as undefined does.
    const same = gpt2.runWithHooks(IDS, {
      fwd: [{ name: 'blocks.0.hook_resid_pre', fn: () => null as never }],
    });
    expect(maxAbsDiff(same.f32Sync(), gpt2.run(IDS).f32Sync())).toBe(0);
  });

  it('attn.hook_result works without asking for useAttnResult', async () => {
    const { cache } = gpt2.runWithCache(IDS, {
      names: ['blocks.0.attn.hook_result', 'blocks.0.hook_attn_out'],
    });
    const result = cache.get('blocks.0.attn.hook_result');
    expect(result.shape).toEqual([1, P, gpt2.cfg.nHeads, gpt2.cfg.dModel]);
    const bO = gpt2.weights.get('blocks.0.attn.b_O')!.f32Sync();
    const heads = sum(result, 2).f32Sync();
    const want = cache.get('blocks.0.hook_attn_out').f32Sync();
    expect(
      maxAbsDiff(
        heads.map((x, i) => x + bO[i % bO.length]!),
        want,
      ),
    ).toBeLessThan(1e-5);
    expect(() =>
      gpt2.runWithCache(IDS, { names: ['blocks.0.attn.hook_result'], useAttnResult: false }),
    ).toThrow(
      new HookError("'blocks.0.attn.hook_result' (each head's output) exists only with useAttnResult: true"),
    );
    let seen: number[] = [];
    gpt2.runWithHooks(IDS, { fwd: [['blocks.1.attn.hook_result', (x) => void (seen = x.shape)]] });
    expect(seen).toEqual([1, P, gpt2.cfg.nHeads, gpt2.cfg.dModel]);
    // generate too (each step sees the new position only).
    const shapes: number[][] = [];
    await gpt2.generate(IDS[0]!, {
      maxTokens: 2,
      temperature: 0,
      hooks: [['blocks.0.attn.hook_result', (x) => void shapes.push(x.shape)]],
    });
    expect(shapes).toEqual([
      [1, P, gpt2.cfg.nHeads, gpt2.cfg.dModel],
      [1, 1, gpt2.cfg.nHeads, gpt2.cfg.dModel],
    ]);
  });

  it('runWithCache takes one name or filter as well as a list (names_filter)', () => {
    const one = gpt2.runWithCache(IDS, { names: (n) => n.endsWith('hook_resid_post') }).cache.keys();
    expect(one).toEqual(['blocks.0.hook_resid_post', 'blocks.1.hook_resid_post']);
    expect(gpt2.runWithCache(IDS, { names: 'hook_embed' }).cache.keys()).toEqual(['hook_embed']);
    expect(() => gpt2.runWithCache(IDS, { names: 3 as never })).toThrow(
      new HookError('names: expected hook names or name filters (functions), got number'),
    );
  });

  it('tokenStrings and toStrTokens take text', () => {
    expect(stories.tokenStrings('Once upon a time')).toEqual(['<s>', ' Once', ' upon', ' a', ' time']);
    expect(stories.toStrTokens('Once upon a time', { prependBos: false })).toEqual([
      ' Once',
      ' upon',
      ' a',
      ' time',
    ]);
    expect(stories.toStrTokens([1, 403])).toEqual(['<s>', ' Once']);
  });

  it('a wrong-shape backward hook names its hook', () => {
    const logits = gpt2.runWithHooks(IDS, {
      bwd: [{ name: 'blocks.1.hook_resid_pre', fn: () => Tensor.from([1, 2, 3]) }],
    });
    expect(() => sum(logits).backward()).toThrow(
      new HookError("backward hook on 'blocks.1.hook_resid_pre' returned shape [3], expected [1,10,32]"),
    );
  });

  it('run(undefined) says what a model input is', () => {
    const msg =
      'model input must be text, an array of texts, token ids (number[] or number[][]) or an int tensor ' +
      '[batch, pos]; got undefined';
    expect(() => gpt2.run(undefined as never)).toThrow(new ShapeError(msg));
    expect(() => gpt2.runWithCache(undefined as never)).toThrow(ShapeError);
  });

  it("accepts TransformerLens's [name, fn] tuples and rejects anything else clearly", () => {
    const zero: ForwardHookFn = (x) => mul(x, 0);
    const tuple = gpt2.runWithHooks(IDS, { fwd: [['blocks.1.hook_mlp_out', zero]] });
    const object = gpt2.runWithHooks(IDS, { fwd: [{ name: 'blocks.1.hook_mlp_out', fn: zero }] });
    expect(maxAbsDiff(tuple.f32Sync(), object.f32Sync())).toBe(0);
    expect(maxAbsDiff(tuple.f32Sync(), gpt2.run(IDS).f32Sync())).toBeGreaterThan(1e-3);
    expect(() => gpt2.runWithHooks(IDS, { fwd: [{ nam: 'x' } as never] })).toThrow(
      new HookError(
        'fwd hook 0 must be { name, fn } or [name, fn] with a hook name (or name filter) and a function, ' +
          'got an object with keys ["nam"]',
      ),
    );
  });
});

describe('persistent hooks: addHook, resetHooks, withHooks', () => {
  // compile 'always' would trace a graph: added hooks must bypass it.
  const model = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny'), { compile: 'always' });
  const zero: ForwardHookFn = (x) => mul(x, 0);
  const clean = model.run(IDS).f32Sync();
  const ablated = model.runWithHooks(IDS, { fwd: [['blocks.0.hook_attn_out', zero]] }).f32Sync();

  it('addHook applies to every pass until resetHooks', async () => {
    expect(maxAbsDiff(clean, ablated)).toBeGreaterThan(1e-3);
    model.addHook('blocks.0.hook_attn_out', zero);
    try {
      expect(model.run(IDS).f32Sync()).toEqual(ablated);
      const { logits, cache } = model.runWithCache(IDS, { names: ['blocks.0.hook_attn_out'] });
      expect(logits.f32Sync()).toEqual(ablated);
      expect(Math.max(...cache.get('blocks.0.hook_attn_out').f32Sync().map(Math.abs))).toBe(0);
      expect((await model.generate(IDS[0]!, { maxTokens: 1, temperature: 0 })).generated).toEqual(
        argmaxLast(ablated, model.cfg.vocabSize),
      );
    } finally {
      model.resetHooks();
    }
    expect(model.run(IDS).f32Sync()).toEqual(clean);
    expect(() => model.addHook('blocks.0.hook_nope', zero)).toThrow(HookError);
  });

  it('withHooks adds them for one call, and removes them after a throw', () => {
    const inside = model.withHooks({ fwd: [['blocks.0.hook_attn_out', zero]] }, (m) => m.run(IDS).f32Sync());
    expect(inside).toEqual(ablated);
    expect(model.run(IDS).f32Sync()).toEqual(clean);
    expect(() =>
      model.withHooks({ fwd: [['blocks.0.hook_attn_out', zero]] }, () => {
        throw new Error('boom');
      }),
    ).toThrow('boom');
    expect(model.run(IDS).f32Sync()).toEqual(clean);
  });

  it('a persistent backward hook sees the gradient of gradients()', () => {
    let seen: number[] = [];
    model.addHook('blocks.1.hook_resid_pre', (g) => void (seen = g.shape), 'bwd');
    try {
      const { grads } = model.gradients(IDS, { names: ['blocks.1.hook_resid_pre'] });
      expect(seen).toEqual([1, P, model.cfg.dModel]);
      expect(grads.get('blocks.1.hook_resid_pre').shape).toEqual(seen);
      model.run(IDS); // a pass without gradients skips it
    } finally {
      model.resetHooks();
    }
  });
});

/** The greedy first token after IDS (generation then continues from it). */
function argmaxLast(logits: Float32Array, V: number): number[] {
  const last = logits.subarray((P - 1) * V, P * V);
  return [last.indexOf(Math.max(...last))];
}

describe('per-head weights: W_Q, W_K, W_V [layers, heads, d_model, d_head], W_O [layers, heads, d_head, d_model]', () => {
  const { nLayers: L, nHeads: H, nKvHeads: KV, dModel: d, dHead: dh } = llama.cfg;
  const { cache } = llama.runWithCache(IDS);

  /** x [d] @ W[l, h] ([rows, cols]) as a plain array. */
  function vecMat(x: Float32Array, W: Tensor, l: number, h: number): number[] {
    const [, , rows, cols] = W.shape as number[];
    const w = W.f32Sync().subarray((l * H + h) * rows! * cols!, (l * H + h + 1) * rows! * cols!);
    return Array.from({ length: cols! }, (_, j) => x.reduce((s, xi, i) => s + xi * w[i * cols! + j]!, 0));
  }

  it('have TransformerLens shapes (W_K, W_V repeated over each query group)', () => {
    expect(KV).toBeLessThan(H);
    expect(llama.W_Q.shape).toEqual([L, H, d, dh]);
    expect(llama.W_K.shape).toEqual([L, H, d, dh]);
    expect(llama.W_V.shape).toEqual([L, H, d, dh]);
    expect(llama.W_O.shape).toEqual([L, H, dh, d]);
  });

  it('reproduce hook_q, hook_k, hook_v from ln1.hook_normalized and hook_attn_out from hook_z', () => {
    const l = 1;
    const p = 4;
    // hook_normalized is after the norm's weight: the input of the Q/K/V projections.
    const normalized = cache
      .get(`blocks.${l}.ln1.hook_normalized`)
      .f32Sync()
      .subarray(p * d, (p + 1) * d);
    for (const [W, hook, heads] of [
      [llama.W_Q, 'hook_q', H],
      [llama.W_K, 'hook_k', KV],
      [llama.W_V, 'hook_v', KV],
    ] as const) {
      const act = cache.get(`blocks.${l}.attn.${hook}`).f32Sync();
      for (let h = 0; h < H; h++) {
        const src = Math.floor((h * heads) / H);
        const want = act.subarray((p * heads + src) * dh, (p * heads + src + 1) * dh);
        expect(maxAbsDiff(vecMat(normalized, W, l, h), want), `${hook} head ${h}`).toBeLessThan(1e-4);
      }
    }
    const z = cache.get(`blocks.${l}.attn.hook_z`).f32Sync();
    const out = new Float64Array(d);
    for (let h = 0; h < H; h++) {
      const o = vecMat(z.subarray((p * H + h) * dh, (p * H + h + 1) * dh), llama.W_O, l, h);
      o.forEach((v, i) => (out[i]! += v));
    }
    const attnOut = cache
      .get(`blocks.${l}.hook_attn_out`)
      .f32Sync()
      .subarray(p * d, (p + 1) * d);
    expect(maxAbsDiff(out, attnOut)).toBeLessThan(1e-4);
  });
});

describe('toSingleToken', () => {
  it('returns the id of one-token text or an id, and lists the tokens otherwise', () => {
    expect(stories.toSingleToken('Once')).toBe(403);
    expect(stories.toSingleToken(' Lily')).toBe(317);
    expect(stories.toSingleToken(7)).toBe(7);
    expect(() => stories.toSingleToken('Once upon')).toThrow(
      new UsageError(
        'token "Once upon" is 2 tokens, not one: " Once" (403), " upon" (407) (give a single token, or its id)',
      ),
    );
    expect(() => stories.toSingleToken(512)).toThrow(UsageError);
  });
});

describe('cache helpers: accumulatedResid, decomposeResid, stackHeadResults, applyLnToStack, logitAttrs', () => {
  const { nLayers: L, nHeads: H, dModel: d } = gpt2.cfg;
  const { cache } = gpt2.runWithCache(IDS, { useAttnResult: true });
  const resid = (l: number) => cache.get(`blocks.${l}.hook_resid_pre`).f32Sync();
  const final = cache.get(`blocks.${L - 1}.hook_resid_post`).f32Sync();
  /** The sum over the leading component axis. */
  const total = (t: Tensor) => sum(t, 0).f32Sync();

  it('accumulatedResid stacks resid_pre per layer and the final resid_post', () => {
    const { stack, labels } = cache.accumulatedResid();
    expect(labels).toEqual(['0_pre', '1_pre', 'final_post']);
    expect(stack.shape).toEqual([L + 1, 1, P, d]);
    const f = stack.f32Sync();
    const n = P * d;
    expect(f.subarray(0, n)).toEqual(resid(0));
    expect(f.subarray(n, 2 * n)).toEqual(resid(1));
    expect(f.subarray(2 * n)).toEqual(final);
    expect(cache.accumulatedResid(1, { inclMid: true }).labels).toEqual(['0_pre', '0_mid', '1_pre']);
  });

  it('decomposeResid sums to the residual stream it splits', () => {
    const all = cache.decomposeResid();
    expect(all.labels).toEqual(['embed', 'pos_embed', '0_attn_out', '0_mlp_out', '1_attn_out', '1_mlp_out']);
    expect(maxAbsDiff(total(all.stack), final)).toBeLessThan(1e-5);
    expect(maxAbsDiff(total(cache.decomposeResid(1).stack), resid(1))).toBeLessThan(1e-5);
  });

  it('stackHeadResults holds every head; with b_O they sum to the attention outputs', () => {
    const { stack, labels } = cache.stackHeadResults();
    expect(stack.shape).toEqual([L * H, 1, P, d]);
    expect(labels.slice(0, H + 1)).toEqual([...Array.from({ length: H }, (_, h) => `L0H${h}`), 'L1H0']);
    const f = stack.f32Sync();
    const n = P * d;
    const bO = gpt2.weights.get('blocks.1.attn.b_O')!.f32Sync();
    const layer1 = new Float64Array(n).map((_, i) => bO[i % d]!);
    for (let h = 0; h < H; h++) f.subarray((H + h) * n, (H + h + 1) * n).forEach((v, i) => (layer1[i]! += v));
    expect(maxAbsDiff(layer1, cache.get('blocks.1.hook_attn_out').f32Sync())).toBeLessThan(1e-5);
    expect(() => gpt2.runWithCache(IDS).cache.stackHeadResults()).toThrow(/useAttnResult: true/);
  });

  it('applyLnToStack keeps the parts additive: with ln_final.w and .b they give ln_final.hook_normalized', () => {
    const normed = total(cache.applyLnToStack(cache.decomposeResid().stack));
    const w = gpt2.weights.get('ln_final.w')!.f32Sync();
    const b = gpt2.weights.get('ln_final.b')!.f32Sync();
    const affine = normed.map((x, i) => x * w[i % d]! + b[i % d]!);
    expect(maxAbsDiff(affine, cache.get('ln_final.hook_normalized').f32Sync())).toBeLessThan(1e-4);
  });

  it("logitAttrs gives each head's direct logit attribution, as directLogitAttribution does", async () => {
    const [answer, wrong, pos] = [17, 42, 6];
    const attrs = cache.logitAttrs(cache.applyLnToStack(cache.stackHeadResults().stack), answer, wrong);
    expect(attrs.shape).toEqual([L * H, 1, P]);
    const dla = await directLogitAttribution(gpt2, IDS, { answer, wrong, pos });
    const heads = dla.components.filter((c) => c.kind === 'head');
    const got = Array.from({ length: L * H }, (_, k) => attrs.f32Sync()[k * P + pos]!);
    expect(
      maxAbsDiff(
        got,
        heads.map((c) => c.contribution),
      ),
    ).toBeLessThan(1e-4);
  });
});
