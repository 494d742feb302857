import '../../src/engine/node.js';
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { monitoredGeneration, runMonitor } from '../../src/methods/monitor.js';
import { collectActivations, readLabelledJsonl, trainProbe } from '../../src/methods/probes.js';

const model = HookedTransformer.load();
const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
const HOOK = 'blocks.2.hook_resid_post';
const probe = trainProbe(collectActivations(model, texts, HOOK), labels, { seed: 0 });
const spec = { hook: HOOK, probe };

describe('runMonitor', () => {
  it('scores every position and reports those above the threshold', () => {
    const stories = [
      'Once upon a time, there was a little boy named Tom.',
      'Once upon a time, there was a little girl named Lily.',
    ];
    const r = runMonitor(model, stories, spec);
    expect(r.threshold).toBe(0.5);
    expect(r.scores.map((s) => s.length)).toEqual(stories.map((t) => model.encode(t).length));
    for (const h of r.hits) {
      expect(h.score).toBeGreaterThan(0.5);
      expect(r.scores[h.text]![h.position]).toBe(h.score);
      expect(h.token).toBe(r.tokens[h.text]![h.position]);
    }
    // The "boy" probe fires at the end of the boy sentence and not at the end of the girl sentence.
    expect(r.scores[0]!.at(-1)!).toBeGreaterThan(0.5);
    expect(r.scores[1]!.at(-1)!).toBeLessThan(0.5);
    // A direction monitor: score = activation · unit direction.
    const d = runMonitor(model, stories, { hook: HOOK, direction: probe.direction, threshold: 0 });
    expect(d.hits.every((h) => h.score > 0)).toBe(true);
  });
});

describe('monitoredGeneration', () => {
  const prompt = 'Once upon a time, there was a little boy named Tom.';
  it('scores the prompt like runMonitor and every generated token', () => {
    const g = monitoredGeneration(model, prompt, spec, { maxTokens: 10, temperature: 0 });
    expect(g.stopped).toBe(false);
    expect(g.generated).toHaveLength(10);
    // The last sampled token is never read by the model, so it is not scored.
    expect(g.scores).toHaveLength(g.tokens.length - 1);
    const ref = runMonitor(model, [prompt], spec).scores[0]!;
    ref.forEach((s, i) => expect(g.scores[i]).toBeCloseTo(s, 4));
  });

  it('stopOnFire stops at the first generated token that fires, keeping it', () => {
    const free = monitoredGeneration(model, prompt, spec, { maxTokens: 20, temperature: 0 });
    const P = model.encode(prompt).length;
    const first = free.hits.find((h) => h.generated);
    expect(first).toBeDefined(); // measured: the monitor fires within the first generated tokens
    const g = monitoredGeneration(model, prompt, spec, { maxTokens: 20, temperature: 0, stopOnFire: true });
    expect(g.stopped).toBe(true);
    expect(g.tokens).toEqual(free.tokens.slice(0, first!.position + 1));
    expect(g.hits.at(-1)!.position).toBe(first!.position);
    expect(g.generated.length).toBe(first!.position + 1 - P);
    // Nothing fires above an unreachable threshold: generation runs to maxTokens.
    const none = monitoredGeneration(
      model,
      prompt,
      { ...spec, threshold: 2 },
      { maxTokens: 5, stopOnFire: true },
    );
    expect([none.stopped, none.hits.length, none.generated.length]).toEqual([false, 0, 5]);
  });
});
