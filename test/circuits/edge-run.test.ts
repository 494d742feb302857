import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { mul, sub } from '../../src/engine/ops/elementwise.js';
import { Tensor } from '../../src/engine/tensor.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { runModel } from '../../src/hooks/run-model.js';
import { edgeOffsets, edgeRun, receiverGroups } from '../../src/circuits/edge-run.js';
import { circuitGraph } from '../../src/circuits/graph.js';
import { int64 } from '../../src/methods/tokens.js';
import { ARCHITECTURE_FIXTURES, fixtureDir } from '../helpers/fixtures.js';

const CLEAN = [
  [3, 17, 9, 22, 5, 40, 11],
  [8, 1, 30, 12, 7, 2, 19],
];
const CORRUPT = [
  [3, 17, 9, 25, 5, 41, 11],
  [8, 6, 30, 12, 33, 2, 19],
];

function maxDiff(a: Float32Array, b: Float32Array): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

describe.each([...ARCHITECTURE_FIXTURES, 'induction-2l'])('edge runs on %s', (name) => {
  const model = HookedTransformer.load(fixtureDir(name), { compile: 'never' });
  const graph = circuitGraph(model.cfg);
  const E = graph.edges.length;
  const clean = int64(CLEAN);
  const corrupt = int64(CORRUPT);
  const plainClean = model.run(CLEAN).f32Sync();
  const plainCorrupt = model.run(CORRUPT).f32Sync();
  const corruptSenders = edgeRun(model, corrupt, { graph, corrupt: null }).senders;
  const scale = Math.max(...plainClean.map(Math.abs));

  it('senders sum to the residual stream: nothing patched is the clean run, everything patched the corrupt run', async () => {
    const none = edgeRun(model, clean, {
      graph,
      corrupt: corruptSenders,
      patch: { values: new Float32Array(E), variants: 1 },
    });
    expect(maxDiff(await none.logits.f32(), plainClean)).toBeLessThan(1e-4 * scale);
    const values = new Float32Array(2 * E);
    values.fill(1, E); // variant 0 patches nothing, variant 1 everything
    const both = await edgeRun(model, clean, {
      graph,
      corrupt: corruptSenders,
      patch: { values, variants: 2 },
    }).logits.f32();
    const half = plainClean.length;
    expect(maxDiff(both.subarray(0, half), plainClean)).toBeLessThan(1e-4 * scale);
    expect(maxDiff(both.subarray(half), plainCorrupt)).toBeLessThan(1e-4 * scale);
  });

  it("patching every edge into one receiver is patching that receiver's input with its corrupt value", async () => {
    // The last layer's first k receiver (a KV head on GQA models) and, where there is one, its MLP.
    const groups = receiverGroups(graph, model.cfg.nLayers);
    const L = model.cfg.nLayers - 1;
    const targets = groups.filter(
      (g) => g.hook === `blocks.${L}.hook_k_input` || g.hook === `blocks.${L}.hook_mlp_in`,
    );
    const offsets = edgeOffsets(graph);
    for (const g of targets) {
      // Every edge into the group's first receiver (they are consecutive in graph.edges).
      const values = new Float32Array(E);
      values.fill(1, offsets[g.first]!, offsets[g.first]! + g.upstream);
      const patched = await edgeRun(model, clean, {
        graph,
        corrupt: corruptSenders,
        patch: { values, variants: 1 },
      }).logits.f32();
      // The same by activation patching the split input of the corrupt run.
      const store = new Map<string, Tensor>();
      runModel(model, corrupt, {
        hook: model.hookPoint({ cache: (n) => n === g.hook, store }),
        useAttnResult: true,
        useSplitInputs: true,
      });
      const source = store.get(g.hook)!;
      const hook = model.hookPoint({
        fwd: [
          {
            name: g.hook,
            fn: (x) => {
              if (!g.hook.endsWith('_input')) return source;
              // Only receiver 0 of the group (one head) takes the corrupt value.
              const mask = new Float32Array(x.shape[2]!);
              mask[0] = 1;
              const m = new Tensor(mask, [1, 1, x.shape[2]!, 1]);
              return sub(x, mul(sub(x, source), m));
            },
          },
        ],
      });
      const expected = await runModel(model, clean, {
        hook,
        useAttnResult: true,
        useSplitInputs: true,
      }).f32();
      expect(maxDiff(patched, expected), g.hook).toBeLessThan(1e-4 * scale);
      expect(maxDiff(expected, plainClean), `${g.hook} changes something`).toBeGreaterThan(1e-6);
    }
  });
});
