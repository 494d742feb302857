import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import {
  hookShape,
  hookSpec,
  hookTable,
  positionAxisOf,
  trailingShape,
} from '../../src/models/hook-table.js';
import { checkSplice } from '../../src/sae/splice.js';
import { Tensor } from '../../src/engine/tensor.js';
import { runModel } from '../../src/hooks/run-model.js';
import { identitySae } from '../helpers/sae.js';
import { ARCHITECTURE_FIXTURES } from '../helpers/fixtures.js';

const FIXTURES = path.resolve('test/fixtures');
/** Every fixture architecture, and the attention-only induction organism. */
const FIXTURE_NAMES = [...ARCHITECTURE_FIXTURES, 'llama-mlp-bias-tiny', 'induction-2l'];
// Two sequences of five: batch and position sizes differ from every config size.
const IDS = [
  [1, 5, 9, 13, 17],
  [2, 6, 10, 14, 18],
];

describe.each(FIXTURE_NAMES)('the hook table of %s', (name) => {
  const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });
  const table = hookTable(model.cfg, { useAttnResult: true });

  it('lists exactly the points the forward reaches, in order, with their shapes', () => {
    const { cache } = model.runWithCache(IDS, { useAttnResult: true });
    const reached = cache.keys();
    const listed = table.map((h) => h.name);
    expect(
      reached.filter((n) => !listed.includes(n)),
      'reached but not in the table',
    ).toEqual([]);
    expect(
      listed.filter((n) => !reached.includes(n)),
      'in the table but not reached',
    ).toEqual([]);
    expect(reached).toEqual(listed);
    for (const spec of table) {
      expect(cache.get(spec.name).shape, spec.name).toEqual(hookShape(model.cfg, spec, 2, 5));
    }
  });

  it('gives each point its layer, and model.hookNames() its names', () => {
    for (const spec of table) {
      const m = /^blocks\.(\d+)\./.exec(spec.name);
      expect(spec.layer, spec.name).toBe(m ? Number(m[1]) : null);
    }
    expect(model.hookNames({ useAttnResult: true })).toEqual(table.map((h) => h.name));
    expect(model.hookNames()).toEqual(table.map((h) => h.name).filter((n) => !n.endsWith('hook_result')));
  });
});

describe('hook table entries', () => {
  const qwen3 = HookedTransformer.load(path.join(FIXTURES, 'qwen3-tiny'), { compile: 'never' });
  const { cfg } = qwen3; // d_model 32, 4 heads of 16, 2 kv heads

  it('q_norm.hook_normalized is [batch, pos, n_heads, d_head]; k_norm has the kv heads', () => {
    const q = hookSpec(cfg, 'blocks.0.attn.q_norm.hook_normalized')!;
    expect(q.axes).toEqual(['batch', 'pos', 'n_heads', 'd_head']);
    expect(trailingShape(cfg, q)).toEqual([4, 16]);
    expect(trailingShape(cfg, hookSpec(cfg, 'blocks.0.attn.k_norm.hook_normalized')!)).toEqual([2, 16]);
    expect(trailingShape(cfg, hookSpec(cfg, 'blocks.0.attn.q_norm.hook_scale')!)).toEqual([4, 1]);
    expect(trailingShape(cfg, hookSpec(cfg, 'blocks.1.hook_resid_post')!)).toEqual([32]);
  });

  it('splice checks read it: an SAE over d_head or n_heads*d_head fits q_norm, one over d_model does not', () => {
    const names = qwen3.hookNames({ useAttnResult: true });
    const H = 'blocks.0.attn.q_norm.hook_normalized';
    expect(checkSplice(cfg, names, [], identitySae(H, 16)).hookName).toBe(H);
    expect(checkSplice(cfg, names, [], identitySae(H, 64)).hookName).toBe(H);
    expect(() => checkSplice(cfg, names, [], identitySae(H, 32))).toThrow(
      /d_in=32, but the activation there has shape \[batch, pos, 4, 16\]/,
    );
    // Spliced per head, the model still runs and the identity SAE leaves the logits as they were.
    const before = qwen3.run([IDS[0]!]).f32Sync();
    qwen3.addSAE(identitySae(H, 16));
    try {
      const after = qwen3.run([IDS[0]!]).f32Sync();
      let diff = 0;
      for (let i = 0; i < before.length; i++) diff = Math.max(diff, Math.abs(after[i]! - before[i]!));
      expect(diff).toBeLessThan(1e-5);
    } finally {
      qwen3.resetSAEs();
    }
  });

  it('attention scores and patterns index query positions on axis 2; a KV step has past + new keys', () => {
    const p = hookSpec(cfg, 'blocks.1.attn.hook_pattern')!;
    expect(p.axes).toEqual(['batch', 'n_heads', 'query_pos', 'key_pos']);
    expect(positionAxisOf(p)).toBe(2);
    expect(trailingShape(cfg, p)).toBeNull();
    expect(hookShape(cfg, p, 1, 1, 7)).toEqual([1, 4, 1, 8]);
    expect(positionAxisOf(hookSpec(cfg, 'blocks.1.attn.hook_z')!)).toBe(1);
  });
});

describe.each(FIXTURE_NAMES)('split inputs of %s (useSplitInputs)', (name) => {
  const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });

  it('reaches the table with per-head q/k/v inputs and mlp_in, and leaves the logits unchanged', () => {
    const table = hookTable(model.cfg, { useAttnResult: true, useSplitInputs: true });
    const store = new Map<string, Tensor>();
    const hook = model.hookPoint({ cache: () => true, store });
    const tokens = Tensor.from(IDS, undefined, 'int64');
    const logits = runModel(model, tokens, { hook, useAttnResult: true, useSplitInputs: true });
    expect([...store.keys()]).toEqual(table.map((h) => h.name));
    for (const spec of table)
      expect(store.get(spec.name)!.shape, spec.name).toEqual(hookShape(model.cfg, spec, 2, 5));
    const plain = model.run(IDS).f32Sync();
    const split = logits.f32Sync();
    let worst = 0;
    for (let i = 0; i < plain.length; i++) worst = Math.max(worst, Math.abs(plain[i]! - split[i]!));
    expect(worst).toBeLessThan(1e-4);
  });
});
