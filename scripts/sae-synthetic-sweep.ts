// MMCS of SAEs on synthetic features in superposition (512 features in 256 dimensions, ~5 active,
// frequencies 0.99^i; src/sae/synthetic.ts) across L1 coefficients, k and widths, each run with
// `sonde sae train`'s defaults except the swept setting, ~1M fresh rows. Writes docs/sae-synthetic.json.
//   npx tsx scripts/sae-synthetic-sweep.ts [--seeds 0,1,2]
import fs from 'node:fs';
import { rerunWithTunedMalloc } from '../src/engine/backend/malloc.js';
import {
  evaluateRows,
  meanMaxCosine,
  SyntheticFeatures,
  trainSae,
  type SaeTrainOptions,
} from '../src/index.js';

const code = await rerunWithTunedMalloc();
if (code !== null) process.exit(code);

const seedsArg = process.argv.indexOf('--seeds');
const seeds = seedsArg > 0 ? process.argv[seedsArg + 1]!.split(',').map(Number) : [0];
const runs: Partial<SaeTrainOptions>[] = [
  {},
  { coefficient: 0.25 },
  { coefficient: 1 },
  { coefficient: 2 },
  { width: 256 },
  { width: 1024 },
  { architecture: 'topk', k: 8 },
  { architecture: 'topk', k: 32 },
  { architecture: 'batchtopk', k: 8 },
];
const results: Record<string, unknown>[] = [];
for (const seed of seeds) {
  for (const r of seed === seeds[0] ? runs : runs.slice(0, 1)) {
    const syn = new SyntheticFeatures({ seed });
    const t0 = performance.now();
    const res = await trainSae(syn.trainingData(), {
      architecture: 'standard',
      width: 512,
      hookName: 'synthetic',
      totalRows: 1 << 20,
      seed,
      ...r,
    });
    const { mmcs, perFeature } = meanMaxCosine(syn.directions, await res.sae.param('W_dec').f32(), 256);
    const ev = await evaluateRows(res.sae, syn.rows(16384, 0xe7a1).x, 256);
    const row = {
      seed,
      ...r,
      architecture: r.architecture ?? 'standard',
      width: r.width ?? 512,
      mmcs,
      rarest128: Array.from(perFeature.slice(384)).reduce((a, b) => a + b, 0) / 128,
      recovered: Array.from(perFeature).filter((c) => c >= 0.9).length,
      l0: ev.l0,
      explainedVariance: ev.explainedVariance,
      dead: ev.deadLatents.length,
      seconds: (performance.now() - t0) / 1000,
    };
    console.error(JSON.stringify(row));
    results.push(row);
  }
}
fs.writeFileSync('docs/sae-synthetic.json', JSON.stringify(results, null, 1));
