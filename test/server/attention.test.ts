// POST /api/attention: the patterns the page draws are the library's, one layer or all.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { FastifyInstance } from 'fastify';
import { attentionPatterns, type AttentionResult } from '../../src/methods/attention.js';
import { buildServer } from '../../src/server/app.js';
import { Registry } from '../../src/server/registry.js';

let app: FastifyInstance;
let registry: Registry;
beforeAll(async () => {
  registry = await Registry.open(['assets/stories260K', 'test/fixtures/induction-2l'], []);
  ({ app } = await buildServer({ registry, token: null, webRoot: '' }));
});
afterAll(async () => app?.close());

const post = (body: unknown) =>
  app.inject({ method: 'POST', url: '/api/attention', payload: body as object });

describe('POST /api/attention', () => {
  it('answers every layer of stories260K with the library’s patterns', async () => {
    const prompt = 'Once upon a time, there was a cat.';
    const res = await post({ prompt });
    expect(res.statusCode).toBe(200);
    const got = res.json<AttentionResult>();
    const model = registry.model(undefined).model;
    const want = await attentionPatterns(model, model.encode(prompt));
    expect(got).toEqual(want);
    expect(got.hooks).toHaveLength(5);
    expect(got.hooks[0]!.pattern).toHaveLength(8);
    // Causal rows over the keys sum to 1.
    const row = got.hooks[3]!.pattern[5]![4]!;
    expect(row.reduce((s, x) => s + x, 0)).toBeCloseTo(1, 5);
    expect(row.slice(5).every((x) => x === 0)).toBe(true);
  });

  it('answers one layer of the induction organism', async () => {
    const prompt = ' cat dog tree cat dog tree';
    const res = await post({ model: 'induction-2l', prompt, layer: 1 });
    expect(res.statusCode).toBe(200);
    const got = res.json<AttentionResult>();
    const model = registry.model('induction-2l').model;
    const want = await attentionPatterns(model, model.encode(prompt), [1]);
    expect(got).toEqual(want);
    expect(got.layers).toEqual([1]);
    expect(got.hooks.map((h) => h.name)).toEqual(['blocks.1.attn.hook_pattern']);
  });

  it('refuses a bad layer, a bad model and a prompt past the context with a clear 4xx', async () => {
    const layer = await post({ prompt: 'Once', layer: 5 });
    expect(layer.statusCode).toBe(400);
    expect(layer.json().error.message).toMatch(/layer: 5 is not in \[0, 5\)/);
    expect((await post({ prompt: 'Once', layer: 'two' })).json().error.message).toMatch(/^layer:/);
    const model = await post({ prompt: 'Once', model: 'nope' });
    expect(model.statusCode).toBe(404);
    expect(model.json().error.message).toMatch(/no model 'nope'/);
    const long = await post({ model: 'induction-2l', prompt: ' cat'.repeat(200) });
    expect(long.statusCode).toBe(400);
    expect(long.json().error.message).toMatch(/more than the model's context of 128/);
    expect((await post({})).json().error.message).toMatch(/^prompt:/);
    // Every layer of a long prompt is too large an answer; one layer of it is not.
    const many = await post({ prompt: ' cat'.repeat(240) });
    expect(many.statusCode).toBe(400);
    expect(many.json().error.message).toMatch(
      /5 layers × 8 heads over \d+ tokens .* ask for one layer at a time/,
    );
    expect((await post({ prompt: ' cat'.repeat(240), layer: 4 })).statusCode).toBe(200);
  });
});
