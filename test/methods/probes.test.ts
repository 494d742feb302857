import '../../src/engine/node.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import {
  checkProbeLabels,
  collectActivations,
  loadProbe,
  probeAccuracy,
  probeScores,
  readLabelledJsonl,
  saveProbe,
  trainProbe,
} from '../../src/methods/probes.js';

const model = HookedTransformer.load();
// 120 template sentences: "... a little girl named Lily." (label 0) / "... a little boy named Tom." (label 1).
const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
const HOOK = 'blocks.2.hook_resid_post';
const X = await collectActivations(model, texts, HOOK, { position: 'last' });

describe('collectActivations', () => {
  it('gives one row per text (last, mean) or per token (all), matching a plain cache', async () => {
    expect([X.rows, X.dim]).toEqual([120, 64]);
    const { cache } = model.runWithCache(texts[3]!, { names: [HOOK] });
    const a = cache.get(HOOK);
    const P = a.shape[1]!;
    const expected = a.f32Sync().subarray((P - 1) * 64, P * 64);
    const row = X.data.subarray(3 * 64, 4 * 64);
    for (let j = 0; j < 64; j++) expect(row[j]).toBeCloseTo(expected[j]!, 5);
    const all = await collectActivations(model, texts.slice(0, 2), HOOK, { position: 'all' });
    expect(all.rows).toBe(model.encode(texts[0]!).length + model.encode(texts[1]!).length);
    expect(all.textIndex.slice(-1)).toEqual([1]);
    const mean = await collectActivations(model, texts.slice(0, 2), HOOK, { position: 'mean' });
    expect(mean.rows).toBe(2);
  });
});

describe('trainProbe on "is the character a girl or a boy" (stories260K)', () => {
  it('a logistic probe at the last token of layer 2 reaches high held-out accuracy; the control is near chance', () => {
    const r = trainProbe(X, labels, { kind: 'logistic', seed: 0, testFraction: 0.25 });
    expect(r.testSize).toBe(30);
    expect(r.trainAcc).toBe(1);
    expect(r.testAcc).toBeGreaterThanOrEqual(0.9); // measured 1.0
    expect(r.controlAcc).toBeLessThan(0.75); // measured 0.5
    expect(r.selectivity).toBeGreaterThan(0.25);
    expect(Math.hypot(...r.direction)).toBeCloseTo(1, 5);
    // Deterministic.
    const again = trainProbe(X, labels, { kind: 'logistic', seed: 0, testFraction: 0.25 });
    expect(Array.from(again.weights)).toEqual(Array.from(r.weights));
  });

  it('generalizes to names it never saw (held-out names) and a linear probe works too', () => {
    const unseenNames = texts.map((_, i) => i).filter((i) => i >= 96); // the last two girl/boy names
    const r = trainProbe(X, labels, { seed: 0, testIndices: unseenNames });
    expect(r.testAcc).toBeGreaterThanOrEqual(0.9); // measured 1.0
    const lin = trainProbe(X, labels, { kind: 'linear', seed: 0 });
    expect(lin.testAcc).toBeGreaterThanOrEqual(0.9); // measured 0.97
    const s = probeScores(lin, X);
    expect(s.length).toBe(120);
  });

  it('refuses data with one label or a single text of a label, naming the counts', async () => {
    const boys = labels.flatMap((l, i) => (l === 1 ? [i] : []));
    const girls = labels.flatMap((l, i) => (l === 0 ? [i] : []));
    const subset = async (rows: number[]) => {
      const Xs = await collectActivations(
        model,
        rows.map((i) => texts[i]!),
        HOOK,
      );
      return { Xs, ys: rows.map((i) => labels[i]!) };
    };
    // Before, 5 boy texts trained and reported held-out accuracy 1.00.
    const one = await subset(boys.slice(0, 5));
    expect(() => trainProbe(one.Xs, one.ys)).toThrow(
      'probe data has 0 texts with label 0 (and 5 with label 1): a probe needs at least 2 texts of each label',
    );
    expect(() => checkProbeLabels([0, 1, 1, 1], "data file 'x.jsonl'")).toThrow(
      /^data file 'x.jsonl' has 1 text with label 0 \(and 3 with label 1\)/,
    );
    expect(() => checkProbeLabels([0, 0, 1, 1])).not.toThrow();
    // Four texts train, with one held-out text of each label and a warning that says how coarse that is.
    const four = await subset([girls[0]!, girls[1]!, boys[0]!, boys[1]!]);
    const r = trainProbe(four.Xs, four.ys, { seed: 0 });
    expect([r.trainSize, r.testSize]).toEqual([2, 2]);
    expect(r.warnings).toEqual([
      'the held-out set has only 2 texts, so its accuracy moves in steps of 0.5: use at least 20 held-out texts (more data or a larger test fraction) to trust it',
    ]);
    expect(trainProbe(X, labels, { seed: 0 }).warnings).toEqual([]);
    expect(() => trainProbe(X, labels, { testFraction: 0 })).toThrow(/test fraction must be between 0 and 1/);
  });

  it('holds out whole texts, stratified by label (every-token rows of a text never straddle the split)', async () => {
    const some = [0, 1, 2, 3, 4, 5, 6, 7];
    const all = await collectActivations(
      model,
      some.map((i) => texts[i]!),
      HOOK,
      { position: 'all' },
    );
    const y = all.textIndex.map((t) => labels[some[t]!]!);
    const r = trainProbe(all, y, { seed: 0, testFraction: 0.25, epochs: 20 });
    // 4 texts per label, one of each held out, with all their rows (before: rows drawn at random).
    const heldTexts = new Set(r.testRows.map((i) => all.textIndex[i]!));
    expect([...heldTexts].map((t) => labels[some[t]!]).sort()).toEqual([0, 1]);
    expect(r.testRows).toEqual(all.textIndex.flatMap((t, i) => (heldTexts.has(t) ? [i] : [])));
    expect(r.testSize + r.trainSize).toBe(all.rows);
  });

  it('saves and loads a probe file atomically, with the same scores', () => {
    const r = trainProbe(X, labels, { seed: 0 });
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-probe-'));
    const file = path.join(dir, 'p.json');
    saveProbe(file, { ...r, hook: HOOK, position: 'last', labels: ['girl', 'boy'] });
    expect(fs.readdirSync(dir)).toEqual(['p.json']);
    const p = loadProbe(file);
    expect(p.hook).toBe(HOOK);
    expect(p.labels).toEqual(['girl', 'boy']);
    expect(probeAccuracy(p, X, labels)).toBe(probeAccuracy(r, X, labels));
    fs.writeFileSync(file, '{"format":"other"}');
    expect(() => loadProbe(file)).toThrow(UsageError);
    expect(() => loadProbe(path.join(dir, 'missing.json'))).toThrow(/not found/);
  });
});
