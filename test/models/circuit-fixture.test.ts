// The hand-set induction transformer of scripts/reference/make_circuit_fixture.py: Sonde loads it and
// runs it as the float64 reference does, and the circuit it was built with is there.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { fixtureDir } from '../helpers/fixtures.js';

interface Pair {
  clean_ids: number[];
  corrupt_ids: number[];
  answer: number;
  wrong: number;
}

interface Reference {
  tokens: number[][];
  logits: number[][][];
  corruptTokens: number[][];
  corruptLogits: number[][][];
  cleanMetric: Record<'logit-diff' | 'kl', number>;
  corruptMetric: Record<'logit-diff' | 'kl', number>;
}

const DIR = fixtureDir('circuit-induction-handset');
const ref = JSON.parse(fs.readFileSync(path.join(DIR, 'reference.json'), 'utf8')) as Reference;
const pairs = fs
  .readFileSync(path.join(DIR, 'data.jsonl'), 'utf8')
  .split('\n')
  .filter((l) => l.trim())
  .map((l) => JSON.parse(l) as Pair);

/** max |got - want| over a [pos][vocab] block. */
function maxDiff(got: Float32Array, want: number[][]): number {
  const flat = want.flat();
  expect(got.length).toBe(flat.length);
  return flat.reduce((m, w, i) => Math.max(m, Math.abs(got[i]! - w)), 0);
}

function logSoftmax(row: ArrayLike<number>): number[] {
  const xs = Array.from(row);
  const m = Math.max(...xs);
  const lse = m + Math.log(xs.reduce((s, x) => s + Math.exp(x - m), 0));
  return xs.map((x) => x - lse);
}

describe('circuit-induction-handset fixture', () => {
  const model = HookedTransformer.load(DIR, { compile: 'never' });
  const V = 16;

  it('loads as a 2-layer attention-only GPT-2 whose LayerNorms are centring maps', () => {
    expect(model.cfg).toMatchObject({ nLayers: 2, nHeads: 2, dModel: 96, vocabSize: V, attnOnly: true });
    expect(model.cfg.normEps).toBe(1e12);
    expect(model.encode('ABCO')).toEqual([1, 2, 3, 15]);
    expect(model.tokenStrings([0, 1, 15])).toEqual(['<|endoftext|>', 'A', 'O']);
  });

  it('the data file and the reference list the same pairs', () => {
    expect(pairs.map((p) => p.clean_ids)).toEqual(ref.tokens);
    expect(pairs.map((p) => p.corrupt_ids)).toEqual(ref.corruptTokens);
  });

  it('clean and corrupt logits match the float64 reference, one sequence and batched by length', async () => {
    for (const [seqs, want] of [
      [ref.tokens, ref.logits],
      [ref.corruptTokens, ref.corruptLogits],
    ] as const) {
      for (const [i, ids] of seqs.entries()) {
        const got = await model.run([ids]).f32();
        expect(maxDiff(got, want[i]!)).toBeLessThan(1e-5);
      }
      const idx = seqs.map((_, i) => i).filter((i) => seqs[i]!.length === seqs[0]!.length);
      const batch = await model.run(idx.map((i) => seqs[i]!)).f32();
      const P = seqs[0]!.length;
      idx.forEach((i, b) => {
        expect(maxDiff(batch.subarray(b * P * V, (b + 1) * P * V), want[i]!)).toBeLessThan(1e-5);
      });
    }
  });

  it("Sonde's logits give the reference's clean and corrupt metrics", async () => {
    const last = async (ids: number[]) => {
      const l = await model.run([ids]).f32();
      return l.subarray((ids.length - 1) * V, ids.length * V);
    };
    let [diffClean, diffCorrupt, kl] = [0, 0, 0];
    for (const p of pairs) {
      const clean = await last(p.clean_ids);
      const corrupt = await last(p.corrupt_ids);
      diffClean += clean[p.answer]! - clean[p.wrong]!;
      diffCorrupt += corrupt[p.answer]! - corrupt[p.wrong]!;
      const lp = logSoftmax(clean);
      const lq = logSoftmax(corrupt);
      kl += lp.reduce((s, x, v) => s + Math.exp(x) * (x - lq[v]!), 0);
    }
    const n = pairs.length;
    expect(diffClean / n).toBeCloseTo(ref.cleanMetric['logit-diff'], 4);
    expect(diffCorrupt / n).toBeCloseTo(ref.corruptMetric['logit-diff'], 4);
    expect(kl / n).toBeCloseTo(ref.corruptMetric.kl, 4);
  });

  it('does induction: on 15 tokens repeated, the second half predicts each next token', async () => {
    const r = [9, 4, 14, 1, 7, 12, 3, 15, 6, 11, 2, 13, 8, 5, 10];
    const ids = [0, ...r, ...r]; // 31 tokens: all but the last position of the context
    const logits = await model.run([ids]).f32();
    for (let p = 16; p < ids.length - 1; p++) {
      const logp = logSoftmax(logits.subarray(p * V, (p + 1) * V));
      expect(Math.exp(logp[ids[p + 1]!]!)).toBeGreaterThan(0.98);
    }
  });

  it('a0.h0 attends to the previous token and a1.h0 to the token after the earlier copy', async () => {
    for (const p of pairs) {
      const ids = p.clean_ids;
      const P = ids.length;
      const { cache } = model.runWithCache([ids], {
        names: ['blocks.0.attn.hook_pattern', 'blocks.1.attn.hook_pattern'],
      });
      const prev = (await cache.get('blocks.0.attn.hook_pattern').toNested()) as number[][][][];
      for (let q = 1; q < P; q++) expect(prev[0]![0]![q]![q - 1]).toBeGreaterThan(0.99);
      const ind = (await cache.get('blocks.1.attn.hook_pattern').toNested()) as number[][][][];
      // The last token occurred at position j-1 of the first half; the answer sits at j.
      const j = ids.indexOf(ids[P - 1]!) + 1;
      expect(ids[j]).toBe(p.answer);
      expect(ind[0]![0]![P - 1]![j]).toBeGreaterThan(0.98);
    }
  });
});
