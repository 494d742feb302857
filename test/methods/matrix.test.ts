// Every method on every fixture architecture (issue 13, item 5), each with an invariant that holds by
// construction: a method that re-derives a model's maths instead of taking it from the models layer shows up
// here as the architecture where the invariant breaks.
//
// Calls are awaited whether or not the method is asynchronous yet (methods are becoming async one by one).
// Entries that run H1's methods (patching, path patching, attribution, ablation, steering) are marked [H1]:
// their signatures may change when that branch merges.
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { add, mul, sub } from '../../src/engine/ops/elementwise.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { gather, reshape, slice } from '../../src/engine/ops/shape.js';
import { logSoftmax } from '../../src/engine/ops/nn.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { ablate } from '../../src/methods/ablation.js';
import { attributionPatching } from '../../src/methods/attribution.js';
import { applyFinalNorm, residualDecomposition } from '../../src/methods/decompose.js';
import { directLogitAttribution } from '../../src/methods/dla.js';
import { logitLens } from '../../src/methods/lens.js';
import { pathPatching, pathPatchingSweep } from '../../src/methods/path-patching.js';
import { activationPatching } from '../../src/methods/patching.js';
import { steeringHook } from '../../src/methods/steering.js';
import { createTunedLens } from '../../src/methods/tuned-lens.js';
import { unembed } from '../../src/models/transformer.js';
import { identitySae, standardSae } from '../helpers/sae.js';
import { ARCHITECTURE_FIXTURES, fixtureDir } from '../helpers/fixtures.js';

/** Fixture folders (one per architecture variant), the attention-only induction organism, and stories260K. */
const ARCHS = [...ARCHITECTURE_FIXTURES, 'induction-2l', 'stories260K'];
const dirOf = fixtureDir;

const CLEAN = [3, 17, 42, 8, 60, 5, 91, 23, 11, 77, 2, 40];
const DIFF = 4;
const CORRUPT = CLEAN.map((t, i) => (i === DIFF ? 61 : t));
const ANSWER = 7;
const WRONG = 9;

/** Known failures: the test is kept and expected to fail until the bug named here is fixed. */
const KNOWN: Record<string, Partial<Record<string, string>>> = {
  processWeights: {},
  qkFix: {},
};
const known = (method: string, arch: string): string | undefined => KNOWN[method]?.[arch];

function maxAbs(a: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]!));
  return m;
}
/** max |a - b| / max(1, max |b|). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  expect(a.length).toBe(b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m / Math.max(1, maxAbs(b));
}

describe.each(ARCHS)('%s', (name) => {
  const model = HookedTransformer.load(dirOf(name), { compile: 'never' });
  const { nLayers: L, dModel: d } = model.cfg;
  const tokens = Tensor.from([CLEAN], undefined, 'int64');
  const logits = model.run(tokens);
  const cleanMetric = async () => {
    const lg = await logits.f32();
    const V = model.cfg.vocabSize;
    const row = lg.subarray((CLEAN.length - 1) * V);
    return row[ANSWER]! - row[WRONG]!;
  };
  const itKnown = (method: string, title: string, fn: () => Promise<void>) => {
    const why = known(method, name);
    if (why) it.fails(`${title} [known bug: ${why}]`, fn);
    else it(title, fn);
  };

  itKnown('processWeights', 'processWeights leaves the log-probabilities unchanged', async () => {
    const folded = HookedTransformer.load(dirOf(name), { compile: 'never', processWeights: true });
    const want = await logSoftmax(logits).f32();
    const got = await logSoftmax(folded.run(tokens)).f32();
    expect(relErr(got, want)).toBeLessThan(1e-4);
  });

  it("logit lens: the last layer is the model's logits", async () => {
    const r = await logitLens(model, [CLEAN], { topK: 1 });
    const all = await r.logits.f32();
    const want = await logits.f32();
    expect(relErr(all.subarray(all.length - want.length), want)).toBeLessThan(1e-5);
    // The top token read off the last layer is the model's argmax at the last position.
    const lastRow = Array.from(want.subarray(want.length - model.cfg.vocabSize));
    const top = r.top.at(-1)!.at(-1)![0]!;
    expect(top.id).toBe(lastRow.indexOf(Math.max(...lastRow)));
    expect(top.logit).toBeCloseTo(Math.max(...lastRow), 4);
  });

  it('tuned lens: an untrained (identity) translator is the logit lens', async () => {
    const plain = await logitLens(model, [CLEAN], { topK: 1 });
    const tuned = await logitLens(model, [CLEAN], { topK: 1, tunedLens: createTunedLens(model) });
    expect(relErr(await tuned.logits.f32(), await plain.logits.f32())).toBeLessThan(1e-5);
  });

  it('residual decomposition: the components sum to the final residual', async () => {
    const r = await residualDecomposition(model, [CLEAN]);
    expect(r.maxError / maxAbs(r.residual)).toBeLessThan(1e-5);
  });

  it('DLA: the contributions sum to the logit difference', async () => {
    const r = await directLogitAttribution(model, [CLEAN], { answer: ANSWER, wrong: WRONG });
    expect(r.logitDiff).toBeCloseTo(await cleanMetric(), model.cfg.finalSoftcap ? -1 : 4);
    expect(r.error).toBeLessThan(1e-4 * Math.max(1, Math.abs(r.logitDiff)));
  });

  // Clean and corrupt differ only at position DIFF: before it every activation agrees (causal attention), and
  // so do layer 0's residual and the q, k, v made from it at every other position (not z, which attends to
  // DIFF). Patching where they agree must change nothing, exactly.
  const agree = (target: string, layer: number, pos: number) =>
    pos < DIFF || (layer === 0 && pos !== DIFF && target !== 'z' && target !== 'attn_out');
  const denoise = { clean: CLEAN, corrupt: CORRUPT, answer: ANSWER, wrong: WRONG };

  it('[H1] activation patching: where clean and corrupt agree nothing changes; all of resid_pre restores clean', async () => {
    const m = await cleanMetric();
    for (const target of ['resid_pre', 'attn_out', 'z', 'q', 'k', 'v'] as const) {
      if (target === 'attn_out' && model.cfg.attnOnly) continue;
      const r = await activationPatching(model, { ...denoise, target, perPosition: true });
      expect(r.cleanMetric).toBeCloseTo(m, 4);
      r.raw.forEach((layer, l) =>
        layer.forEach((row) =>
          row.forEach((x, p) => {
            if (agree(target, l, p)) expect(x, `${target} L${l} pos ${p}`).toBeCloseTo(r.corruptMetric, 4);
          }),
        ),
      );
    }
    const all = await activationPatching(model, { ...denoise, target: 'resid_pre', perPosition: false });
    for (const layer of all.raw) expect(layer[0]![0]!).toBeCloseTo(all.cleanMetric, 4);
  });

  it('[H1] path patching: last-layer heads into the logits = patching their hook_z when no MLP reads them', async () => {
    const senders = Array.from({ length: model.cfg.nHeads }, (_, head) => ({ layer: L - 1, head }));
    const p = await pathPatching(model, { ...denoise, senders, receivers: 'logits' });
    expect(p.cleanMetric).toBeCloseTo(await cleanMetric(), 4);
    const a = await activationPatching(model, {
      ...denoise,
      hook: `blocks.${L - 1}.attn.hook_z`,
      perPosition: false,
      direction: 'noise',
    });
    // Attention-only and parallel blocks: nothing after the last heads reads them but the unembedding, so
    // their direct effect is their whole effect. Elsewhere the last MLP reads them and the two differ.
    if (model.cfg.attnOnly || model.cfg.parallelAttnMlp)
      expect(p.patchedMetric).toBeCloseTo(a.raw[0]![0]![0]!, 4);
    // Senders in the layer before the receivers, with the receivers' q, k or v patched: a sweep's NaN layout.
    if (L >= 2)
      for (const receiverInput of ['q', 'k', 'v'] as const) {
        const r = await pathPatchingSweep(model, {
          ...denoise,
          receivers: [{ layer: L - 1, head: 0 }],
          receiverInput,
        });
        expect(
          r.values
            .slice(0, L - 1)
            .flat()
            .every(Number.isFinite),
        ).toBe(true);
      }
  });

  it('[H1] attribution patching (QK fix on q and k): where clean and corrupt agree the estimate is no change', async () => {
    for (const target of ['resid_pre', 'z', 'q', 'k', 'v'] as const) {
      const r = await attributionPatching(model, { ...denoise, target, perPosition: true });
      if (target === 'q' || target === 'k') expect(r.qkFixed).toBe(true);
      r.raw.forEach((layer, l) =>
        layer.forEach((row) =>
          row.forEach((x, p) => {
            if (agree(target, l, p)) expect(x, `${target} L${l} pos ${p}`).toBeCloseTo(r.corruptMetric, 4);
          }),
        ),
      );
    }
  });

  itKnown(
    'qkFix',
    "[H1] attribution patching, QK fix on q and k: grad(pattern) · (the patched run's pattern - the base pattern)",
    async () => {
      // The reference patches hook_q (one head) or hook_k (one KV head: its whole query group) in a real forward
      // and reads the pattern the model computes, so it has the model's own attention maths (scale, soft-cap,
      // sliding window, grouped-query heads); the QK fix must agree with it.
      const P = CLEAN.length;
      const V = model.cfg.vocabSize;
      const head = 0;
      const corrupt = Tensor.from([CORRUPT], undefined, 'int64');
      const pick = Tensor.from([ANSWER, WRONG], [2], 'int64');
      const logitDiff = (lg: Tensor) => {
        const two = gather(reshape(slice(lg, 1, P - 1, P), [V]), 0, pick);
        return sum(mul(two, Tensor.from([1, -1], [2])));
      };
      for (const target of ['q', 'k'] as const) {
        const r = await attributionPatching(model, { ...denoise, target, perPosition: true });
        expect(r.qkFixed).toBe(true);
        const C = target === 'q' ? model.cfg.nHeads : model.cfg.nKvHeads;
        for (let l = 0; l < L; l++) {
          const name = `blocks.${l}.attn.hook_${target}`;
          const patName = `blocks.${l}.attn.hook_pattern`;
          const { grads, cache } = model.gradients(corrupt, { names: [patName], loss: logitDiff });
          const g = await grads.get(patName).f32();
          const base = await cache.get(patName).f32();
          const clean = model.runWithCache(tokens, { names: [name] }).cache.get(name);
          for (let p = 0; p < P; p++) {
            const mask = new Float32Array(P * C);
            mask[p * C + head] = 1;
            const m = Tensor.from(mask, [1, P, C, 1]);
            let pattern: Tensor | null = null;
            model.runWithHooks(corrupt, {
              fwd: [
                { name, fn: (x) => add(x, mul(m, sub(clean, x))) },
                { name: patName, fn: (x) => void (pattern = x) },
              ],
            });
            const patched = await pattern!.f32();
            let want = 0;
            for (let i = 0; i < g.length; i++) want += g[i]! * (patched[i]! - base[i]!);
            const got = r.raw[l]![head]![p]! - r.corruptMetric;
            expect(got, `${target} L${l} head ${head} pos ${p}`).toBeCloseTo(want, 4);
          }
        }
      }
    },
  );

  it('[H1] ablation: mean-ablating over the input itself changes nothing', async () => {
    for (const opts of [{ target: 'head', layer: L - 1, head: 0 }, { target: 'blocks.0.hook_resid_post' }]) {
      const r = await ablate(model, [CLEAN], { kind: 'mean', ...opts });
      expect(r.ablatedLoss).toBeCloseTo(r.loss, 5);
    }
  });

  it('[H1] steering: a zero vector changes nothing; at the last residual, the logits of the steered residual', async () => {
    const hook = `blocks.${L - 1}.hook_resid_post`;
    const zero = model.runWithHooks(tokens, { fwd: [steeringHook(hook, new Float32Array(d), 3)] });
    expect(relErr(await zero.f32(), await logits.f32())).toBeLessThan(1e-6);
    const v = Float32Array.from({ length: d }, (_, i) => Math.sin(i + 1));
    const steered = model.runWithHooks(tokens, { fwd: [steeringHook(hook, v, 2)] });
    const { cache } = model.runWithCache(tokens, { names: [hook] });
    const moved = add(cache.get(hook), mul(Tensor.from(v, [d]), 2));
    const want = unembed(model.cfg, model.weights, applyFinalNorm(model, moved));
    expect(relErr(await steered.f32(), await want.f32())).toBeLessThan(1e-5);
  });

  it('SAE splice: an identity SAE, and any SAE with the error term, leave the logits unchanged', async () => {
    const want = await logits.f32();
    const hook = `blocks.${L - 1}.hook_resid_pre`;
    model.addSAE(identitySae(hook, d));
    try {
      expect(relErr(await model.run(tokens).f32(), want)).toBeLessThan(1e-5);
    } finally {
      model.resetSAEs();
    }
    const enc = Float32Array.from({ length: d * 2 * d }, (_, i) => Math.cos(i));
    const lossy = standardSae(hook, enc, new Float32Array(2 * d * d).fill(0.01), 2 * d); // a poor reconstruction
    model.addSAE(lossy, { useErrorTerm: true });
    try {
      expect(relErr(await model.run(tokens).f32(), want)).toBeLessThan(1e-5);
    } finally {
      model.resetSAEs();
    }
  });
});
