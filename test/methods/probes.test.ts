import '../../src/engine/node.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import {
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
const X = collectActivations(model, texts, HOOK, { position: 'last' });

describe('collectActivations', () => {
  it('gives one row per text (last, mean) or per token (all), matching a plain cache', () => {
    expect([X.rows, X.dim]).toEqual([120, 64]);
    const { cache } = model.runWithCache(texts[3]!, { names: [HOOK] });
    const a = cache.get(HOOK);
    const P = a.shape[1]!;
    const expected = a.f32().subarray((P - 1) * 64, P * 64);
    const row = X.data.subarray(3 * 64, 4 * 64);
    for (let j = 0; j < 64; j++) expect(row[j]).toBeCloseTo(expected[j]!, 5);
    const all = collectActivations(model, texts.slice(0, 2), HOOK, { position: 'all' });
    expect(all.rows).toBe(model.encode(texts[0]!).length + model.encode(texts[1]!).length);
    expect(all.textIndex.slice(-1)).toEqual([1]);
    const mean = collectActivations(model, texts.slice(0, 2), HOOK, { position: 'mean' });
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
