import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { logSoftmax } from '../../src/engine/ops/nn.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { processWeights } from '../../src/models/process-weights.js';

const FIXTURES = path.resolve('test/fixtures');
const TOKENS = [[5, 17, 3, 88, 42, 9, 9, 60, 1, 33, 70, 12]];

function maxAbsDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each([
  ['gpt2-tiny', 'LNPre'],
  ['llama-tiny', 'RMSPre'],
  ['gpt-neo-tiny', 'LNPre'],
  ['pythia-tiny', 'LNPre'],
  ['gemma2-tiny', 'RMSPre'],
  ['gemma3-tiny', 'RMSPre'],
  ['qwen2-tiny', 'RMSPre'],
  ['qwen3-tiny', 'RMSPre'],
])('TransformerLens weight processing on %s', (name, norm) => {
  const dir = path.join(FIXTURES, name);
  const raw = HookedTransformer.load(dir, { compile: 'never' });
  const processed = HookedTransformer.load(dir, { compile: 'never', processWeights: true });
  const rawLp = logSoftmax(raw.run(TOKENS)).f32Sync();

  it('leaves log-probs unchanged with every step on', () => {
    expect(processed.cfg.normalization).toBe(norm);
    expect(maxAbsDiff(logSoftmax(processed.run(TOKENS)).f32Sync(), rawLp)).toBeLessThan(1e-4);
  });

  it.each([
    [{ foldLn: true, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false }],
    [{ foldLn: false, centerWritingWeights: false, centerUnembed: true, foldValueBiases: false }],
    [{ foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: true }],
    [{ foldLn: true, centerWritingWeights: true, centerUnembed: false, foldValueBiases: false }],
  ])('leaves log-probs unchanged with %o', (opts) => {
    const m = HookedTransformer.load(dir, { compile: 'never', processWeights: opts });
    expect(maxAbsDiff(logSoftmax(m.run(TOKENS)).f32Sync(), rawLp)).toBeLessThan(1e-4);
  });

  it('does what each step says', () => {
    const w = processed.weights;
    expect(w.has('blocks.0.ln1.w')).toBe(false);
    expect(w.has('ln_final.w')).toBe(false);
    const U = w.get('unembed.W_U')!;
    const [D, V] = U.shape as [number, number];
    if (raw.cfg.finalSoftcap) {
      // Soft-capped logits are not shift-invariant: the unembedding must stay as it was.
      expect(processed.cfg.processed.centerUnembed).toBe(false);
      const foldOnly = HookedTransformer.load(dir, {
        compile: 'never',
        processWeights: { centerUnembed: false },
      });
      expect(maxAbsDiff(U.f32Sync(), foldOnly.weights.get('unembed.W_U')!.f32Sync())).toBe(0);
      return;
    }
    for (let r = 0; r < D; r++) {
      const row = U.f32Sync().subarray(r * V, (r + 1) * V);
      expect(Math.abs(row.reduce((a, b) => a + b, 0) / V)).toBeLessThan(1e-5);
    }
    if (name === 'gpt2-tiny') {
      const E = w.get('embed.W_E')!;
      const d = E.shape[1]!;
      const row0 = E.f32Sync().subarray(0, d);
      expect(Math.abs(row0.reduce((a, b) => a + b, 0) / d)).toBeLessThan(1e-5);
      expect(Math.max(...w.get('blocks.1.attn.b_V')!.f32Sync().map(Math.abs))).toBe(0);
      // Raw: b_V is non-zero, so folding actually moved something.
      expect(Math.max(...raw.weights.get('blocks.1.attn.b_V')!.f32Sync().map(Math.abs))).toBeGreaterThan(
        0.01,
      );
    }
  });
});

describe('TransformerLens weight processing on the attention-only induction organism', () => {
  const dir = path.join(FIXTURES, 'induction-2l');
  // A repeated random sequence: the organism's induction heads predict the second half.
  const ids = [[1, 40, 7, 300, 22, 91, 5, 40, 7, 300, 22, 91, 5]];
  const raw = HookedTransformer.load(dir, { compile: 'never' });
  const rawLp = logSoftmax(raw.run(ids)).f32Sync();

  it('folds its LayerNorms and leaves its log-probs unchanged', () => {
    expect(raw.cfg.attnOnly).toBe(true);
    const processed = HookedTransformer.load(dir, { compile: 'never', processWeights: true });
    expect(processed.cfg.normalization).toBe('LNPre');
    expect(processed.weights.has('blocks.0.ln1.w')).toBe(false);
    expect(processed.weights.has('blocks.0.mlp.W_in')).toBe(false);
    expect(maxAbsDiff(logSoftmax(processed.run(ids)).f32Sync(), rawLp)).toBeLessThan(1e-4);
  });

  it('without LayerNorm (normalization none) the other steps leave log-probs unchanged', () => {
    const noLn = new HookedTransformer(
      { ...raw.cfg, normalization: 'none' },
      new Map([...raw.weights].filter(([n]) => !/ln\d?(_final)?\.|ln_final\./.test(n))),
      raw.tokenizer,
    );
    const before = logSoftmax(noLn.run(ids)).f32Sync();
    const { cfg, weights } = processWeights(noLn.cfg, noLn.weights);
    const after = logSoftmax(new HookedTransformer(cfg, weights, null).run(ids)).f32Sync();
    expect(cfg.normalization).toBe('none');
    expect(maxAbsDiff(after, before)).toBeLessThan(1e-4);
    // Something moved: the value biases were folded into b_O.
    expect(
      maxAbsDiff(
        weights.get('blocks.0.attn.b_O')!.f32Sync(),
        noLn.weights.get('blocks.0.attn.b_O')!.f32Sync(),
      ),
    ).toBeGreaterThan(0);
  });
});
