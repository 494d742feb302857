// The L0 / explained-variance / CE-loss-recovered trade-off of SAEs on stories260K (README, SAEs).
// Trains TopK SAEs over k and standard (L1) SAEs over the coefficient at two residual-stream hooks, on
// the built-in corpus (3,000 stories sampled from stories260K at T=1, seed 0): the first 2,400 stories
// for training, the last 600 held out for evaluation. Writes docs/sae-tradeoff.json and .svg.
//   npx tsx scripts/sae-tradeoff.ts [--quick]
import fs from 'node:fs';
import path from 'node:path';
import { rerunWithTunedMalloc } from '../src/engine/backend/malloc.js';
import {
  ActivationStore,
  HookedTransformer,
  defaultCorpusPath,
  evaluateSae,
  harvestActivations,
  readCorpus,
  saveSaeLens,
  storeTrainingData,
  trainSae,
  type SaeArchitecture,
} from '../src/index.js';
import { writePlot } from '../src/plot/vega.js';

const code = await rerunWithTunedMalloc();
if (code !== null) process.exit(code);

const quick = process.argv.includes('--quick');
// --plot-only: redraw docs/sae-tradeoff.svg from docs/sae-tradeoff.json.
const plotOnly = process.argv.includes('--plot-only');
const work = path.resolve('scratch/sae-tradeoff');
fs.mkdirSync(work, { recursive: true });
const model = HookedTransformer.load();
const docs = readCorpus(defaultCorpusPath());
const train = docs.slice(0, 2400);
const held = docs.slice(2400);
const hooks = ['blocks.1.hook_resid_post', 'blocks.3.hook_resid_post'];
const runs: { arch: SaeArchitecture; k?: number; coefficient?: number }[] = [
  ...[4, 8, 16, 32].map((k) => ({ arch: 'topk' as const, k })),
  ...[0.3, 1, 3, 10].map((coefficient) => ({ arch: 'standard' as const, coefficient })),
];
const width = 512;
const results: Record<string, unknown>[] = plotOnly
  ? (JSON.parse(fs.readFileSync('docs/sae-tradeoff.json', 'utf8')) as { results: Record<string, unknown>[] })
      .results
  : [];
for (const hook of plotOnly ? [] : hooks) {
  const dir = path.join(work, `acts-${hook}`);
  const m = await harvestActivations(model, { hook, texts: train, outDir: dir });
  console.error(`${hook}: ${m.rows} training rows`);
  const data = storeTrainingData(ActivationStore.open(dir));
  for (const r of quick ? runs.slice(1, 2) : runs) {
    const t0 = performance.now();
    const res = await trainSae(data, {
      architecture: r.arch,
      width,
      k: r.k,
      coefficient: r.coefficient,
      hookName: hook,
      totalRows: quick ? 1 << 16 : 1 << 20,
      metadata: { model_name: 'stories260K', dataset_path: 'assets/corpus/stories260K-samples.txt[0:2400]' },
    });
    const seconds = (performance.now() - t0) / 1000;
    const ev = await evaluateSae(model, res.sae, held, { maxTokens: 40_000 });
    const name = `${hook}-${r.arch}-${r.k ?? r.coefficient}`;
    await saveSaeLens(res.sae, path.join(work, 'saes', name), { sparsity: res.logDensity });
    const row = {
      hook,
      arch: r.arch,
      k: r.k ?? null,
      coefficient: r.coefficient ?? null,
      l0: ev.l0,
      explainedVariance: ev.explainedVariance,
      ceRecovered: ev.ce.recovered,
      ceClean: ev.ce.clean,
      ceSpliced: ev.ce.spliced,
      ceZero: ev.ce.zeroAblated,
      dead: ev.deadLatents.length,
      dense: ev.denseLatents.length,
      seconds,
    };
    console.error(JSON.stringify(row));
    results.push(row);
  }
}
const outJson = quick ? path.join(work, 'tradeoff.json') : 'docs/sae-tradeoff.json';
if (!plotOnly) fs.writeFileSync(outJson, JSON.stringify({ width, results }, null, 1));
const layer = (y: string, title: string) => ({
  width: 260,
  height: 200,
  mark: { type: 'line' as const, point: true },
  encoding: {
    x: {
      field: 'l0',
      type: 'quantitative' as const,
      scale: { type: 'log' as const },
      title: 'L0 (active latents per token)',
    },
    y: { field: y, type: 'quantitative' as const, title, scale: { zero: false } },
    color: { field: 'hook', type: 'nominal' as const, legend: { labelLimit: 260 } },
    strokeDash: { field: 'arch', type: 'nominal' as const },
  },
});
await writePlot(quick ? path.join(work, 'tradeoff.svg') : 'docs/sae-tradeoff.svg', {
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
  title: `stories260K SAEs (width ${width}): sparsity vs fidelity, held-out stories`,
  data: { values: results },
  hconcat: [layer('explainedVariance', 'explained variance'), layer('ceRecovered', 'CE loss recovered')],
});
console.error(`wrote ${outJson}`);
