import '../../src/engine/node.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HookedTransformer, repeatedTokens, UsageError } from '../../src/index.js';
import { ablate, ablateHeads, repeatLosses } from '../../src/methods/ablation.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const induction = HookedTransformer.load(path.join(ROOT, 'test/fixtures/induction-2l'));
const stories = HookedTransformer.load();
const T = 20;
const x = repeatedTokens(induction, T, 8, 0);
const dataset = repeatedTokens(induction, T, 16, 1);

describe('ablation on the induction organism', () => {
  // Measured second-repeat loss (base 2.72, first repeat 7.14), per head [L0H0..3], [L1H0..3]:
  //   zero: [3.30 4.48 3.64 2.84] [2.66 3.25 3.52 2.33]
  //   mean: [3.16 4.56 3.71 2.92] [3.31 3.32 3.46 3.06]
  //   resample: [3.57 5.60 4.82 3.20] [3.37 3.56 3.74 3.15]
  // The four induction heads are redundant, so one alone costs ~0.3-0.8 nats; the previous-token heads
  // L0H1/L0H2 (which every induction head needs) cost the most.
  it('mean-ablating an induction head costs more than a non-previous-token layer-0 head', async () => {
    const s = await ablateHeads(induction, x, { kind: 'mean', dataset });
    const base = repeatLosses(s.lossByPosition, T);
    expect(base.first - base.second).toBeGreaterThan(3);
    const second = s.ablatedLossByPosition.map((l) => l.map((h) => repeatLosses(h, T).second));
    const induct = Math.max(...second[1]!);
    expect(induct - base.second).toBeGreaterThan(0.5);
    expect(induct).toBeGreaterThan(second[0]![0]! + 0.2);
    expect(induct).toBeGreaterThan(second[0]![3]! + 0.4);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(mean(second[1]!) - base.second).toBeGreaterThan(
      1.5 * (mean([second[0]![0]!, second[0]![3]!]) - base.second),
    );
  });

  it('ablating all four layer-1 heads brings second-repeat loss to the first repeat (zero, mean, resample)', async () => {
    for (const kind of ['zero', 'mean', 'resample'] as const) {
      const r = await ablate(induction, x, { kind, target: 'head', layer: 1, head: [0, 1, 2, 3], dataset });
      const base = repeatLosses(r.lossByPosition, T);
      const abl = repeatLosses(r.ablatedLossByPosition, T);
      expect(abl.second).toBeGreaterThan(base.second + 3);
      expect(abl.second).toBeGreaterThan(0.9 * abl.first);
    }
  });

  it('exact cases: zero-ablating a whole hook, and resampling from the same input change nothing', async () => {
    const r = await ablate(induction, x, {
      kind: 'resample',
      target: 'blocks.0.hook_attn_out',
      resampleFrom: x,
    });
    expect(r.ablatedLoss).toBeCloseTo(r.loss, 5);
    const m = await ablate(induction, [x.toArraySync().slice(0, 41) as number[]], {
      kind: 'mean',
      target: 'head',
      layer: 1,
      head: 2,
    });
    // Mean over a one-row dataset at every position = the activation itself.
    expect(m.ablatedLoss).toBeCloseTo(m.loss, 5);
    const n = await ablate(stories, 'Once upon a time, there was a little girl', {
      target: 'neuron',
      layer: 0,
      neuron: [0, 5],
    });
    expect(Number.isFinite(n.ablatedLoss)).toBe(true);
    expect(n.ablatedLoss).not.toBe(n.loss);
  });

  it('errors', async () => {
    await expect(ablate(induction, x, { target: 'head', layer: 1 })).rejects.toThrow(UsageError);
    await expect(ablate(induction, x, { target: 'neuron', layer: 0, neuron: 1 })).rejects.toThrow(
      /attention-only/,
    );
    await expect(ablate(induction, x, { target: 'blocks.9.hook_z' })).rejects.toThrow(/unknown hook point/);
  });
});
