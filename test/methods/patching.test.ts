import '../../src/engine/node.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HookError, HookedTransformer, ShapeError, UsageError, type Tensor } from '../../src/index.js';
import { Rng } from '../../src/engine/random.js';
import {
  activationPatching,
  patchingMatrix,
  type PatchingOptions,
  type PatchTarget,
} from '../../src/methods/patching.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const stories = HookedTransformer.load();
const induction = HookedTransformer.load(path.join(ROOT, 'test/fixtures/induction-2l'));

// One token differs (position 14: " Lily" / " Tim"); the model answers with the name it was told.
const CLEAN = 'Once upon a time, there was a little girl named Lily. One day,';
const CORRUPT = 'Once upon a time, there was a little girl named Tim. One day,';
const NAME_POS = 14;
const NAME: Pick<PatchingOptions, 'clean' | 'corrupt' | 'answer' | 'wrong'> = {
  clean: CLEAN,
  corrupt: CORRUPT,
  answer: 'Lily',
  wrong: 'Tim',
};

function maxAbsDiff(a: number[][][], b: number[][][]): number {
  const fa = a.flat(2);
  const fb = b.flat(2);
  expect(fa.length).toBe(fb.length);
  return Math.max(...fa.map((x, i) => Math.abs(x - fb[i]!)));
}

/** [BOS, r, r] and [BOS, r, r'] with r, r' random ids in 259..511 (no byte-fallback pieces). */
function repeatedPair(seed: number, T: number): { clean: number[]; corrupt: number[] } {
  const rng = new Rng(seed);
  const rand = () => Array.from({ length: T }, () => 259 + rng.int(253));
  const r = rand();
  const r2 = rand();
  return { clean: [1, ...r, ...r], corrupt: [1, ...r, ...r2] };
}

/** Mean log-probability of the clean sequence's next token over the second repeat: in-context copying. */
function copyingMetric(clean: number[], T: number, V: number): (logits: Tensor) => number {
  return (logits) => {
    const d = logits.f32Sync();
    let total = 0;
    for (let i = T + 1; i < 2 * T; i++) {
      const row = d.subarray(i * V, (i + 1) * V);
      let m = -Infinity;
      for (const x of row) m = Math.max(m, x);
      let s = 0;
      for (const x of row) s += Math.exp(x - m);
      total += row[clean[i + 1]!]! - m - Math.log(s);
    }
    return total / (T - 1);
  };
}

describe('activationPatching: the batched sweep equals one forward pass per patch', () => {
  const cases: [PatchTarget, boolean, 'denoise' | 'noise'][] = [
    ['resid_pre', true, 'denoise'],
    ['resid_pre', true, 'noise'],
    ['attn_out', true, 'denoise'],
    ['mlp_out', true, 'noise'],
    ['z', false, 'noise'],
    ['z', true, 'denoise'],
    ['q', false, 'denoise'],
    ['k', true, 'noise'],
    ['v', false, 'denoise'],
    ['pattern', true, 'noise'],
    ['pattern', false, 'denoise'],
  ];
  it.each(cases)('stories260K: %s, per position %s, %s', async (target, perPosition, direction) => {
    // batchSize 7 leaves a partial last batch in every layer.
    const opts = { ...NAME, target, perPosition, direction, batchSize: 7 };
    const fast = await activationPatching(stories, opts);
    const naive = await activationPatching(stories, { ...opts, naive: true });
    expect(fast.runs).toBe(naive.runs);
    expect(fast.forwardPasses).toBeLessThan(naive.forwardPasses);
    expect(maxAbsDiff(fast.values, naive.values)).toBeLessThan(1e-4);
    expect(maxAbsDiff(fast.raw, naive.raw)).toBeLessThan(1e-4);
  });

  it.each([
    ['resid_pre', true],
    ['attn_out', true],
    ['z', true],
    ['pattern', false],
    ['v', true],
  ] as [PatchTarget, boolean][])('induction-2l: %s, per position %s', async (target, perPosition) => {
    const { clean, corrupt } = repeatedPair(5, 8);
    const opts = { clean, corrupt, metric: copyingMetric(clean, 8, 512), target, perPosition };
    const fast = await activationPatching(induction, { ...opts, direction: 'noise' });
    const naive = await activationPatching(induction, { ...opts, direction: 'noise', naive: true });
    expect(maxAbsDiff(fast.values, naive.values)).toBeLessThan(1e-4);
  });
});

const denoise = await activationPatching(stories, NAME);
describe('activationPatching: exact cases and the name-swap pair on stories260K', () => {
  it('reports the grid, the clean and corrupt metrics and single-token answers', async () => {
    expect(denoise.answer?.token).toBe(' Lily');
    expect(denoise.wrong?.token).toBe(' Tim');
    expect(denoise.values.length).toBe(stories.cfg.nLayers);
    expect(denoise.values[0]![0]!.length).toBe(denoise.cleanTokens.length);
    expect(denoise.cleanMetric).toBeGreaterThan(denoise.corruptMetric + 2);
    const diff = denoise.cleanTokens.flatMap((t, i) => (t !== denoise.corruptTokens[i] ? [i] : []));
    expect(diff).toEqual([NAME_POS]);
  });

  it('layer 0: the differing position restores exactly 1, every other position does nothing', async () => {
    const l0 = denoise.values[0]![0]!;
    l0.forEach((v, p) => expect(v).toBeCloseTo(p === NAME_POS ? 1 : 0, 5));
    const noised = (await activationPatching(stories, { ...NAME, direction: 'noise' })).values[0]![0]!;
    noised.forEach((v, p) => expect(v).toBeCloseTo(p === NAME_POS ? 0 : 1, 5));
  });

  it('patching all positions at any layer restores the clean run (denoise 1) or the corrupt one (noise 0)', async () => {
    const all = await activationPatching(stories, { ...NAME, perPosition: false });
    for (const l of all.values) expect(l[0]![0]).toBeCloseTo(1, 4);
    const noised = await activationPatching(stories, { ...NAME, perPosition: false, direction: 'noise' });
    for (const l of noised.values) expect(l[0]![0]).toBeCloseTo(0, 4);
  });

  it('the name is moved from its own position (early layers) to the final position (late layers)', async () => {
    const L = stories.cfg.nLayers;
    const P = denoise.cleanTokens.length;
    const argmax = (xs: number[]) => xs.indexOf(Math.max(...xs));
    expect(argmax(denoise.values[0]![0]!)).toBe(NAME_POS);
    expect(argmax(denoise.values[1]![0]!)).toBe(NAME_POS);
    expect(argmax(denoise.values[L - 1]![0]!)).toBe(P - 1);
    expect(denoise.values[L - 1]![0]![P - 1]).toBeGreaterThan(0.5);
    // Positions other than the name and those after it carry nothing, in every layer.
    for (const l of denoise.values)
      for (let p = 0; p < NAME_POS; p++) expect(Math.abs(l[0]![p]!)).toBeLessThan(1e-4);
    const m = patchingMatrix(denoise);
    expect(m.rows).toEqual(['L0', 'L1', 'L2', 'L3', 'L4']);
    expect(m.columns.length).toBe(P);
    expect(m.raw).toEqual(denoise.raw.map((l) => l[0]));
  });
});

describe('activationPatching: the induction organism', () => {
  it('noising a layer-1 induction head hurts in-context copying far more than a layer-0 head', async () => {
    const T = 20;
    const seeds = [0, 1, 2, 3];
    const H = induction.cfg.nHeads;
    const effect = [new Array<number>(H).fill(0), new Array<number>(H).fill(0)];
    for (const seed of seeds) {
      const { clean, corrupt } = repeatedPair(seed, T);
      const r = await activationPatching(induction, {
        clean,
        corrupt,
        metric: copyingMetric(clean, T, induction.cfg.vocabSize),
        target: 'z',
        direction: 'noise',
      });
      expect(r.values.length).toBe(2);
      // The second repeat is copied on clean and not on corrupt.
      expect(r.cleanMetric - r.corruptMetric).toBeGreaterThan(3);
      r.values.forEach((l, li) => l.forEach((c, h) => (effect[li]![h]! += (1 - c[0]!) / seeds.length)));
    }
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(Math.min(...effect[1]!)).toBeGreaterThan(0.1);
    expect(Math.min(...effect[1]!)).toBeGreaterThan(1.5 * Math.max(...effect[0]!));
    expect(mean(effect[1]!)).toBeGreaterThan(3 * mean(effect[0]!));

    // All of layer 1's attention together carries the copying: noising it destroys it.
    const { clean, corrupt } = repeatedPair(0, T);
    const whole = await activationPatching(induction, {
      clean,
      corrupt,
      metric: copyingMetric(clean, T, induction.cfg.vocabSize),
      target: 'attn_out',
      perPosition: false,
      direction: 'noise',
    });
    expect(whole.values[1]![0]![0]).toBeLessThan(0.2);
  });
});

describe('activationPatching: errors', () => {
  it('prompts of different token lengths: both lengths and tokens', async () => {
    const run = () =>
      activationPatching(stories, { ...NAME, corrupt: 'Once upon a time, there was a girl named Mia.' });
    await expect(run()).rejects.toThrow(ShapeError);
    await expect(run()).rejects.toThrow(/clean has 19 .*" Lily".*corrupt has \d+ .*" M"/);
  });

  it('an answer that is not a single token says what it tokenizes to', async () => {
    const run = () => activationPatching(stories, { ...NAME, answer: 'Mia' });
    await expect(run()).rejects.toThrow(UsageError);
    await expect(run()).rejects.toThrow('answer "Mia" is 3 tokens, not one: " M"');
    // A vocabulary entry's exact string is accepted, and ids are.
    expect(
      (await activationPatching(stories, { ...NAME, answer: ' Lily', wrong: 326, perPosition: false })).answer
        ?.id,
    ).toBe(317);
  });

  it('unknown targets, mlp_out on an attention-only model, missing metric', async () => {
    await expect(
      activationPatching(stories, { ...NAME, target: 'resid_mid' as PatchTarget }),
    ).rejects.toThrow(/unknown patching target 'resid_mid'; use one of resid_pre/);
    await expect(
      activationPatching(stories, { ...NAME, target: 'resid_mid' as PatchTarget }),
    ).rejects.toThrow(HookError);
    const { clean, corrupt } = repeatedPair(0, 4);
    await expect(
      activationPatching(induction, { clean, corrupt, answer: 300, wrong: 301, target: 'mlp_out' }),
    ).rejects.toThrow(/attention-only/);
    await expect(activationPatching(stories, { clean: CLEAN, corrupt: CORRUPT })).rejects.toThrow(UsageError);
    await expect(activationPatching(stories, { ...NAME, corrupt: CLEAN })).rejects.toThrow(
      /the same on the clean and the corrupt/,
    );
  });
});
