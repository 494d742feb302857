// EAP and EAP-IG on the architecture fixtures, against checks that do not go through eap.ts: the
// derivative of the patched metric by finite differences (EAP is that linearisation), and a slow
// EAP-IG written here from plain gradient runs with split-input hooks.
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { edgeAttribution } from '../../src/circuits/eap.js';
import type { Receiver } from '../../src/circuits/graph.js';
import type { CircuitMetric } from '../../src/circuits/metric.js';
import type { CircuitPair } from '../../src/circuits/pairs.js';
import { circuitTask, patchedMetrics, type CircuitTask } from '../../src/circuits/task.js';
import { add, mul, sub } from '../../src/engine/ops/elementwise.js';
import { logSoftmax } from '../../src/engine/ops/nn.js';
import { sum } from '../../src/engine/ops/reduce.js';
import { reshape } from '../../src/engine/ops/shape.js';
import { Rng } from '../../src/engine/random.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { runModel } from '../../src/hooks/run-model.js';
import { randomPairs } from '../helpers/circuit-pairs.js';
import { fixtureDir } from '../helpers/fixtures.js';

const ARCHS = ['gpt2-tiny', 'pythia-tiny', 'llama-tiny', 'gemma2-tiny', 'qwen3-tiny'];

/** The metric as a linear form of the logits (logit-diff) or log-probs (loss), written apart from metric.ts. */
function metricWeights(
  metric: 'logit-diff' | 'loss',
  pairs: CircuitPair[],
  N: number,
  vocab: number,
): Tensor {
  const P = pairs[0]!.clean.length;
  const w = new Float32Array(pairs.length * P * vocab);
  pairs.forEach((p, b) => {
    const at = (pos: number, tok: number) => (b * P + pos) * vocab + tok;
    if (metric === 'logit-diff') {
      w[at(P - 1, p.answer!)]! += 1 / N;
      w[at(P - 1, p.wrong!)]! -= 1 / N;
    } else for (let pos = 0; pos < P - 1; pos++) w[at(pos, p.clean[pos + 1]!)]! -= 1 / (N * (P - 1));
  });
  return new Tensor(w, [pairs.length, P, vocab]);
}

/** The hook a receiver reads and its index along that hook's head axis (0 for unsplit hooks). */
function receiverHook(r: Receiver, nLayers: number): [string, number] {
  if (r.kind === 'logits') return [`blocks.${nLayers - 1}.hook_resid_post`, 0];
  if (r.kind === 'mlp') return [`blocks.${r.layer}.hook_mlp_in`, 0];
  return [`blocks.${r.layer}.hook_${r.kind}_input`, r.head!];
}

/**
 * EAP-IG the slow way: for α = k/steps, one gradient run on the clean tokens whose embeddings are
 * corrupt + α(clean − corrupt), each receiver's input gradient read from a backward hook; score(s->r) =
 * mean over α of Σ grad_r · (clean − corrupt output of s).
 */
async function slowEapIg(task: CircuitTask, steps: number): Promise<Float64Array> {
  const { model, graph } = task;
  const L = model.cfg.nLayers;
  const vocab = model.cfg.vocabSize;
  const D = model.cfg.dModel;
  const N = task.pairs.length;
  const hooks = [...new Set(graph.receivers.map((r) => receiverHook(r, L)[0]))];
  const scores = new Float64Array(graph.edges.length);
  for (const b of task.batches) {
    const [n, P] = b.batch.clean.shape as [number, number];
    const corruptCache = model.runWithCache(b.batch.corrupt, { names: ['blocks.0.hook_resid_pre'] }).cache;
    const corruptEmbed = corruptCache.get('blocks.0.hook_resid_pre');
    const W = metricWeights(task.metric as 'logit-diff' | 'loss', b.batch.pairs, N, vocab);
    // Each sender's clean − corrupt output, [n, pos, d_model], from the task's recorded runs.
    const diffs: Float32Array[] = [];
    for (let g = 0; g < b.cleanSenders.length; g++) {
      const c = await b.cleanSenders[g]!.f32();
      const k = await b.corruptSenders[g]!.f32();
      const count = b.cleanSenders[g]!.shape[2]!;
      for (let h = 0; h < count; h++) {
        const d = new Float32Array(n * P * D);
        for (let i = 0; i < n * P; i++)
          for (let x = 0; x < D; x++)
            d[i * D + x] = c[(i * count + h) * D + x]! - k[(i * count + h) * D + x]!;
        diffs.push(d);
      }
    }
    for (let k = 1; k <= steps; k++) {
      const alpha = k / steps;
      const grads = new Map<string, Tensor>();
      const hook = model.hookPoint(
        {
          fwd: [
            {
              name: 'blocks.0.hook_resid_pre',
              fn: (x) =>
                add(corruptEmbed, mul(sub(x, corruptEmbed), alpha))
                  .detach()
                  .requireGrad(),
            },
            // hook_mlp_in hands on resid_mid itself, which also carries on down the residual stream: a
            // gradient hook on it would see both paths. A copy of it feeds the MLP alone.
            ...hooks
              .filter((name) => name.endsWith('hook_mlp_in'))
              .map((name) => ({ name, fn: (x: Tensor) => reshape(reshape(x, [-1]), x.shape) })),
          ],
          bwd: hooks.map((name) => ({ name, fn: (g: Tensor) => void grads.set(name, g) })),
        },
        true,
      );
      const logits = runModel(model, b.batch.clean, { hook, useAttnResult: true, useSplitInputs: true });
      const metric = task.metric === 'loss' ? sum(mul(logSoftmax(logits, -1), W)) : sum(mul(logits, W));
      metric.backward();
      const read = new Map<string, Float32Array>();
      for (const [name, g] of grads) read.set(name, await g.f32());
      graph.edges.forEach((e, i) => {
        const r = graph.receivers[e.receiver]!;
        const [name, j] = receiverHook(r, L);
        const g = read.get(name)!;
        const width = g.length / (n * P * D); // heads along the hook's third axis, or 1
        const d = diffs[e.sender]!;
        let s = 0;
        for (let row = 0; row < n * P; row++)
          for (let x = 0; x < D; x++) s += g[(row * width + j) * D + x]! * d[row * D + x]!;
        scores[i]! += s / steps;
      });
    }
  }
  return scores;
}

const maxAbs = (xs: ArrayLike<number>) => Array.from(xs).reduce((m, x) => Math.max(m, Math.abs(x)), 0);

describe.each(ARCHS)('EAP and EAP-IG on %s', (arch) => {
  const model = HookedTransformer.load(fixtureDir(arch), { compile: 'never' });
  const pairs = randomPairs(model.cfg.vocabSize, 7);
  const METRICS: CircuitMetric[] = ['logit-diff', 'loss'];

  it.each(METRICS)(
    'EAP (%s) is the derivative of the metric as an edge is patched by a fraction t (finite differences)',
    async (metric) => {
      const task = await circuitTask(model, pairs, { metric });
      const { graph } = task;
      const E = graph.edges.length;
      const scores = await edgeAttribution(task);
      // The 5 largest edges and 10 drawn at random.
      const bySize = Array.from(scores.keys()).sort((a, b) => Math.abs(scores[b]!) - Math.abs(scores[a]!));
      const rng = new Rng(3);
      const sample = new Set(bySize.slice(0, 5));
      while (sample.size < Math.min(E, 15)) sample.add(rng.int(E));
      // Variants patch edge e by ±h, ±2h: Richardson's central difference, error O(h⁴).
      const h = 0.01;
      const ts = [h, -h, 2 * h, -2 * h];
      const edges = [...sample];
      const values = new Float32Array(edges.length * ts.length * E);
      edges.forEach((e, i) => ts.forEach((t, j) => (values[(i * ts.length + j) * E + e] = t)));
      const m = await patchedMetrics(task, values, edges.length * ts.length);
      const scale = maxAbs(scores);
      edges.forEach((e, i) => {
        const [p1, m1, p2, m2] = m.slice(i * 4, i * 4 + 4) as [number, number, number, number];
        const d1 = (p1 - m1) / (2 * h);
        const d2 = (p2 - m2) / (4 * h);
        const fd = -(4 * d1 - d2) / 3;
        // Float32 metrics over h = 0.01: worst error seen 5e-4 of the largest score (gemma2's curvature).
        expect(Math.abs(scores[e]! - fd), graph.edges[e]!.name).toBeLessThan(2e-3 * scale);
      });
    },
  );

  it.each(METRICS)(
    'EAP-IG (%s) equals a slow EAP-IG from plain gradient runs; one step is EAP',
    async (metric) => {
      const task = await circuitTask(model, pairs, { metric });
      for (const steps of [1, 4]) {
        const got = await edgeAttribution(task, { steps });
        const want = await slowEapIg(task, steps);
        const scale = maxAbs(want);
        expect(maxAbs(got.map((g, i) => g - want[i]!)), `${steps} steps`).toBeLessThan(2e-5 * scale);
        if (steps === 1) expect(got).toEqual(await edgeAttribution(task));
      }
    },
  );

  it('EAP (kl) is zero: the clean run is where KL from the clean run is least', async () => {
    const scores = await edgeAttribution(await circuitTask(model, pairs, { metric: 'kl' }));
    expect(maxAbs(scores)).toBeLessThan(1e-6);
  });
});
