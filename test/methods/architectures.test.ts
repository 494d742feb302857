// The decompositions hold on every architecture: the residual splits into components that sum to it
// (per-head shares through Gemma's post-attention norm too), and DLA's parts sum to the logit difference.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { residualDecomposition } from '../../src/methods/decompose.js';
import { directLogitAttribution } from '../../src/methods/dla.js';
import { activationPatching } from '../../src/methods/patching.js';

const NAMES = [
  'gpt-neo-tiny',
  'pythia-tiny',
  'gemma-tiny',
  'gemma2-tiny',
  'gemma3-tiny',
  'mistral-tiny',
  'qwen3-tiny',
];
const IDS = [3, 17, 42, 8, 60, 5, 91, 23, 11, 77, 2, 40];

describe.each(NAMES)('%s', (name) => {
  const model = HookedTransformer.load(path.resolve('test/fixtures', name), { compile: 'never' });

  it('the residual decomposition sums to the final residual', async () => {
    const r = await residualDecomposition(model, [IDS]);
    const scale = Math.max(...r.residual.map(Math.abs));
    expect(r.maxError / scale).toBeLessThan(1e-5);
    expect(r.components.filter((c) => c.kind === 'head')).toHaveLength(model.cfg.nLayers * model.cfg.nHeads);
  });

  it("DLA's components sum to the logit difference", async () => {
    const r = await directLogitAttribution(model, [IDS], { answer: 7, wrong: 9 });
    expect(r.error).toBeLessThan(1e-4 * Math.max(1, Math.abs(r.logitDiff)));
  });

  it('patching every residual stream back to clean restores the clean metric (1)', async () => {
    const corrupt = [...IDS];
    corrupt[4] = 61;
    const r = await activationPatching(model, {
      clean: IDS,
      corrupt,
      answer: 7,
      wrong: 9,
      target: 'resid_pre',
      perPosition: false,
    });
    for (const layer of r.values) expect(layer[0]![0]!).toBeCloseTo(1, 4);
  });
});
