import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { circuitGraph } from '../../src/circuits/graph.js';
import { compileHypothesis, type FeatureName, type HypothesisSpec } from '../../src/circuits/hypothesis.js';
import { baselineHypothesis, sampleForests, scrub, type Forest } from '../../src/circuits/scrub.js';
import { add } from '../../src/engine/ops/elementwise.js';
import { blend } from '../../src/engine/ops/intervene.js';
import { Rng } from '../../src/engine/random.js';
import { Tensor } from '../../src/engine/tensor.js';
import { runModel } from '../../src/hooks/run-model.js';
import { int64 } from '../../src/methods/tokens.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { fixtureDir } from '../helpers/fixtures.js';
import { repeatedExamples } from '../helpers/repeated.js';

const input = (agree: FeatureName) => ({ from: ['input'], agree });

// The hand-set circuit: a0.h0 copies the previous token (attending by position), a1.h0 finds the earlier
// position whose previous token is the current one (K-composition) and copies its token.
const CORRECT = {
  output: ['a1.h0'],
  heads: {
    'a1.h0': { q: input('token'), k: { from: ['a0.h0'], agree: 'prev_token' }, v: input('token') },
    'a0.h0': { q: input('position'), k: input('position'), v: input('token') },
  },
};
const WRONG_K = {
  ...CORRECT,
  heads: { ...CORRECT.heads, 'a1.h0': { ...CORRECT.heads['a1.h0'], k: { from: ['a0.h0'], agree: 'token' } } },
};

describe('causal scrubbing on the hand-set induction circuit', () => {
  const model = HookedTransformer.load(fixtureDir('circuit-induction-handset'));
  const letters = Array.from({ length: 15 }, (_, i) => i + 1);
  const data = repeatedExamples({ n: 40, T: 8, bos: 0, ids: letters, seed: 1, distinct: true });

  it('the correct hypothesis recovers the loss; the wrong K-composition feature far less', async () => {
    const right = await scrub(model, data, CORRECT, { samples: 2, seed: 3 });
    const wrong = await scrub(model, data, WRONG_K, { samples: 2, seed: 3 });
    expect(right.lossRecovered).toBeGreaterThan(0.99);
    expect(right.distribution.quantiles.q05).toBeGreaterThan(0.99);
    expect(wrong.lossRecovered).toBeLessThan(0.6);
    // The same baseline (same seed, same draws): only the scrubbed loss differs.
    expect(wrong.baselineLoss).toBe(right.baselineLoss);
    expect(right.baseline).toBe('random');
    // Redwood's other baseline: the induction head's inputs all resampled.
    const inputs = await scrub(model, data, WRONG_K, { samples: 1, seed: 3, baseline: 'listed-inputs' });
    expect(inputs.lossRecovered).toBeLessThan(wrong.lossRecovered);
  }, 300_000);

  it('a feature written in TypeScript is the same as the named one (same draws for a seed)', async () => {
    const prev = (t: readonly number[], p: number) => (p > 0 ? t[p - 1]! : -1);
    const spec: HypothesisSpec = {
      ...CORRECT,
      heads: {
        ...CORRECT.heads,
        'a1.h0': { ...CORRECT.heads['a1.h0'], k: { from: ['a0.h0'], agree: prev } },
      },
    };
    const fn = await scrub(model, data, spec, { samples: 1, seed: 9 });
    const named = await scrub(model, data, CORRECT, { samples: 1, seed: 9 });
    expect(fn.scrubbedLoss).toBe(named.scrubbedLoss);
    expect(fn.examples.map((e) => e.scrubbed)).toEqual(named.examples.map((e) => e.scrubbed));
  });

  it('a hypothesis that keeps everything exact recovers exactly 1', async () => {
    const graph = circuitGraph(model.cfg);
    const senders = graph.senders.map((s) => s.name);
    const heads = Object.fromEntries(
      graph.senders
        .filter((s) => s.kind === 'head')
        .map((s) => {
          const from = senders.slice(0, graph.receivers.find((r) => r.node === s.name)!.upstream);
          const all = { from, agree: 'all' as const };
          return [s.name, { q: all, k: all, v: all }];
        }),
    );
    const r = await scrub(model, data.slice(0, 12), { output: senders, heads }, { samples: 1 });
    expect(r.lossRecovered).toBeCloseTo(1, 5);
    for (const e of r.examples) expect(Math.abs(e.scrubbed - e.clean)).toBeLessThan(1e-5);
  }, 300_000);

  it('resamples per position: with nothing claimed, each position reads one of the examples', async () => {
    // Two examples; the logits read only a1.h0's block, so at position p the scrubbed logits are the clean
    // logits at p of whichever example was drawn there.
    const two = repeatedExamples({ n: 2, T: 8, bos: 0, ids: letters, seed: 5, distinct: true });
    const r = await scrub(model, two, { output: [] }, { samples: 1, seed: 4 });
    const logp = await Promise.all(
      two.map(async (ex) => logSoftmaxRows(await model.run([ex.clean]).f32(), 16)),
    );
    const positions = two[0]!.positions!;
    const target = (p: number) => two[0]!.clean[p + 1]!;
    // Every per-position choice of source example, and the loss each gives example 0.
    const matches: number[][] = [];
    for (let mask = 0; mask < 1 << positions.length; mask++) {
      const loss =
        positions.reduce((acc, p, i) => acc - logp[(mask >> i) & 1]![p]![target(p)]!, 0) / positions.length;
      if (Math.abs(loss - r.examples[0]!.scrubbed) < 1e-4)
        matches.push(positions.map((_, i) => (mask >> i) & 1));
    }
    expect(matches).toHaveLength(1);
    // Not one draw for the whole sequence: both examples are read at some position.
    expect(new Set(matches[0]).size).toBe(2);
  });
});

describe('the batched pass against a row-by-row reference', () => {
  const model = HookedTransformer.load(fixtureDir('circuit-induction-handset'), { compile: 'never' });
  const graph = circuitGraph(model.cfg);
  const { dModel: D, nLayers: L, nHeads: H } = model.cfg;
  const letters = Array.from({ length: 15 }, (_, i) => i + 1);
  const data = repeatedExamples({ n: 5, T: 5, bos: 0, ids: letters, seed: 7, distinct: true });
  const P = data[0]!.clean.length;

  /** A forward on one example with some receiver inputs set at some positions; logits and head outputs. */
  async function forward(
    tokens: number[],
    set: Map<string, { y: Float32Array; mask: Uint8Array; shape: number[] }>,
  ) {
    const store = new Map<string, Tensor>();
    const logits = runModel(model, int64([tokens]), {
      hook: model.hookPoint({
        fwd: [
          {
            name: (n: string) => set.has(n),
            fn: (x: Tensor, { name }: { name: string }) => {
              const s = set.get(name)!;
              const m = [...s.shape.slice(0, -1), 1];
              return blend(x, new Tensor(s.y, s.shape), new Tensor(s.mask, m));
            },
          },
        ],
        cache: (n) => n.endsWith('attn.hook_result') || n === 'hook_embed' || n === 'hook_pos_embed',
        store,
      }),
      useAttnResult: true,
      useSplitInputs: true,
    });
    const senders: Float32Array[] = [await add(store.get('hook_embed')!, store.get('hook_pos_embed')!).f32()];
    for (let l = 0; l < L; l++) {
      const res = await store.get(`blocks.${l}.attn.hook_result`)!.f32(); // [1, pos, head, d_model]
      for (let h = 0; h < H; h++) {
        const out = new Float32Array(P * D);
        for (let p = 0; p < P; p++) out.set(res.subarray((p * H + h) * D, (p * H + h + 1) * D), p * D);
        senders.push(out);
      }
    }
    return { logits: await logits.f32(), senders };
  }

  it.each([
    ['correct', CORRECT],
    ['wrong k', WRONG_K],
  ] as const)(
    '%s: every root loss equals its draws evaluated row by row with patched forwards',
    async (_, spec) => {
      const seed = 11;
      const r = await scrub(model, data, spec, { samples: 1, seed });
      const hyp = compileHypothesis(graph, spec);
      const base = baselineHypothesis(hyp, 'random', graph.receivers.length - 1);
      const forests = sampleForests(hyp, base, data, 1, new Rng(seed), 1e6);
      const exact = await Promise.all(data.map(async (ex) => (await forward(ex.clean, new Map())).senders));
      // What the attention output biases add to the residual stream before layer l (never a sender).
      const bO = await Promise.all(
        Array.from({ length: L }, (_, l) => model.weights.get(`blocks.${l}.attn.b_O`)!.f32()),
      );
      const biasBefore = (l: number) => {
        const b = new Float32Array(D);
        for (let i = 0; i < l; i++) bO[i]!.forEach((v, d) => (b[d]! += v));
        return b;
      };
      const evaluate = async (forest: Forest, index: number) => {
        const row = forest.rows[index]!;
        const set = new Map<string, { y: Float32Array; mask: Uint8Array; shape: number[] }>();
        for (const [ri, { claim, src }] of row.sources) {
          const rec = graph.receivers[ri]!;
          const logits = rec.kind === 'logits';
          const hook = logits
            ? `blocks.${L - 1}.hook_resid_post`
            : `blocks.${rec.layer}.hook_${rec.kind}_input`;
          const c = logits ? 1 : rec.kind === 'q' ? H : model.cfg.nKvHeads;
          const j = logits ? 0 : rec.head!;
          const entry = set.get(hook) ?? {
            y: new Float32Array(P * c * D),
            mask: new Uint8Array(P * c),
            shape: logits ? [1, P, D] : [1, P, c, D],
          };
          set.set(hook, entry);
          for (let p = 0; p < P; p++) {
            if (src[3 * p + 1]! < 0) continue;
            const v = biasBefore(rec.layer);
            const child = claim.listed.length ? (await evaluate(forest, src[3 * p]!)).senders : null;
            for (let s = 0; s < rec.upstream; s++) {
              const from = claim.listed.includes(s)
                ? child!
                : exact[claim.claimed.includes(s) ? src[3 * p + 1]! : src[3 * p + 2]!]!;
              for (let d = 0; d < D; d++) v[d]! += from[s]![p * D + d]!;
            }
            entry.y.set(v, (p * c + j) * D);
            entry.mask[p * c + j] = 1;
          }
        }
        return forward(data[row.example]!.clean, set);
      };
      const lossOf = (logits: Float32Array, e: number) => {
        const logp = logSoftmaxRows(logits, model.cfg.vocabSize);
        const ps = data[e]!.positions!;
        return -ps.reduce((a, p) => a + logp[p]![data[e]!.clean[p + 1]!]!, 0) / ps.length;
      };
      for (let e = 0; e < data.length; e++) {
        const f = forests[e]!;
        expect(lossOf((await evaluate(f, f.scrubbed[0]!)).logits, e)).toBeCloseTo(r.examples[e]!.scrubbed, 4);
        expect(lossOf((await evaluate(f, f.baseline[0]!)).logits, e)).toBeCloseTo(r.examples[e]!.baseline, 4);
      }
      // The draws matter: the wrong hypothesis loses most of the loss on some example.
      if (spec === WRONG_K)
        expect(Math.max(...r.examples.map((x) => x.scrubbed - x.clean))).toBeGreaterThan(0.3);
    },
    300_000,
  );
});

describe('causal scrubbing on the trained induction organism', () => {
  const model = HookedTransformer.load(fixtureDir('induction-2l'));
  const ids = Array.from({ length: 253 }, (_, i) => 259 + i);
  const data = repeatedExamples({ n: 32, T: 20, bos: 1, ids, seed: 2 });
  const induction = ['a1.h0', 'a1.h1', 'a1.h2', 'a1.h3'];
  const hypothesis = (k: { from: string[]; agree: FeatureName }) => ({
    output: induction,
    heads: Object.fromEntries(induction.map((h) => [h, { q: input('token'), k, v: input('token') }])),
  });

  it('keys from the previous-token heads explain far more than keys from the tokens alone', async () => {
    const naive = await scrub(model, data, hypothesis(input('token')), { samples: 2 });
    const refined = await scrub(model, data, hypothesis({ from: ['a0.h1', 'a0.h2'], agree: 'prev_token' }), {
      samples: 2,
    });
    expect(naive.lossRecovered).toBeLessThan(0.45);
    expect(refined.lossRecovered).toBeGreaterThan(0.65);
    expect(refined.lossRecovered - naive.lossRecovered).toBeGreaterThan(0.3);
  }, 300_000);
});

describe('hypotheses are checked against the model', () => {
  const model = HookedTransformer.load(fixtureDir('circuit-induction-handset'));
  const graph = circuitGraph(model.cfg);
  const bad = (spec: unknown) => () => compileHypothesis(graph, spec, 'h.json');

  it('names the mistake', () => {
    expect(bad({ output: ['a2.h0'] })).toThrow(/h.json: "output": 'a2.h0' is not a node of this model/);
    expect(bad({ output: ['a1.h0'], heads: { 'a1.h5': {} } })).toThrow(/'a1.h5' is not a head of this model/);
    expect(
      bad({ output: ['a1.h0'], heads: { 'a1.h0': { q: { from: ['input'], agree: 'colour' } } } }),
    ).toThrow(/unknown feature "colour": "agree" is one of token, prev_token, position, all, none/);
    expect(
      bad({ output: ['a0.h0'], heads: { 'a0.h0': { k: { from: ['a1.h0'], agree: 'token' } } } }),
    ).toThrow(/a0.h0<k> cannot read a1.h0/);
    expect(bad({ output: ['a1.h0'], heads: { 'a0.h1': {} } })).toThrow(/neither "output" nor a listed head/);
    expect(bad({ outputs: [] })).toThrow(/unknown key 'outputs'/);
    expect(bad({ output: ['a1.h0'], heads: { 'a1.h0': { q: { from: ['input'] } } } })).toThrow(
      /give "agree"/,
    );
  });

  it('grouped-query heads sharing a KV head must claim the same for its k and v', () => {
    const llama = circuitGraph(HookedTransformer.load(fixtureDir('stories260K')).cfg); // 8 heads, 4 KV heads
    const head = (agree: FeatureName) => ({ k: { from: ['a0.h0'], agree } });
    const spec = (a: FeatureName, b: FeatureName) => ({
      output: ['a1.h0', 'a1.h1'],
      heads: { 'a1.h0': head(a), 'a1.h1': head(b) },
    });
    expect(() => compileHypothesis(llama, spec('prev_token', 'token'))).toThrow(
      /a1.h0 and a1.h1 share the k input a1.h0<k> \(grouped-query attention\)/,
    );
    const ok = compileHypothesis(llama, spec('prev_token', 'prev_token'));
    expect(ok.heads.get(llama.senders.findIndex((s) => s.name === 'a1.h1'))![1]!.receiver).toBe(
      llama.receivers.findIndex((r) => r.name === 'a1.h0<k>'),
    );
  });
});

/** Host log-softmax of logits [1, pos, vocab] -> per position, per token. */
function logSoftmaxRows(x: Float32Array, V: number): number[][] {
  const rows: number[][] = [];
  for (let o = 0; o < x.length; o += V) {
    const r = Array.from(x.subarray(o, o + V));
    const m = Math.max(...r);
    const lse = m + Math.log(r.reduce((a, v) => a + Math.exp(v - m), 0));
    rows.push(r.map((v) => v - lse));
  }
  return rows;
}
