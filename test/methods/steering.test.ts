import '../../src/engine/node.js';
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import {
  collectActivations,
  probeAccuracy,
  readLabelledJsonl,
  trainProbe,
} from '../../src/methods/probes.js';
import {
  differenceOfMeans,
  directionalAblationHook,
  nextTokenLogProbs,
  steeredGeneration,
  steeringHook,
} from '../../src/methods/steering.js';
import { singleToken } from '../../src/methods/tokens.js';

const model = HookedTransformer.load();
const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
const boys = texts.filter((_, i) => labels[i] === 1);
const girls = texts.filter((_, i) => labels[i] === 0);
const HOOK = 'blocks.2.hook_resid_post';
const dm = await differenceOfMeans(model, boys, girls, HOOK); // girl → boy
const he = singleToken(model, ' he');
const she = singleToken(model, ' she');
const GIRL = 'Once upon a time, there was a little girl named Lily. One day,';
const BOY = 'Once upon a time, there was a little boy named Tom. One day,';
/** log P(" he") - log P(" she") for the next token. */
const heVsShe = async (prompt: string, hooks = [] as ReturnType<typeof steeringHook>[]) => {
  const lp = await nextTokenLogProbs(model, prompt, hooks);
  return lp[he]! - lp[she]!;
};

describe('differenceOfMeans and steering', () => {
  it('is mean(A) - mean(B) with its norm and unit direction', () => {
    expect(dm.vector).toHaveLength(64);
    expect(dm.norm).toBeCloseTo(Math.hypot(...dm.vector), 5);
    expect(Math.hypot(...dm.direction)).toBeCloseTo(1, 5);
  });

  it('adding the girl→boy vector moves the next token from " she" towards " he", more with a larger coefficient', async () => {
    const d = await Promise.all(
      [0, 1, 2].map((c) => heVsShe(GIRL, c ? [steeringHook(HOOK, dm.vector, c)] : [])),
    );
    // Measured: -6.20, -5.08, -3.89 (nats).
    expect(d[1]! - d[0]!).toBeGreaterThan(0.5);
    expect(d[2]! - d[1]!).toBeGreaterThan(0.5);
    // The opposite sign moves the other way.
    expect(await heVsShe(GIRL, [steeringHook(HOOK, dm.vector, -2)])).toBeLessThan(d[0]! - 0.5);
    // Coefficient 0 is a no-op.
    expect(await heVsShe(GIRL, [steeringHook(HOOK, dm.vector, 0)])).toBeCloseTo(d[0]!, 4);
  });

  it('steeredGeneration samples the same way with and without the hooks', async () => {
    const g = await steeredGeneration(
      model,
      GIRL,
      [
        steeringHook(
          'blocks.3.hook_resid_post',
          (await differenceOfMeans(model, boys, girls, 'blocks.3.hook_resid_post')).vector,
          1,
        ),
      ],
      {
        maxTokens: 12,
        temperature: 0,
      },
    );
    expect(g.unsteered.text).toBe((await model.generate(GIRL, { maxTokens: 12, temperature: 0 })).text);
    // Measured: unsteered "One day, Lily went to the park", steered "One day, she went to the park".
    expect(g.unsteered.text.slice(GIRL.length)).toMatch(/^ Lily/);
    expect(g.steered.text.slice(GIRL.length)).toMatch(/^ she/);
  });
});

describe('directional ablation', () => {
  it('projects the direction out: the activation has no component along it', () => {
    let seen = 0;
    model.runWithHooks(GIRL, {
      fwd: [
        directionalAblationHook(HOOK, dm.direction),
        {
          name: HOOK,
          fn: (x) => {
            const a = x.f32Sync();
            for (let r = 0; r < a.length / 64; r++) {
              let dot = 0;
              for (let j = 0; j < 64; j++) dot += a[r * 64 + j]! * dm.direction[j]!;
              expect(Math.abs(dot)).toBeLessThan(1e-4);
              seen++;
            }
          },
        },
      ],
    });
    expect(seen).toBe(model.encode(GIRL).length);
  });

  it('brings the probe to chance and shrinks the boy-vs-girl effect on " he"/" she"', async () => {
    const X = await collectActivations(model, texts, HOOK);
    const probe = trainProbe(X, labels, { seed: 0 });
    expect(probe.testAcc).toBeGreaterThanOrEqual(0.9);
    const ablate = directionalAblationHook(HOOK, dm.direction);
    const Xa = await collectActivations(model, texts, HOOK, { hooks: [ablate] });
    const after = probeAccuracy(probe, Xa, labels);
    expect(after).toBeLessThan(0.65); // measured 0.49 (1.0 before)
    // The effect of the character's gender on log P(he)/P(she), with and without the ablation.
    const effect = (await heVsShe(BOY)) - (await heVsShe(GIRL));
    const effectAblated = (await heVsShe(BOY, [ablate])) - (await heVsShe(GIRL, [ablate]));
    expect(effect).toBeGreaterThan(3);
    expect(effectAblated).toBeLessThan(effect * 0.8);
  });
});
