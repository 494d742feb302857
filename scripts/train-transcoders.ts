/**
 * Trains the committed stories260K transcoders (assets/stories260K-transcoders/layer_L, one SAELens folder per
 * layer): a ReLU transcoder per layer from the MLP's input after its norm (blocks.L.ln2.hook_normalized) to
 * its output (blocks.L.hook_mlp_out), on the built-in corpus of stories260K's own samples
 * (assets/corpus/stories260K-samples.txt), seed 0. Each layer is one `sonde sae train` run; the held-out
 * numbers (L0, fraction of variance explained) go to the folder's README.md.
 *   npx tsx scripts/train-transcoders.ts [width=512] [rows=1048576] [out=assets/stories260K-transcoders]
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const width = Number(process.argv[2] ?? 512);
const rows = Number(process.argv[3] ?? 1 << 20);
const outDir = path.resolve(process.argv[4] ?? 'assets/stories260K-transcoders');
const LAYERS = 5;
// The harvested activations are scratch: they live outside the repository.
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-transcoders-'));
fs.mkdirSync(outDir, { recursive: true });

interface Eval {
  l0: number;
  explainedVariance: number;
  ceLossRecovered: number | null;
  deadLatents: number;
  measuredOn: string;
}
const results: { layer: number; eval: Eval; seconds: number }[] = [];
for (let l = 0; l < LAYERS; l++) {
  const args = [
    '--import',
    'tsx',
    'src/cli/index.ts',
    'sae',
    'train',
    '--hook',
    `blocks.${l}.ln2.hook_normalized`,
    '--hook-out',
    `blocks.${l}.hook_mlp_out`,
    '--width',
    String(width),
    '--n-tokens',
    String(rows),
    '--seed',
    '0',
    '--store',
    path.join(scratch, `layer_${l}`),
    '--checkpoint',
    path.join(scratch, `layer_${l}.checkpoint`),
    '--out',
    path.join(outDir, `layer_${l}`),
    '--force',
    '--json',
  ];
  const doc = JSON.parse(execFileSync(process.execPath, args, { encoding: 'utf8' })) as {
    eval: Eval;
    seconds: number;
  };
  // Paths in the metadata relative to the repository, so the committed folders name no machine's paths.
  const cfgFile = path.join(outDir, `layer_${l}`, 'cfg.json');
  const cfg = JSON.parse(fs.readFileSync(cfgFile, 'utf8')) as { metadata: Record<string, unknown> };
  for (const key of ['model_path', 'dataset_path'])
    if (typeof cfg.metadata[key] === 'string')
      cfg.metadata[key] = path.relative(process.cwd(), cfg.metadata[key] as string);
  fs.writeFileSync(cfgFile, JSON.stringify(cfg, null, 2) + '\n');
  results.push({ layer: l, eval: doc.eval, seconds: doc.seconds });
  console.error(
    `layer ${l}: L0 ${doc.eval.l0.toFixed(2)}, variance explained ${doc.eval.explainedVariance.toFixed(3)}`,
  );
}
fs.rmSync(scratch, { recursive: true, force: true });

const lines = [
  '# stories260K transcoders',
  '',
  `One ReLU transcoder per layer of the built-in stories260K (width ${width}), reading the MLP's input after`,
  "its norm (`blocks.L.ln2.hook_normalized`) and predicting the MLP's output (`blocks.L.hook_mlp_out`).",
  `Trained on ${rows} rows of assets/corpus/stories260K-samples.txt (stories sampled from the model itself),`,
  'seed 0, by `npx tsx scripts/train-transcoders.ts` (SAELens folders: cfg.json, sae_weights.safetensors).',
  '`sonde graph` uses them by default on the built-in model.',
  '',
  `Measured on ${results[0]?.eval.measuredOn ?? 'held-out documents'}, never trained on:`,
  '',
  '| layer | L0 | variance explained | CE loss recovered | dead latents |',
  '|---|---|---|---|---|',
  ...results.map(
    (r) =>
      `| ${r.layer} | ${r.eval.l0.toFixed(2)} | ${r.eval.explainedVariance.toFixed(3)} | ${r.eval.ceLossRecovered?.toFixed(3) ?? '-'} | ${r.eval.deadLatents} of ${width} |`,
  ),
  '',
];
fs.writeFileSync(path.join(outDir, 'README.md'), lines.join('\n'));
console.error(`wrote ${outDir}`);
