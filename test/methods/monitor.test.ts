import '../../src/engine/node.js';
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { monitoredGeneration, runMonitor } from '../../src/methods/monitor.js';
import { collectActivations, probeScores, readLabelledJsonl, trainProbe } from '../../src/methods/probes.js';

const model = HookedTransformer.load();
const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
const HOOK = 'blocks.2.hook_resid_post';
// Trained at the last token of each text (the default position).
const probe = trainProbe(await collectActivations(model, texts, HOOK), labels, { seed: 0 });
const spec = { hook: HOOK, probe };
// The same probe read at every token ('all'), for the mechanics of per-position scoring.
const everyToken = { hook: HOOK, probe, position: 'all' as const };
const stories = [
  'Once upon a time, there was a little boy named Tom.',
  'Once upon a time, there was a little girl named Lily.',
];

describe('runMonitor', () => {
  it('reads a last-position probe at the last token of each text only', async () => {
    const r = await runMonitor(model, stories, spec);
    expect([r.threshold, r.position]).toEqual([0.5, 'last']);
    expect(r.scores.map((s) => s.length)).toEqual(stories.map((t) => model.encode(t).length));
    // Every position but the last is unscored; the boy text fires at its end, the girl text does not.
    for (const s of r.scores) expect(s.slice(0, -1).every((v) => v === null)).toBe(true);
    expect(r.scores[0]!.at(-1)!).toBeGreaterThan(0.5);
    expect(r.scores[1]!.at(-1)!).toBeLessThan(0.5);
    // Before, the probe was read at every token and fired "boy" on the girl text's " Once", " a", " time".
    expect(r.hits.map((h) => [h.text, h.token])).toEqual([[0, '.']]);
    // The same probe read at every token does fire inside the girl text (why the rule matters).
    const all = await runMonitor(model, stories, everyToken);
    expect(all.scores[1]!.every((v) => v !== null)).toBe(true);
    expect(all.hits.some((h) => h.text === 1 && h.token === ' Once')).toBe(true);
  });

  it('reads a mean probe by the mean over each text, and a direction at every token', async () => {
    const Xm = await collectActivations(model, texts, HOOK, { position: 'mean' });
    const mean = trainProbe(Xm, labels, { seed: 0 });
    const r = await runMonitor(model, stories, { hook: HOOK, probe: mean, position: 'mean' });
    const ref = probeScores(mean, await collectActivations(model, stories, HOOK, { position: 'mean' }));
    r.scores.forEach((s, t) => expect(s.at(-1)!).toBeCloseTo(ref[t]!, 4));
    expect(r.scores.flatMap((s) => s.slice(0, -1)).every((v) => v === null)).toBe(true);
    // A direction monitor: score = activation · unit direction, at every position.
    const d = await runMonitor(model, stories, { hook: HOOK, direction: probe.direction, threshold: 0 });
    expect(d.position).toBe('all');
    expect(d.scores.flat().every((v) => v !== null)).toBe(true);
    expect(d.hits.every((h) => h.score > 0)).toBe(true);
  });
});

describe('monitoredGeneration', () => {
  const prompt = stories[0]!;
  it('with an every-token rule, scores the prompt like runMonitor and every generated token', async () => {
    const g = await monitoredGeneration(model, prompt, everyToken, { maxTokens: 10, temperature: 0 });
    expect(g.stopped).toBe(false);
    expect(g.generated).toHaveLength(10);
    // The last sampled token is never read by the model, so it is not scored.
    expect(g.scores).toHaveLength(g.tokens.length - 1);
    const ref = (await runMonitor(model, [prompt], everyToken)).scores[0]!;
    ref.forEach((s, i) => expect(g.scores[i]).toBeCloseTo(s!, 4));
  });

  it('reads a last-position probe at the end of the prompt and of each generated sentence', async () => {
    const g = await monitoredGeneration(model, prompt, spec, { maxTokens: 30, temperature: 0 });
    const strings = model.tokenStrings(g.tokens);
    const P = model.encode(prompt).length;
    const read = g.scores.flatMap((s, i) => (s === null ? [] : [i]));
    expect(read[0]).toBe(P - 1);
    expect(read.length).toBeGreaterThan(1); // measured: the greedy story has sentence ends
    for (const i of read.slice(1)) expect(strings[i]).toMatch(/[.!?]\s*$|\n/);
    // Each read score equals the probe on that prefix read as a whole text.
    const prefix = model.decode(g.tokens.slice(1, read[1]! + 1));
    expect(g.scores[read[1]!]).toBeCloseTo((await runMonitor(model, [prefix], spec)).scores[0]!.at(-1)!, 4);
  });

  it('stopOnFire stops at the first generated token that fires, keeping it', async () => {
    const free = await monitoredGeneration(model, prompt, everyToken, { maxTokens: 20, temperature: 0 });
    const P = model.encode(prompt).length;
    const first = free.hits.find((h) => h.generated);
    expect(first).toBeDefined(); // measured: the monitor fires within the first generated tokens
    const g = await monitoredGeneration(model, prompt, everyToken, {
      maxTokens: 20,
      temperature: 0,
      stopOnFire: true,
    });
    expect(g.stopped).toBe(true);
    expect(g.tokens).toEqual(free.tokens.slice(0, first!.position + 1));
    expect(g.hits.at(-1)!.position).toBe(first!.position);
    expect(g.generated.length).toBe(first!.position + 1 - P);
    // Nothing fires above an unreachable threshold: generation runs to maxTokens.
    const none = await monitoredGeneration(
      model,
      prompt,
      { ...spec, threshold: 2 },
      { maxTokens: 5, stopOnFire: true },
    );
    expect([none.stopped, none.hits.length, none.generated.length]).toEqual([false, 0, 5]);
  });
});
