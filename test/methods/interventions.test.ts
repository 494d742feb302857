// Interventions are tensor expressions: every hook Sonde's methods install keeps autograd intact. Each hook
// is checked against central finite differences of the hooked forward's loss, with respect to an upstream
// activation and to the values it patches in; the zero steering vector is a regression test.
import '../../src/engine/node.js';
import { describe, expect, it } from 'vitest';
import { add, mul, Rng, sum, Tensor } from '../../src/engine/index.js';
import { HookedTransformer, nextTokenLoss } from '../../src/hooks/hooked-transformer.js';
import type { ForwardHook } from '../../src/hooks/hooks.js';
import { ablationHook } from '../../src/methods/ablation.js';
import { patchHook, patchSelection } from '../../src/methods/patching.js';
import { receiverHook, senderHook } from '../../src/methods/path-patching.js';
import { directionalAblationHook, steeringHook } from '../../src/methods/steering.js';
import { int64 } from '../../src/methods/tokens.js';
import { randnT } from '../engine/gradcheck.js';

const model = HookedTransformer.load();
const CLEAN = 'Once upon a time, there was a little girl named Lily. One day,';
const CORRUPT = 'Once upon a time, there was a little girl named Tim. One day,';
const ids = model.encode(CLEAN);
const tokens = int64([ids]);
const P = ids.length;
const D = model.cfg.dModel;
const UP = 'blocks.0.hook_resid_pre';
const rng = new Rng(13);

/** The loss of the forward with these hooks. */
async function lossWith(hooks: ForwardHook[]): Promise<number> {
  return nextTokenLoss(model.runWithHooks(tokens, { fwd: hooks }), tokens).item();
}

/** Central difference of the loss along t, and autodiff's directional derivative, for a check. */
async function expectMatches(analytic: number, f: (t: number) => Promise<number>, eps = 1e-2) {
  const fd = ((await f(eps)) - (await f(-eps))) / (2 * eps);
  expect(Math.abs(fd)).toBeGreaterThan(1e-4); // the direction matters: a check that can fail
  expect(Math.abs(analytic - fd)).toBeLessThan(2e-2 * Math.abs(fd) + 2e-5);
}

/** d loss / d UP along a random direction: autodiff through the hooks vs finite differences. */
async function checkUpstream(hooks: ForwardHook[]) {
  const dir = randnT([1, P, D], rng);
  const r = model.gradients(tokens, { names: [UP], fwd: hooks });
  const analytic = await sum(mul(r.grads.get(UP), dir)).item();
  const nudge = (t: number): ForwardHook => ({ name: UP, fn: (x) => add(x, mul(dir, t)) });
  await expectMatches(analytic, (t) => lossWith([nudge(t), ...hooks]));
}

/** d loss / d values along a random direction, where the hooks patch `values` into the forward. */
async function checkValues(values: Tensor, hooksOf: (v: Tensor) => ForwardHook[]) {
  const dir = randnT(values.shape, rng);
  const v = values.detach().requireGrad();
  model.gradients(tokens, { names: [UP], fwd: hooksOf(v) });
  expect(v.grad).toBeTruthy();
  const analytic = await sum(mul(v.grad!, dir)).item();
  await expectMatches(analytic, (t) => lossWith(hooksOf(add(values, mul(dir, t)))));
}

/** Row 0 of an activation cached on another prompt, as [1, ...]. */
const cached = (text: string, name: string): Tensor =>
  model.runWithCache(text, { names: [name] }).cache.get(name);

describe('zero steering vector (regression)', () => {
  it('leaves the logits and the gradient at blocks.0.hook_resid_pre unchanged', async () => {
    // Before: the hook returned a new leaf tensor: logits equal, gradient off by |Δg|/|g| = 0.62.
    const zero = steeringHook('blocks.0.hook_attn_out', new Float32Array(D), 1);
    const base = model.gradients(tokens, { names: [UP] });
    const hooked = model.gradients(tokens, { names: [UP], fwd: [zero] });
    const la = await base.logits.f32();
    const lb = await hooked.logits.f32();
    expect(Math.max(...la.map((x, i) => Math.abs(x - lb[i]!)))).toBe(0);
    const a = await base.grads.get(UP).f32();
    const b = await hooked.grads.get(UP).f32();
    let d2 = 0;
    let n2 = 0;
    a.forEach((x, i) => ((d2 += (x - b[i]!) ** 2), (n2 += x * x)));
    expect(n2).toBeGreaterThan(0);
    expect(Math.sqrt(d2 / n2)).toBeLessThan(1e-5);
  });

  it('gradients({fwd}) runs the forward hooks it is given', async () => {
    const v = randnT([D], rng);
    const steer = steeringHook('blocks.1.hook_resid_pre', v, 3);
    const r = model.gradients(tokens, { names: [UP], fwd: [steer] });
    const plain = model.gradients(tokens, { names: [UP] });
    expect(await r.loss.item()).toBeCloseTo(await lossWith([steer]), 5);
    expect(Math.abs((await r.loss.item()) - (await plain.loss.item()))).toBeGreaterThan(1e-3);
  });
});

describe('every method hook is differentiable (finite differences)', () => {
  it('steeringHook: to the activation and to the steering vector', async () => {
    const v = randnT([D], rng);
    await checkUpstream([steeringHook('blocks.1.hook_attn_out', v, 2, { positions: [3, P - 1] })]);
    // (Not 'last': the next-token loss does not read the last position's logits.)
    await checkValues(v, (w) => [steeringHook('blocks.1.hook_resid_pre', w, 2, { positions: [5] })]);
    await checkValues(v, (w) => [steeringHook('blocks.1.hook_resid_pre', w, 0.5)]);
  });

  it('directionalAblationHook', async () => {
    const u = await randnT([D], rng).f32();
    await checkUpstream([directionalAblationHook('blocks.2.hook_resid_pre', u)]);
  });

  it('activation patching (patchHook): resid_pre at a position, one head of z', async () => {
    const resid = 'blocks.2.hook_resid_pre';
    const src = cached(CORRUPT, resid);
    const at = [patchSelection('resid_pre', 3, { component: 0, position: 14 })];
    await checkUpstream([patchHook(resid, src, at)]);
    await checkValues(src, (s) => [patchHook(resid, s, at)]);
    const z = 'blocks.1.attn.hook_z';
    const zSrc = cached(CORRUPT, z);
    const head = [patchSelection('z', 4, { component: 2, position: -1 })];
    await checkUpstream([patchHook(z, zSrc, head)]);
    await checkValues(zSrc, (s) => [patchHook(z, s, head)]);
  });

  it('path patching: senders frozen with the corrupt value, receivers from step 2', async () => {
    const z = 'blocks.0.attn.hook_z';
    const clean = cached(CLEAN, z);
    const corrupt = cached(CORRUPT, z);
    const senders = [[{ layer: 0, head: 1 }]];
    await checkValues(corrupt, (c) => [senderHook(0, clean, c, senders)]);
    await checkValues(clean, (c) => [senderHook(0, c, corrupt, senders)]);
    const v = 'blocks.2.attn.hook_v';
    const step2 = cached(CORRUPT, v);
    await checkUpstream([receiverHook(v, step2, [0])]);
    await checkValues(step2, (s) => [receiverHook(v, s, [0])]);
  });

  it('ablation: zero, and mean (to the activation and to the mean)', async () => {
    const z = 'blocks.1.attn.hook_z';
    await checkUpstream([ablationHook(z, 0, [null, [1, 3], null])]);
    const post = 'blocks.1.mlp.hook_post';
    const mean = cached(CORRUPT, post); // any [1, pos, d_mlp] replacement
    await checkUpstream([ablationHook(post, mean, [null, [0, 5, 7]])]);
    await checkValues(mean, (m) => [ablationHook(post, m, [null, [0, 5, 7]])]);
  });
});
