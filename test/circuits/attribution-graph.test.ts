import { beforeAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { mul, sub } from '../../src/engine/ops/elementwise.js';
import { matmul } from '../../src/engine/ops/nn.js';
import { mean } from '../../src/engine/ops/reduce.js';
import { reshape, slice, transpose } from '../../src/engine/ops/shape.js';
import { Tensor } from '../../src/engine/tensor.js';
import {
  attributionGraph,
  demeanedUnembed,
  errorNode,
  logitNode,
  tokenNode,
  type AttributionGraph,
} from '../../src/circuits/attribution-graph.js';
import { graphFile } from '../../src/circuits/attribution-file.js';
import {
  graphScores,
  nodeInfluence,
  pruneGraph,
  thresholdFor,
} from '../../src/circuits/attribution-influence.js';
import {
  localReplacement,
  preActivations,
  promptSources,
  replacementForward,
  type LocalReplacement,
  type ReplacementSources,
} from '../../src/circuits/replacement-model.js';
import { defaultTranscodersDir, loadTranscoders } from '../../src/circuits/transcoder-set.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { fixtureDir } from '../helpers/fixtures.js';
import { gpt2Config } from '../../src/models/gpt2.js';
import { initGpt2Weights } from '../../src/models/init.js';
import { saeConfig } from '../../src/sae/config.js';
import { SparseAutoencoder } from '../../src/sae/sae.js';

/** Target values of the frozen replacement model on some sources: feature pre-activations, then demeaned logits. */
async function targetValues(
  model: HookedTransformer,
  tcs: SparseAutoencoder[],
  lr: LocalReplacement,
  g: AttributionGraph,
  src: ReplacementSources,
): Promise<number[]> {
  const out = replacementForward(model, tcs, lr, src);
  const pre = await Promise.all(preActivations(tcs, out).map((p) => p.f32()));
  const last = reshape(slice(out.final, 1, g.nPos - 1, g.nPos), [1, model.cfg.dModel]);
  const logits = await matmul(last, transpose(demeanedUnembed(model, g.logits))).f32();
  return [
    ...g.features.map((f) => pre[f.layer]![f.pos * tcs[f.layer]!.dSae + f.index]!),
    ...Array.from(logits),
  ];
}

/** Row sums of the adjacency for the graph's targets (features, then logits). */
function incoming(g: AttributionGraph): number[] {
  const rows = [...g.features.keys(), ...g.logits.map((_, k) => logitNode(g, k))];
  return rows.map((r) => g.adjacency.subarray(r * g.n, (r + 1) * g.n).reduce((a, b) => a + b, 0));
}

const zeroSources = (lr: LocalReplacement): ReplacementSources => ({
  embed: Tensor.zeros(lr.embed.shape as number[]),
  acts: lr.acts.map((a) => Tensor.zeros(a.shape as number[])),
  errors: lr.errors.map((e) => Tensor.zeros(e.shape as number[])),
});

/** The prompt's sources with one node's value set to zero (a one-element mask on the host, fed as a tensor). */
function withoutNode(lr: LocalReplacement, g: AttributionGraph, node: number): ReplacementSources {
  const src = promptSources(lr);
  const zeroAt = (t: Tensor, flat: number) => {
    const m = new Float32Array(t.size).fill(1);
    m[flat] = 0;
    return mul(t, new Tensor(m, t.shape));
  };
  const zeroRow = (t: Tensor, pos: number) => {
    const d = t.shape[2]!;
    const m = new Float32Array(t.size).fill(1);
    m.fill(0, pos * d, (pos + 1) * d);
    return mul(t, new Tensor(m, t.shape));
  };
  if (node < g.features.length) {
    const f = g.features[node]!;
    src.acts[f.layer] = zeroAt(src.acts[f.layer]!, f.pos * src.acts[f.layer]!.shape[2]! + f.index);
  } else if (node < tokenNode(g, 0)) {
    const i = node - g.features.length;
    const l = Math.floor(i / g.nPos);
    src.errors[l] = zeroRow(src.errors[l]!, i % g.nPos);
  } else src.embed = zeroRow(src.embed, node - tokenNode(g, 0));
  return src;
}

describe('attribution graph on stories260K with the committed transcoders', () => {
  let model: HookedTransformer;
  let tcs: SparseAutoencoder[];
  let lr: LocalReplacement;
  let g: AttributionGraph;
  let clean: number[];

  beforeAll(async () => {
    model = HookedTransformer.load();
    tcs = loadTranscoders(defaultTranscodersDir(), model.cfg);
    const { tokens } = model.toTokens('Once upon a time, there was a little girl. She');
    lr = localReplacement(model, tcs, tokens);
    g = await attributionGraph(model, tcs, tokens, { batchSize: 37 });
    clean = await targetValues(model, tcs, lr, g, promptSources(lr));
  });

  it('the frozen replacement model with error nodes reproduces the real logits', async () => {
    const out = replacementForward(model, tcs, lr, promptSources(lr));
    const real = await model.run(lr.tokens).f32();
    const rep = await out.logits.f32();
    let worst = 0;
    for (let i = 0; i < real.length; i++) worst = Math.max(worst, Math.abs(real[i]! - rep[i]!));
    expect(worst).toBeLessThan(1e-5);
    // Its feature pre-activations are the transcoders' on the real run.
    const pre = await preActivations(tcs, out)[3]!.f32();
    const acts = await lr.acts[3]!.f32();
    for (let i = 0; i < pre.length; i++) expect(Math.max(pre[i]!, 0)).toBeCloseTo(acts[i]!, 5);
  });

  it('has every active feature and the top logits up to 95% probability', async () => {
    let active = 0;
    for (const a of lr.acts) for (const v of await a.f32()) if (v > 0) active++;
    expect(g.features.length).toBe(active);
    expect(g.logits.length).toBeGreaterThan(0);
    const p = g.logits.map((l) => l.prob);
    const before = p.slice(0, -1).reduce((a, b) => a + b, 0);
    expect(before).toBeLessThan(0.95);
    expect(g.n).toBe(g.features.length + (g.nLayers + 1) * g.nPos + g.logits.length);
  });

  it('is exactly linear: incoming effects plus the constant term give every target value', async () => {
    const constant = await targetValues(model, tcs, lr, g, zeroSources(lr));
    const sums = incoming(g);
    clean.forEach((v, t) => {
      const scale = 1 + Math.abs(v);
      expect(Math.abs(sums[t]! + constant[t]! - v) / scale).toBeLessThan(1e-4);
    });
    // The logit targets are the real model's demeaned logits.
    const last = reshape(slice(lr.logits, 1, g.nPos - 1, g.nPos), [model.cfg.vocabSize]);
    const demeaned = await sub(last, mean(last)).f32();
    g.logits.forEach((l, k) => expect(clean[g.features.length + k]!).toBeCloseTo(demeaned[l.token]!, 4));
  });

  it('edge weights equal finite differences of the frozen replacement model', async () => {
    // The strongest feature into the top logit, a weak one, the last error nodes and the last two tokens.
    const top = logitNode(g, 0);
    const row = g.adjacency.subarray(top * g.n, top * g.n + g.features.length);
    const strongest = row.reduce((best, v, i) => (Math.abs(v) > Math.abs(row[best]!) ? i : best), 0);
    const nodes = [
      strongest,
      Math.floor(g.features.length / 2),
      errorNode(g, 1, g.nPos - 1),
      errorNode(g, 4, g.nPos - 1),
      tokenNode(g, g.nPos - 1),
      tokenNode(g, g.nPos - 2),
    ];
    const targets = [...g.features.keys(), ...g.logits.map((_, k) => logitNode(g, k))];
    for (const s of nodes) {
      const without = await targetValues(model, tcs, lr, g, withoutNode(lr, g, s));
      targets.forEach((t, i) => {
        const effect = clean[i]! - without[i]!;
        expect(Math.abs(g.adjacency[t * g.n + s]! - effect)).toBeLessThan(1e-4 * (1 + Math.abs(effect)));
      });
    }
  });

  it('influence, pruning and scores follow circuit-tracer definitions (float64 reference)', async () => {
    const n = g.n;
    // Reference: normalised |A| and the power series until it vanishes, in float64 on the host.
    const An = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      let s = 0;
      for (let c = 0; c < n; c++) s += Math.abs(g.adjacency[r * n + c]!);
      for (let c = 0; c < n; c++) An[r * n + c] = Math.abs(g.adjacency[r * n + c]!) / Math.max(s, 1e-10);
    }
    const w = new Float64Array(n);
    g.logits.forEach((l, k) => (w[logitNode(g, k)] = l.prob));
    const infl = new Float64Array(n);
    let cur = w;
    for (let it = 0; it < 100; it++) {
      const next = new Float64Array(n);
      for (let r = 0; r < n; r++)
        if (cur[r]) for (let c = 0; c < n; c++) next[c]! += cur[r]! * An[r * n + c]!;
      if (next.every((v) => v === 0)) break;
      next.forEach((v, i) => (infl[i]! += v));
      cur = next;
    }
    const got = await nodeInfluence(g);
    infl.forEach((v, i) => expect(got[i]!).toBeCloseTo(v, 5));

    const e0 = errorNode(g, 0, 0);
    const t0 = tokenNode(g, 0);
    let tok = 0;
    let err = 0;
    for (let i = e0; i < t0; i++) err += infl[i]!;
    for (let i = t0; i < t0 + g.nPos; i++) tok += infl[i]!;
    let num = 0;
    let den = 0;
    for (let r = 0; r < n; r++) {
      let fromErr = 0;
      for (let c = e0; c < t0; c++) fromErr += An[r * n + c]!;
      num += (1 - fromErr) * (infl[r]! + w[r]!);
      den += infl[r]! + w[r]!;
    }
    const scores = await graphScores(g);
    expect(scores.replacement).toBeCloseTo(tok / (tok + err), 5);
    expect(scores.completeness).toBeCloseTo(num / den, 5);
    expect(scores.replacement).toBeGreaterThan(0);
    expect(scores.replacement).toBeLessThan(1);

    const p = await pruneGraph(g, 0.8, 0.98);
    // The nodes above the node threshold hold at least 80% of the influence; pruning keeps only such
    // feature and error nodes, and always the tokens and logits.
    const thr = thresholdFor(got, 0.8);
    let above = 0;
    let total = 0;
    got.forEach((v) => ((total += v), (above += v >= thr ? v : 0)));
    expect(above / total).toBeGreaterThanOrEqual(0.8 - 1e-6);
    for (let i = 0; i < t0; i++) if (p.nodes[i]) expect(got[i]!).toBeGreaterThanOrEqual(thr);
    for (let i = t0; i < n; i++) expect(p.nodes[i]).toBe(1);
    // Every kept feature has a kept incoming and a kept outgoing edge, every kept error an outgoing one.
    for (let i = 0; i < t0; i++) {
      if (!p.nodes[i]) continue;
      let out = false;
      let inc = false;
      for (let k = 0; k < n; k++) {
        out ||= p.edges[k * n + i] === 1 && p.nodes[k] === 1;
        inc ||= p.edges[i * n + k] === 1 && p.nodes[k] === 1;
      }
      expect(out).toBe(true);
      if (i < g.features.length) expect(inc).toBe(true);
    }
    // Kept edges join kept nodes only.
    for (let t = 0; t < n; t++)
      for (let s = 0; s < n; s++) if (p.edges[t * n + s]) expect(p.nodes[t]! && p.nodes[s]!).toBe(1);
  });

  it('exports circuit-tracer graph JSON', async () => {
    const p = await pruneGraph(g);
    const file = graphFile(g, p, {
      slug: 'test',
      scan: 'stories260K-transcoders',
      prompt: 'Once upon a time',
      tokenStrings: model.tokenStrings(g.tokens),
      logitStrings: model.tokenStrings(g.logits.map((l) => l.token)),
      dSae: 512,
      nodeThreshold: 0.8,
    });
    const json = JSON.parse(JSON.stringify(file)) as typeof file;
    expect(Object.keys(json).sort()).toEqual(['links', 'metadata', 'nodes', 'qParams']);
    expect(Object.keys(json.metadata).sort()).toEqual(
      ['node_threshold', 'prompt', 'prompt_tokens', 'scan', 'slug', 'transcoder_list'].sort(),
    );
    expect(json.qParams).toEqual({
      pinnedIds: [],
      supernodes: [],
      linkType: 'both',
      clickedId: '',
      sg_pos: '',
    });
    const ids = new Set(json.nodes.map((x) => x.node_id));
    expect(ids.size).toBe(json.nodes.length);
    for (const l of json.links) {
      expect(ids.has(l.source) && ids.has(l.target)).toBe(true);
      expect(typeof l.weight).toBe('number');
    }
    const types = new Set(json.nodes.map((x) => x.feature_type));
    expect(
      [...types].every((t) =>
        ['cross layer transcoder', 'mlp reconstruction error', 'embedding', 'logit'].includes(t),
      ),
    ).toBe(true);
    const emb = json.nodes.filter((x) => x.feature_type === 'embedding');
    expect(emb.map((x) => x.node_id)).toEqual(g.tokens.map((t, i) => `E_${t}_${i}`));
    const logits = json.nodes.filter((x) => x.feature_type === 'logit');
    expect(logits.map((x) => x.node_id)).toEqual(g.logits.map((l) => `6_${l.token}_${g.nPos - 1}`));
    expect(logits[0]!.is_target_logit).toBe(true);
    for (const f of json.nodes.filter((x) => x.feature_type === 'cross layer transcoder')) {
      const [layer, index, pos] = f.node_id.split('_').map(Number);
      expect(f.layer).toBe(String(layer));
      expect(f.ctx_idx).toBe(pos);
      expect(f.feature).toBe(index! + 1000 * layer!);
      expect(f.jsNodeId).toBe(`${layer}_${index}-0`);
      expect(f.activation).toBeGreaterThan(0);
    }
    for (const e of json.nodes.filter((x) => x.feature_type === 'mlp reconstruction error')) {
      expect(e.node_id).toMatch(/^0_\d+_\d+$/);
      expect(e.feature).toBe(-1);
    }
    // A link's weight is the direct effect in the adjacency.
    expect(json.links.length).toBeGreaterThan(0);
    const index = new Map<string, number>();
    g.features.forEach((f, i) => index.set(`${f.layer}_${f.index}_${f.pos}`, i));
    g.tokens.forEach((t, i) => index.set(`E_${t}_${i}`, tokenNode(g, i)));
    g.logits.forEach((l, k) => index.set(`6_${l.token}_${g.nPos - 1}`, logitNode(g, k)));
    for (let l = 0; l < g.nLayers; l++)
      for (let q = 0; q < g.nPos; q++) index.set(`0_${l}_${q}`, errorNode(g, l, q));
    for (const l of json.links)
      expect(l.weight).toBe(g.adjacency[index.get(l.target)! * g.n + index.get(l.source)!]);
  });
});

describe.each(['gpt2-tiny', 'pythia-tiny', 'qwen3-tiny', 'gemma2-tiny'])(
  'attribution graph on %s with random transcoders (biases, LayerNorm, parallel blocks, GQA, post-norms)',
  (name) => {
    it('is exactly linear and matches finite differences', async () => {
      const model = HookedTransformer.load(fixtureDir(name));
      const D = model.cfg.dModel;
      const tcs = Array.from({ length: model.cfg.nLayers }, (_, l) =>
        SparseAutoencoder.init(
          saeConfig({
            architecture: 'standard',
            dIn: D,
            dSae: 24,
            dOut: D,
            hookName: `blocks.${l}.ln2.hook_normalized`,
            hookNameOut: `blocks.${l}.hook_mlp_out`,
          }),
          { seed: l, decoderNorm: 0.5 },
        ),
      );
      const tokens = Tensor.from([3, 17, 5, 42, 8, 77, 21], [1, 7], 'int64');
      const lr = localReplacement(model, tcs, tokens);
      const g = await attributionGraph(model, tcs, tokens, { batchSize: 16 });
      expect(g.features.length).toBeGreaterThan(10);
      const real = await model.run(tokens).f32();
      const rep = await replacementForward(model, tcs, lr, promptSources(lr)).logits.f32();
      real.forEach((v, i) => expect(Math.abs(rep[i]! - v)).toBeLessThan(1e-5));
      const clean = await targetValues(model, tcs, lr, g, promptSources(lr));
      const constant = await targetValues(model, tcs, lr, g, zeroSources(lr));
      const sums = incoming(g);
      clean.forEach((v, t) =>
        expect(Math.abs(sums[t]! + constant[t]! - v)).toBeLessThan(1e-4 * (1 + Math.abs(v))),
      );
      const targets = [...g.features.keys(), ...g.logits.map((_, k) => logitNode(g, k))];
      for (const s of [0, g.features.length - 1, errorNode(g, 0, 3), tokenNode(g, 2)]) {
        const without = await targetValues(model, tcs, lr, g, withoutNode(lr, g, s));
        targets.forEach((t, i) => {
          const effect = clean[i]! - without[i]!;
          expect(Math.abs(g.adjacency[t * g.n + s]! - effect)).toBeLessThan(1e-4 * (1 + Math.abs(effect)));
        });
      }
    });
  },
);

describe('attribution graph of a hand-made model (known answers)', () => {
  // d_model 2, vocab 3, two layers; attention and the real MLPs write nothing, so the residual stream is the
  // token embedding and each error node is minus its transcoder's output. Transcoder 0 reads dim 0 and writes
  // dim 1; transcoder 1 reads 2 x dim 1 and writes dim 0.
  const E = [1, 0.5, 2, 1, 0.5, 3]; // [vocab, d_model]
  const WU = [1, 0, -1, 0, 2, 1]; // [d_model, vocab]: demeaned columns u0 = [1,-1], u1 = [0,1], u2 = [-1,0]
  let g: AttributionGraph;

  beforeAll(async () => {
    const cfg = gpt2Config({
      n_embd: 2,
      n_head: 1,
      n_layer: 2,
      n_positions: 8,
      vocab_size: 3,
      normalization_type: null,
    });
    const w = initGpt2Weights(cfg, { seed: 1 });
    for (const [k, t] of w)
      if (k.startsWith('blocks.') || k.startsWith('pos_embed')) w.set(k, Tensor.zeros(t.shape as number[]));
    w.set('embed.W_E', new Tensor(Float32Array.from(E), [3, 2]));
    w.set('unembed.W_U', new Tensor(Float32Array.from(WU), [2, 3]));
    const model = new HookedTransformer(cfg, w, null);
    const tc = (l: number, enc: number[], dec: number[], bEnc: number) =>
      new SparseAutoencoder(
        saeConfig({
          architecture: 'standard',
          dIn: 2,
          dSae: 1,
          dOut: 2,
          hookName: `blocks.${l}.hook_resid_mid`,
          hookNameOut: `blocks.${l}.hook_mlp_out`,
        }),
        new Map([
          ['W_enc', new Tensor(Float32Array.from(enc), [2, 1])],
          ['W_dec', new Tensor(Float32Array.from(dec), [1, 2])],
          ['b_enc', new Tensor(Float32Array.from([bEnc]), [1])],
          ['b_dec', Tensor.zeros([2])],
        ]),
      );
    const tcs = [tc(0, [1, 0], [0, 1], -0.75), tc(1, [0, 2], [1, 0], -1)];
    g = await attributionGraph(model, tcs, Tensor.from([0, 1, 2], [1, 3], 'int64'), { logitProb: 0.99 });
  });

  it('finds the active features and logits', () => {
    // Feature 0 = relu(E[t][0] - 0.75): 0.25, 1.25, 0; feature 1 = relu(2 E[t][1] - 1): 0, 1, 5.
    expect(g.features).toEqual([
      { layer: 0, pos: 0, index: 0, activation: 0.25 },
      { layer: 0, pos: 1, index: 0, activation: 1.25 },
      { layer: 1, pos: 1, index: 0, activation: 1 },
      { layer: 1, pos: 2, index: 0, activation: 5 },
    ]);
    // Logits at the last position: E[2] W_U = [0.5, 6, 2.5].
    expect(g.logits.map((l) => l.token)).toEqual([1, 2]);
  });

  it('has the direct effects computed by hand', () => {
    const A = (t: number, s: number) => g.adjacency[t * g.n + s]!;
    const expected = new Map<string, number>([
      [`0,${tokenNode(g, 0)}`, 1], // E[0][0]
      [`1,${tokenNode(g, 1)}`, 2], // E[1][0]
      [`2,${tokenNode(g, 1)}`, 2], // 2 E[1][1]
      [`3,${tokenNode(g, 2)}`, 6], // 2 E[2][1]
      ['2,1', 2.5], // a = 1.25 times W_dec0 . W_enc1 = 2
      [`2,${errorNode(g, 0, 1)}`, -2.5], // the error is minus the transcoder's output
      [`${logitNode(g, 0)},${tokenNode(g, 2)}`, 3], // E[2] . u1
      [`${logitNode(g, 1)},${tokenNode(g, 2)}`, -0.5], // E[2] . u2
      [`${logitNode(g, 1)},3`, -5], // 5 W_dec1 . u2
      [`${logitNode(g, 1)},${errorNode(g, 1, 2)}`, 5],
    ]);
    for (let t = 0; t < g.n; t++)
      for (let s = 0; s < g.n; s++) expect(A(t, s)).toBeCloseTo(expected.get(`${t},${s}`) ?? 0, 5);
  });
});
