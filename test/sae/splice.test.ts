// Splicing SAEs and transcoders into the built-in model (stories260K: d_model 64, 5 layers, 8 heads).
import '../../src/engine/node.js';
import { describe, expect, it } from 'vitest';
import { add, mul, sub } from '../../src/engine/ops/elementwise.js';
import { indexTensor, maskAlong, take } from '../../src/engine/ops/intervene.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { reshape } from '../../src/engine/ops/shape.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import type { ForwardHook } from '../../src/hooks/hooks.js';
import { ablate } from '../../src/methods/ablation.js';
import { attributionPatching, correlation } from '../../src/methods/attribution.js';
import { pathPatching } from '../../src/methods/path-patching.js';
import { activationPatching, patchingMatrix } from '../../src/methods/patching.js';
import { nextTokenLogProbs, steeringHook } from '../../src/methods/steering.js';
import { saeConfig, SaeError, type SaeConfig } from '../../src/sae/config.js';
import { SparseAutoencoder } from '../../src/sae/sae.js';
import { withSAEs } from '../../src/sae/splice.js';
import { identitySae } from '../helpers/sae.js';

const model = HookedTransformer.load(undefined, { compile: 'never' });
const D = model.cfg.dModel;
const IDS = [1, 403, 407, 261, 1261, 275, 265, 4, 1192, 260, 2045]
  .map((i) => i % model.cfg.vocabSize)
  .filter((i) => i > 0);
const NAME = {
  clean: 'Once upon a time, there was a little girl named Lily. One day,',
  corrupt: 'Once upon a time, there was a little girl named Tim. One day,',
  answer: 'Lily',
  wrong: 'Tim',
};

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

function randomSae(hookName: string, seed: number, extra: Partial<SaeConfig> = {}): SparseAutoencoder {
  const cfg = saeConfig({ architecture: 'standard', dIn: D, dSae: 96, hookName, ...extra });
  return SparseAutoencoder.init(cfg, { seed, decoderNorm: 0.5 });
}

/** A forward hook at the SAE's hook that applies it by hand (forwardRows on the flattened rows). */
function manualHook(sae: SparseAutoencoder): ForwardHook {
  return {
    name: sae.cfg.hookName,
    fn: (x) => reshape(sae.forwardRows(reshape(x, [x.size / sae.dIn, sae.dIn])).recons, x.shape),
  };
}

describe('splicing an SAE', () => {
  it('an identity SAE leaves the logits unchanged; its points are listed after its hook', async () => {
    const H = 'blocks.2.hook_resid_pre';
    const clean = await model.run([IDS]).f32();
    const before = model.hookNames();
    model.addSAE(identitySae(H));
    try {
      expect(maxAbsDiff(await model.run([IDS]).f32(), clean)).toBeLessThan(1e-5);
      const names = model.hookNames();
      const i = names.indexOf(H);
      expect(names.slice(i, i + 6)).toEqual([
        H,
        `${H}.hook_sae_input`,
        `${H}.hook_sae_acts_pre`,
        `${H}.hook_sae_acts_post`,
        `${H}.hook_sae_recons`,
        `${H}.hook_sae_output`,
      ]);
      expect(names.length).toBe(before.length + 5);
      expect(model.saes.map((s) => s.hookName)).toEqual([H]);
    } finally {
      model.removeSAE(H);
    }
    expect(model.hookNames()).toEqual(before);
    expect(model.saes).toEqual([]);
  });

  it('a random SAE changes the logits exactly as applying it by hand', async () => {
    const sae = randomSae('blocks.1.hook_resid_post', 1);
    const clean = await model.run([IDS]).f32();
    const manual = await model.runWithHooks([IDS], { fwd: [manualHook(sae)] }).f32();
    await withSAEs(model, sae, async () => {
      const spliced = await model.run([IDS]).f32();
      expect(maxAbsDiff(spliced, clean)).toBeGreaterThan(0.1);
      expect(maxAbsDiff(spliced, manual)).toBeLessThan(1e-5);
      // Every entry point sees it: cache, hooks, loss.
      expect(maxAbsDiff(await model.runWithCache([IDS], { names: [] }).logits.f32(), manual)).toBeLessThan(
        1e-5,
      );
      expect(maxAbsDiff(await model.runWithHooks([IDS]).f32(), manual)).toBeLessThan(1e-5);
    });
    expect(maxAbsDiff(await model.run([IDS]).f32(), clean)).toBe(0);
  });

  it('user hooks at the hook see the SAE input; the cache holds [batch, pos, d_sae]', async () => {
    const H = 'blocks.3.hook_resid_mid';
    const sae = randomSae(H, 2);
    const batch = [IDS, [...IDS].reverse()];
    const P = IDS.length;
    await withSAEs(model, sae, async () => {
      const { cache } = model.runWithCache(batch, {
        names: [
          H,
          `${H}.hook_sae_input`,
          `${H}.hook_sae_acts_pre`,
          `${H}.hook_sae_acts_post`,
          `${H}.hook_sae_recons`,
          `${H}.hook_sae_output`,
        ],
      });
      expect(cache.get(`${H}.hook_sae_acts_post`).shape).toEqual([2, P, 96]);
      expect(cache.get(`${H}.hook_sae_acts_pre`).shape).toEqual([2, P, 96]);
      expect(cache.get(`${H}.hook_sae_input`).shape).toEqual([2, P, D]);
      expect(cache.get(`${H}.hook_sae_output`).shape).toEqual([2, P, D]);
      // The model's activation at H is the SAE's input; the output is the reconstruction.
      expect(maxAbsDiff(await cache.get(H).f32(), await cache.get(`${H}.hook_sae_input`).f32())).toBe(0);
      expect(
        maxAbsDiff(
          await cache.get(`${H}.hook_sae_recons`).f32(),
          await cache.get(`${H}.hook_sae_output`).f32(),
        ),
      ).toBe(0);
      const rows = sae.forwardRows(reshape(cache.get(H), [2 * P, D]));
      expect(
        maxAbsDiff(await cache.get(`${H}.hook_sae_acts_post`).f32(), await rows.acts.f32()),
      ).toBeLessThan(1e-6);
      // A forward hook at H edits the SAE's input (the hook keeps the tensor it sees; read after the run).
      let seen: Tensor | null = null;
      model.runWithHooks([IDS], {
        fwd: [
          { name: H, fn: (x) => mul(x, 2) },
          { name: `${H}.hook_sae_input`, fn: (x) => void (seen = x) },
        ],
      });
      const plain = await model
        .runWithCache([IDS], { names: [H] })
        .cache.get(H)
        .f32();
      expect(Array.from((await seen!.f32()).subarray(0, 3))).toEqual(
        Array.from(plain.subarray(0, 3), (v) => v * 2),
      );
    });
  });

  it('with the error term the logits are unchanged, but zeroing a latent removes its decoder write', async () => {
    const H = 'blocks.2.hook_resid_post';
    const sae = randomSae(H, 3);
    const clean = await model.run([IDS]).f32();
    const acts = withSAEs(model, sae, () =>
      model.runWithCache([IDS], { names: [`${H}.hook_sae_acts_post`] }).cache.get(`${H}.hook_sae_acts_post`),
    );
    // The latent with the largest total activation.
    const dSae = sae.dSae;
    const a = await acts.f32();
    const tot = new Float64Array(dSae);
    for (let i = 0; i < a.length; i++) tot[i % dSae]! += a[i]!;
    const j = tot.indexOf(Math.max(...tot));
    expect(tot[j]).toBeGreaterThan(0);
    // Zero latent j: a mask along the latent axis (1 everywhere but j).
    const keep = Float32Array.from({ length: dSae }, (_, i) => (i === j ? 0 : 1));
    const zeroJ = (x: Tensor) => maskAlong(x, -1, Tensor.from(keep));
    const withErr = { sae, useErrorTerm: true };
    await withSAEs(model, withErr, async () => {
      expect(model.hookNames()).toContain(`${H}.hook_sae_error`);
      expect(maxAbsDiff(await model.run([IDS]).f32(), clean)).toBe(0);
      const edited = await model
        .runWithHooks([IDS], { fwd: [{ name: `${H}.hook_sae_acts_post`, fn: zeroJ }] })
        .f32();
      expect(maxAbsDiff(edited, clean)).toBeGreaterThan(1e-3);
    });
    // The expected logits, by a hook on the model without the SAE: x - acts[..., j] * W_dec[j].
    const jIndex = indexTensor([j]);
    const actJ = take(acts, -1, jIndex); // [1, pos, 1]
    const wdecJ = reshape(take(sae.param('W_dec'), 0, jIndex), [D]);
    const expected = await model
      .runWithHooks([IDS], { fwd: [{ name: H, fn: (x) => sub(x, mul(actJ, wdecJ)) }] })
      .f32();
    const edited = await withSAEs(model, withErr, () =>
      model.runWithHooks([IDS], { fwd: [{ name: `${H}.hook_sae_acts_post`, fn: zeroJ }] }).f32(),
    );
    expect(maxAbsDiff(edited, expected)).toBeLessThan(1e-5);
  });

  it('gradients at hook_sae_acts_post equal finite differences of the loss', async () => {
    const H = 'blocks.1.hook_resid_mid';
    const name = `${H}.hook_sae_acts_post`;
    const sae = randomSae(H, 4);
    await withSAEs(model, sae, async () => {
      const { grads, loss } = model.gradients([IDS], { names: [name] });
      const g = grads.get(name);
      expect(g.shape).toEqual([1, IDS.length, 96]);
      const gd = await g.f32();
      // The entries with the largest gradients of two different latents.
      const byMagnitude = Array.from(gd.keys()).sort((x, y) => Math.abs(gd[y]!) - Math.abs(gd[x]!));
      const first = byMagnitude[0]!;
      const order = [first, byMagnitude.find((i) => i % 96 !== first % 96)!];
      expect(await loss.item()).toBeCloseTo(await model.loss([IDS]), 5);
      for (const idx of order.slice(0, 2)) {
        // Nudge entry idx by eps: x + eps * oneHot(idx), the one-hot entering as a tensor.
        const at = (eps: number) =>
          model.runWithHooks([IDS], {
            fwd: [
              {
                name,
                fn: (x) => {
                  const nudge = new Float32Array(x.size);
                  nudge[idx] = eps;
                  return add(x, Tensor.from(nudge, x.shape));
                },
              },
            ],
          });
        const eps = 1e-2;
        const lossOf = async (t: Tensor) => {
          const V = model.cfg.vocabSize;
          const lg = await t.f32();
          let s = 0;
          for (let p = 0; p < IDS.length - 1; p++) {
            const row = lg.subarray(p * V, (p + 1) * V);
            const m = Math.max(...row);
            let z = 0;
            for (const v of row) z += Math.exp(v - m);
            s += m + Math.log(z) - row[IDS[p + 1]!]!;
          }
          return s / (IDS.length - 1);
        };
        const fd = ((await lossOf(at(eps))) - (await lossOf(at(-eps)))) / (2 * eps);
        expect(Math.abs(fd - gd[idx]!)).toBeLessThan(1e-3 + 5e-3 * Math.abs(gd[idx]!));
      }
      // Backward hooks on a latent point fire too.
      let seen: number[] | null = null;
      const logits = model.runWithHooks([IDS], { bwd: [{ name, fn: (gr) => void (seen = gr.shape) }] });
      sum(logits).backward();
      expect(seen).toEqual([1, IDS.length, 96]);
    });
  });

  it('a hook_z SAE reads the flattened heads; a per-head width fits too', async () => {
    const H = 'blocks.1.attn.hook_z';
    const sae = randomSae(H, 5);
    const manual = await model.runWithHooks([IDS], { fwd: [manualHook(sae)] }).f32();
    await withSAEs(model, sae, async () => {
      expect(maxAbsDiff(await model.run([IDS]).f32(), manual)).toBeLessThan(1e-5);
      const { cache } = model.runWithCache([IDS], { names: [`${H}.hook_sae_input`, `${H}.hook_sae_output`] });
      expect(cache.get(`${H}.hook_sae_input`).shape).toEqual([1, IDS.length, 64]);
      expect(cache.get(`${H}.hook_sae_output`).shape).toEqual([1, IDS.length, 64]);
    });
    const perHead = identitySae(H, model.cfg.dHead);
    const clean = await model.run([IDS]).f32();
    await withSAEs(model, perHead, async () => {
      expect(maxAbsDiff(await model.run([IDS]).f32(), clean)).toBeLessThan(1e-5);
      const acts = model.runWithCache([IDS], { names: [`${H}.hook_sae_acts_post`] }).cache;
      expect(acts.get(`${H}.hook_sae_acts_post`).shape).toEqual([1, IDS.length, 8, 16]);
    });
  });

  it('a transcoder reads hookName and replaces hookNameOut, with its points under the output hook', async () => {
    const In = 'blocks.0.ln2.hook_normalized';
    const Out = 'blocks.0.hook_mlp_out';
    const tc = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: D, dSae: 80, hookName: In, hookNameOut: Out, dOut: D }),
      { seed: 6, decoderNorm: 0.5 },
    );
    let input: Tensor | null = null;
    const manual = await model
      .runWithHooks([IDS], {
        fwd: [
          { name: In, fn: (x) => void (input = x) },
          { name: Out, fn: (x) => reshape(tc.forwardRows(reshape(input!, [IDS.length, D])).recons, x.shape) },
        ],
      })
      .f32();
    const clean = await model.run([IDS]).f32();
    await withSAEs(model, tc, async () => {
      expect(maxAbsDiff(await model.run([IDS]).f32(), manual)).toBeLessThan(1e-5);
      const names = model.hookNames();
      expect(names[names.indexOf(Out) + 1]).toBe(`${Out}.hook_sae_input`);
      expect(names.some((n) => n.startsWith(`${In}.hook_sae`))).toBe(false);
      const { cache } = model.runWithCache([IDS], { names: [In, `${Out}.hook_sae_input`] });
      expect(maxAbsDiff(await cache.get(In).f32(), await cache.get(`${Out}.hook_sae_input`).f32())).toBe(0);
    });
    await withSAEs(model, { sae: tc, useErrorTerm: true }, async () => {
      expect(maxAbsDiff(await model.run([IDS]).f32(), clean)).toBe(0);
    });
  });

  it('generate (KV cache) samples the spliced model', async () => {
    const sae = randomSae('blocks.2.hook_resid_pre', 7);
    const manual = await model.generate([1, 403], { maxTokens: 8, temperature: 0, hooks: [manualHook(sae)] });
    const plain = await model.generate([1, 403], { maxTokens: 8, temperature: 0 });
    const spliced = await withSAEs(model, sae, () =>
      model.generate([1, 403], { maxTokens: 8, temperature: 0 }),
    );
    expect(spliced.tokens).toEqual(manual.tokens);
    expect(spliced.tokens).not.toEqual(plain.tokens);
  });

  // On the asynchronous backend there is no TracedFunction path (HookedTransformer.compiled returns null
  // there: every forward is recorded lazily and compiled when read), so these two tests check that the
  // lazily compiled graphs see the SAEs, their parameter replacements and their removal.
  it('compiled graphs include the SAEs and are never replayed stale', async () => {
    const compiled = HookedTransformer.load(undefined, { compile: 'always' });
    const H = 'blocks.2.hook_resid_mid';
    const sae = randomSae(H, 8);
    const original = (await compiled.run([IDS]).f32()).slice();
    const eager = await withSAEs(model, sae, () => model.run([IDS]).f32());
    compiled.addSAE(sae);
    expect(maxAbsDiff(await compiled.run([IDS]).f32(), eager)).toBeLessThan(1e-5);
    expect(maxAbsDiff(await compiled.run([IDS]).f32(), eager)).toBeLessThan(1e-5); // the replay
    // Cache and gradients through the compiled path.
    const name = `${H}.hook_sae_acts_post`;
    const cacheC = await compiled
      .runWithCache([IDS], { names: [name] })
      .cache.get(name)
      .f32();
    const gradC = await compiled
      .gradients([IDS], { names: [name] })
      .grads.get(name)
      .f32();
    await withSAEs(model, sae, async () => {
      expect(
        maxAbsDiff(
          cacheC,
          await model
            .runWithCache([IDS], { names: [name] })
            .cache.get(name)
            .f32(),
        ),
      ).toBeLessThan(1e-5);
      expect(
        maxAbsDiff(
          gradC,
          await model
            .gradients([IDS], { names: [name] })
            .grads.get(name)
            .f32(),
        ),
      ).toBeLessThan(1e-5);
    });
    // Replacing a parameter tensor retraces.
    const old = sae.param('W_dec');
    sae.params.set('W_dec', mul(old, -1));
    try {
      const flipped = await withSAEs(model, sae, () => model.run([IDS]).f32());
      expect(maxAbsDiff(await compiled.run([IDS]).f32(), flipped)).toBeLessThan(1e-5);
    } finally {
      sae.params.set('W_dec', old);
    }
    // With error term: another graph.
    compiled.removeSAE(H);
    compiled.addSAE(sae, { useErrorTerm: true });
    expect(maxAbsDiff(await compiled.run([IDS]).f32(), original)).toBeLessThan(1e-5);
    compiled.resetSAEs();
    expect(maxAbsDiff(await compiled.run([IDS]).f32(), original)).toBe(0);
  });

  it('a topk SAE compiles to the same logits as eager', async () => {
    const compiled = HookedTransformer.load(undefined, { compile: 'always' });
    const sae = randomSae('blocks.4.hook_resid_pre', 9, { architecture: 'topk', k: 5 });
    const eager = await withSAEs(model, sae, () => model.run([IDS, IDS]).f32());
    await withSAEs(compiled, sae, async () => {
      expect(maxAbsDiff(await compiled.run([IDS, IDS]).f32(), eager)).toBeLessThan(1e-5);
      const acts = await compiled
        .runWithCache([IDS], { names: ['blocks.4.hook_resid_pre.hook_sae_acts_post'] })
        .cache.get('blocks.4.hook_resid_pre.hook_sae_acts_post')
        .f32();
      for (let r = 0; r < IDS.length; r++) {
        const nz = acts.subarray(r * 96, (r + 1) * 96).filter((v) => v !== 0).length;
        expect(nz).toBeLessThanOrEqual(5);
      }
    });
  });

  it('refuses an SAE that does not fit, with the hook, d_in and shape in the message', () => {
    const wrong = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: 32, dSae: 64, hookName: 'blocks.0.hook_resid_pre' }),
    );
    expect(() => model.addSAE(wrong)).toThrow(SaeError);
    expect(() => model.addSAE(wrong)).toThrow(/'blocks\.0\.hook_resid_pre'.*d_in=32.*\[batch, pos, 64\]/);
    const mlp = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: D, dSae: 64, hookName: 'blocks.0.mlp.hook_post' }),
    );
    expect(() => model.addSAE(mlp)).toThrow(new RegExp(`d_in=64.*\\[batch, pos, ${model.cfg.dMlp}\\]`));
    const unknown = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: D, dSae: 64, hookName: 'blocks.9.hook_resid_pre' }),
    );
    expect(() => model.addSAE(unknown)).toThrow(/'blocks\.9\.hook_resid_pre' is not a hook point/);
    const pattern = SparseAutoencoder.init(
      saeConfig({ architecture: 'standard', dIn: 8, dSae: 64, hookName: 'blocks.0.attn.hook_pattern' }),
    );
    expect(() => model.addSAE(pattern)).toThrow(SaeError);
    const backwards = SparseAutoencoder.init(
      saeConfig({
        architecture: 'standard',
        dIn: D,
        dSae: 64,
        hookName: 'blocks.1.hook_mlp_out',
        hookNameOut: 'blocks.0.hook_mlp_out',
        dOut: D,
      }),
    );
    expect(() => model.addSAE(backwards)).toThrow(/must come after/);
    const a = identitySae('blocks.0.hook_resid_pre');
    const b = identitySae('blocks.0.hook_resid_pre');
    model.addSAE(a);
    try {
      expect(() => model.addSAE(b)).toThrow(/already has a spliced SAE/);
      expect(() => model.addSAE(a)).toThrow(SaeError);
      expect(() => model.removeSAE('blocks.3.hook_resid_pre')).toThrow(/no spliced SAE/);
    } finally {
      model.resetSAEs();
    }
    expect(() => model.removeSAE()).toThrow(/no SAE is spliced/);
    // Unknown latent hook names are refused as other hook names.
    expect(() =>
      model.runWithCache([IDS], { names: ['blocks.0.hook_resid_pre.hook_sae_acts_post'] }),
    ).toThrow(HookError);
  });

  it('withSAEs restores the previous set when fn throws', () => {
    const keep = identitySae('blocks.1.hook_resid_pre');
    model.addSAE(keep);
    try {
      expect(() =>
        withSAEs(model, randomSae('blocks.2.hook_resid_pre', 10), () => {
          expect(model.saes.length).toBe(2);
          throw new Error('boom');
        }),
      ).toThrow('boom');
      expect(model.saes.map((s) => s.source)).toEqual([keep]);
    } finally {
      model.resetSAEs();
    }
  });
});

describe('methods on SAE latents', () => {
  const H = 'blocks.2.hook_resid_pre';
  const latents = `${H}.hook_sae_acts_post`;

  it('activation patching: the batched sweep equals one pass per patch; all latents restore the clean run', async () => {
    const sae = randomSae(H, 11);
    await withSAEs(model, sae, async () => {
      const opts = { ...NAME, hook: latents, indices: [0, 5, 17], batchSize: 7 };
      const fast = await activationPatching(model, opts);
      const naive = await activationPatching(model, { ...opts, naive: true });
      expect(fast.target).toBe('hook');
      expect(fast.components).toEqual(['#0', '#5', '#17']);
      expect(maxAbsDiff(fast.raw.flat(2), naive.raw.flat(2))).toBeLessThan(1e-4);
      expect(fast.forwardPasses).toBeLessThan(naive.forwardPasses);
      // The residual stream downstream depends on H only through the latents: patching all of them at
      // every position restores the clean metric exactly.
      const all = await activationPatching(model, { ...NAME, hook: latents, perPosition: false });
      expect(all.values[0]![0]![0]).toBeCloseTo(1, 4);
      const m = patchingMatrix(fast);
      expect(m.rows).toEqual(['#0', '#5', '#17']);
      expect(m.values[0]!.length).toBe(fast.cleanTokens.length);
      // The spliced SAE is seen by the usual targets too: the clean metric is the spliced model's.
      const r = await activationPatching(model, { ...NAME, target: 'resid_pre' });
      expect(r.cleanMetric).toBeCloseTo(all.cleanMetric, 4);
    });
  });

  it('attribution patching on latents correlates with activation patching', async () => {
    const sae = identitySae(H);
    await withSAEs(model, sae, async () => {
      const indices = Array.from({ length: 24 }, (_, i) => i * 5);
      const opts = { ...NAME, hook: latents, indices };
      const est = await attributionPatching(model, opts);
      const act = await activationPatching(model, opts);
      expect(est.cleanMetric).toBeCloseTo(act.cleanMetric, 4);
      expect(correlation(est.values, act.values)).toBeGreaterThan(0.9);
    });
  });

  it('zero and mean ablation of an identity SAE latents equal ablating the hook', async () => {
    const sae = identitySae(H);
    const batch = [IDS, [...IDS].reverse()];
    const zeroHook = await ablate(model, batch, { target: H, kind: 'zero' });
    const meanHook = await ablate(model, batch, { target: H, kind: 'mean' });
    await withSAEs(model, sae, async () => {
      const zero = await ablate(model, batch, { target: latents, kind: 'zero' });
      const mean = await ablate(model, batch, { target: latents, kind: 'mean' });
      expect(zero.loss).toBeCloseTo(zeroHook.loss, 4);
      expect(zero.ablatedLoss).toBeCloseTo(zeroHook.ablatedLoss, 4);
      expect(mean.ablatedLoss).toBeCloseTo(meanHook.ablatedLoss, 4);
      expect(Math.abs(zero.ablatedLoss - zero.loss)).toBeGreaterThan(0.1);
    });
  });

  it('steering a latent adds its decoder direction', async () => {
    const sae = randomSae(H, 12);
    const j = 7;
    const coef = 4;
    const e = new Float32Array(sae.dSae);
    e[j] = 1;
    const dir = reshape(take(sae.param('W_dec'), 0, indexTensor([j])), [D]); // W_dec[j]
    const prompt = 'Once upon a time';
    await withSAEs(model, sae, async () => {
      const onLatent = await nextTokenLogProbs(model, prompt, [steeringHook(latents, e, coef)]);
      const onOutput = await nextTokenLogProbs(model, prompt, [
        steeringHook(`${H}.hook_sae_output`, dir, coef),
      ]);
      const plain = await nextTokenLogProbs(model, prompt);
      expect(maxAbsDiff(onLatent, onOutput)).toBeLessThan(1e-4);
      expect(maxAbsDiff(onLatent, plain)).toBeGreaterThan(1e-3);
      // And while generating (the KV-cache path): greedy tokens agree.
      const g1 = await model.generate(prompt, {
        maxTokens: 6,
        temperature: 0,
        hooks: [steeringHook(latents, e, coef)],
      });
      const g2 = await model.generate(prompt, {
        maxTokens: 6,
        temperature: 0,
        hooks: [steeringHook(`${H}.hook_sae_output`, dir, coef)],
      });
      expect(g1.tokens).toEqual(g2.tokens);
    });
  });

  it('path patching sees the spliced SAEs', async () => {
    const opts = {
      ...NAME,
      senders: [{ layer: 0, head: 1 }],
      receivers: 'logits' as const,
    };
    const plain = await pathPatching(model, opts);
    const same = await withSAEs(model, identitySae('blocks.1.hook_resid_pre'), () =>
      pathPatching(model, opts),
    );
    expect(same.value).toBeCloseTo(plain.value, 4);
    const sae = randomSae('blocks.3.hook_resid_pre', 13);
    await withSAEs(model, sae, async () => {
      const r = await pathPatching(model, opts);
      const lg = await model.run(NAME.clean).f32();
      const V = model.cfg.vocabSize;
      const last = lg.subarray(lg.length - V);
      expect(r.cleanMetric).toBeCloseTo(last[r.answer!.id]! - last[r.wrong!.id]!, 4);
      expect(Math.abs(r.cleanMetric - plain.cleanMetric)).toBeGreaterThan(1e-3);
    });
  });
});
