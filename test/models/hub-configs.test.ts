import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { architectureOf } from '../../src/models/architectures.js';
import type { ModelConfig } from '../../src/models/config.js';

const DIR = path.resolve('test/fixtures/hub-configs');

/** Parses a published config.json (test/fixtures/hub-configs/) as the loader does. */
function parse(name: string): ModelConfig {
  const file = path.join(DIR, `${name}.json`);
  const hf = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  return architectureOf(hf, file).arch.parseConfig(hf);
}

const locals = (cfg: ModelConfig) => (cfg.attnTypes ?? []).flatMap((t, l) => (t === 'local' ? [l] : []));

describe('published Hub configs are read as the models use them', () => {
  it('gpt2', () => {
    const c = parse('gpt2');
    expect([c.nLayers, c.dModel, c.nHeads, c.dHead, c.dMlp, c.nCtx, c.vocabSize]).toEqual([
      12, 768, 12, 64, 3072, 1024, 50257,
    ]);
    expect(c.attnTypes).toBeUndefined();
  });

  it('pythia-70m: parallel blocks, a quarter of each 64-wide head rotated', () => {
    const c = parse('pythia-70m');
    expect([c.nLayers, c.dModel, c.nHeads, c.dHead, c.dMlp, c.vocabSize]).toEqual([
      6, 512, 8, 64, 2048, 50304,
    ]);
    expect(c.parallelAttnMlp).toBe(true);
    expect(c.rotaryDim).toBe(16);
    expect(c.ropeTheta).toBe(10000);
    expect(c.act).toBe('gelu');
    expect(c.tiedEmbeddings).toBe(false);
  });

  it('gpt-neo-125M: odd layers local with a 256-token window, unscaled scores', () => {
    const c = parse('gpt-neo-125m');
    expect(locals(c)).toEqual([1, 3, 5, 7, 9, 11]);
    expect(c.windowSize).toBe(256);
    expect(c.attnScale).toBe(1);
    expect(c.dMlp).toBe(3072);
  });

  it('Mistral-7B-v0.1: a 4096-token window on every layer, 8 KV heads', () => {
    const c = parse('mistral-7b');
    expect(locals(c)).toHaveLength(32);
    expect(c.windowSize).toBe(4096);
    expect([c.nHeads, c.nKvHeads, c.dHead]).toEqual([32, 8, 128]);
  });

  it('Qwen2.5-0.5B: use_sliding_window false means no window; tied', () => {
    const c = parse('qwen2.5-0.5b');
    expect(c.attnTypes).toBeUndefined();
    expect([c.nHeads, c.nKvHeads, c.dHead, c.ropeTheta]).toEqual([14, 2, 64, 1e6]);
    expect(c.tiedEmbeddings).toBe(true);
  });

  it('Qwen3-0.6B: q/k norms and head_dim 128 (not 1024 / 16)', () => {
    const c = parse('qwen3-0.6b');
    expect(c.qkNorm).toBe(true);
    expect([c.dHead, c.rotaryDim]).toEqual([128, 128]);
    expect(c.attnScale).toBeCloseTo(1 / Math.sqrt(128), 12);
    expect(c.attnTypes).toBeUndefined();
  });

  it('gemma-2-2b: even layers slide over 4096 tokens, caps 50 and 30, post-norms', () => {
    const c = parse('gemma-2-2b');
    expect(locals(c)).toEqual(Array.from({ length: 13 }, (_, i) => 2 * i));
    expect(c.windowSize).toBe(4096);
    expect([c.attnSoftcap, c.finalSoftcap]).toEqual([50, 30]);
    expect(c.attnScale).toBeCloseTo(1 / 16, 12);
    expect(c.postNorms).toBe(true);
    expect(c.act).toBe('gelu_new');
    expect([c.nHeads, c.nKvHeads, c.dHead]).toEqual([8, 4, 256]);
  });

  it('gemma-3-1b: every sixth layer global, local RoPE base 1e4 vs 1e6, no caps', () => {
    const c = parse('gemma-3-1b');
    const globals = (c.attnTypes ?? []).flatMap((t, l) => (t === 'global' ? [l] : []));
    expect(globals).toEqual([5, 11, 17, 23]);
    expect(c.windowSize).toBe(512);
    expect([c.ropeTheta, c.localRopeTheta]).toEqual([1e6, 1e4]);
    expect([c.attnSoftcap, c.finalSoftcap]).toEqual([undefined, undefined]);
    expect(c.qkNorm).toBe(true);
    expect(c.eosTokenId).toBe(1);
  });
});
