// Inputs past the context are refused on rotary models as on learned-position ones, and attention that
// will not fit in memory is refused before it runs. (Before, stories260K ran 2,801 tokens into its 512
// silently, and 10,501 tokens grew the process until the kernel killed it.)
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { Tensor } from '../../src/engine/tensor.js';
import { MemoryError, ShapeError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { attentionBytes, checkAttentionMemory, checkContext } from '../../src/models/context.js';
import { forward } from '../../src/models/transformer.js';

const model = HookedTransformer.load(); // stories260K: rotary, n_ctx 512, 8 heads, 5 layers
const ids = (n: number) => Array.from({ length: n }, (_, i) => 1 + ((i * 37) % 500));
const CONTEXT = /sequence of 513 tokens is longer than the model's context of 512 \(n_ctx\)/;

describe('the context of a rotary model', () => {
  it('takes 512 tokens and refuses 513 in run, runWithCache, gradients and forward', () => {
    expect(model.cfg.positional).toBe('rotary');
    expect(model.run([ids(512)]).shape).toEqual([1, 512, 512]);
    expect(() => model.run([ids(513)])).toThrow(ShapeError);
    expect(() => model.run([ids(513)])).toThrow(CONTEXT);
    expect(() => model.runWithCache([ids(513)])).toThrow(CONTEXT);
    expect(() => model.gradients([ids(513)])).toThrow(CONTEXT);
    const tokens = new Tensor(BigInt64Array.from(ids(513), BigInt), [1, 513]);
    expect(() => forward(model.cfg, model.weights, tokens)).toThrow(CONTEXT);
  });

  it('refuses 10,501 tokens at once, before any work', () => {
    const t0 = performance.now();
    expect(() => model.run([ids(10501)])).toThrow(/sequence of 10501 tokens .* context of 512/);
    expect(performance.now() - t0).toBeLessThan(2000);
  });

  it('generate refuses a prompt past the context and stops at it', async () => {
    await expect(model.generate(ids(600), { maxTokens: 1 })).rejects.toThrow(/sequence of 600 tokens/);
    const r = await model.generate(ids(500), { maxTokens: 64, temperature: 0, stopAtEos: false });
    expect(r.tokens.length).toBe(512);
    expect(r.generated.length).toBe(12);
  });

  it('checkContext is the one check: the message names the limit and the CLI flag', () => {
    expect(() => checkContext({ nCtx: 1024 }, 1024)).not.toThrow();
    expect(() => checkContext({ nCtx: 1024 }, 1025)).toThrow(
      "sequence of 1025 tokens is longer than the model's context of 1024 (n_ctx): give at most 1024 tokens " +
        "(the CLI's --truncate keeps the last 1024)",
    );
  });
});

describe('attention memory', () => {
  const cfg = { nHeads: 8, nLayers: 5 };

  it('is estimated as [batch, heads, q, k] float32 scores times what the pass keeps', () => {
    const scores = 2 * 8 * 1000 * 1000 * 4;
    expect(attentionBytes(cfg, 2, 1000)).toBe(10 * scores);
    expect(attentionBytes(cfg, 2, 1000, 0, 'cache')).toBe((10 + 2 * 5) * scores);
    expect(attentionBytes(cfg, 2, 1000, 0, 'gradients')).toBe((10 + 7 * 5) * scores);
    expect(attentionBytes(cfg, 1, 1, 999)).toBe(10 * 8 * 1000 * 4); // one new token after 999
  });

  it('lets through what fits: the limit is inclusive', () => {
    const need = attentionBytes(cfg, 1, 2000); // 1.28 GB
    const at = (bytes: number) => () =>
      checkAttentionMemory(cfg, 1, 2000, 0, 'none', { bytes, source: 'memoryLimitBytes' });
    expect(at(need)).not.toThrow();
    expect(at(need - 1)).toThrow(/needs about 1.28 GB, over the limit of .* raise memoryLimitBytes$/);
  });

  it('refuses with MemoryError past the limit, naming the shape and the way out', () => {
    const limit = { bytes: 1e9, source: 'SONDE_MAX_MEMORY' } as const;
    // 8 x 4000^2 x 4 = 512 MB a score tensor, x 10.
    expect(() => checkAttentionMemory(cfg, 1, 4000, 0, 'none', limit)).toThrow(MemoryError);
    expect(() => checkAttentionMemory(cfg, 1, 4000, 0, 'none', limit)).toThrow(
      'attention over 4000 positions needs about 5.12 GB, over the limit of 1.00 GB set by SONDE_MAX_MEMORY: ' +
        'scores [1, 8, 4000, 4000] float32 are 512 MB each, about 10 alive at once. Give fewer tokens or rows, ' +
        'or, if you know it will fit, raise the limit with SONDE_MAX_MEMORY=5.2GB',
    );
    expect(() => checkAttentionMemory(cfg, 1, 1000, 0, 'gradients', limit)).toThrow(
      /needs about 1.44 GB.* plus 7 per layer kept for backward/,
    );
  });

  it('a long-context model refuses 100,000 tokens before allocating them', () => {
    const long = new HookedTransformer({ ...model.cfg, nCtx: 1_000_000 }, model.weights, model.tokenizer);
    const t0 = performance.now();
    // 8 x 100000^2 x 4 = 320 GB a score tensor: more than any machine this runs on.
    expect(() => long.run([ids(100_000)])).toThrow(/attention over 100000 positions needs about 3.20 TB/);
    expect(performance.now() - t0).toBeLessThan(5000);
  });
});
