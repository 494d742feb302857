// sonde sae train: train an SAE or transcoder on a model's activations over a corpus (harvested to a
// resumable on-disk store first), on a matrix of activations the user already has (--activations), or on
// synthetic ground-truth features (--synthetic, reports MMCS). Writes an SAELens-format folder.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { ActivationStore } from '../../sae/activation-store.js';
import { SAE_ARCHITECTURES, type SaeArchitecture } from '../../sae/config.js';
import { evaluateRows, type SaeRowMetrics } from '../../sae/evaluate.js';
import { DEFAULT_HOLDOUT, splitData, SPLIT_KEY, type TrainingSplit } from '../../sae/provenance.js';
import { saveSaeLens } from '../../sae/saelens.js';
import type { SparseAutoencoder } from '../../sae/sae.js';
import { meanMaxCosine, SyntheticFeatures } from '../../sae/synthetic.js';
import { defaultTrainOptions, trainSae, type SaeTrainResult, type TrainingData } from '../../sae/train.js';
import { storeTrainingData } from '../../sae/training-data.js';
import { corpusTrainingData } from '../../sae/corpus-training.js';
import { defaultCorpusPath } from '../../sae/corpus.js';
import { fmt, globalsOf, intArg, loadModel, note, out, printJson, table } from '../common.js';
import { createProgress } from '../progress.js';
import { choiceArg, numberArg } from './probe.js';
import { checkOutputs, lockOutput } from '../output.js';

interface TrainOpts {
  hook?: string;
  hookOut?: string;
  skip?: boolean;
  arch: SaeArchitecture;
  topK: number;
  width?: number;
  data?: string;
  activations?: string;
  targets?: string;
  synthetic?: boolean;
  features: number;
  dim: number;
  correlation: number;
  nTokens?: number;
  epochs?: number;
  harvestTokens?: number;
  store?: string;
  storeDtype: 'float32' | 'float16';
  ctx: number;
  batchSize?: number;
  lr?: number;
  coefficient?: number;
  lrWarmup?: number;
  bDecInit?: 'geometric_median' | 'mean' | 'zeros';
  deadWindow?: number;
  kAnneal?: number;
  normalize: boolean;
  testFraction: number;
  seed: number;
  checkpoint?: string;
  checkpointEvery: number;
  resume: boolean;
  out: string;
}

export const DEFAULT_ARCH: SaeArchitecture = 'standard';
const DEFAULT_BUDGET = 1 << 20;

export function registerSaeTrain(sae: Command): void {
  sae
    .command('train')
    .description('train an SAE or transcoder; writes an SAELens folder (cfg.json, sae_weights.safetensors)')
    .option('--hook <name>', 'hook the SAE reads (e.g. blocks.2.hook_resid_post)')
    .option('--hook-out <name>', 'train a transcoder predicting this hook (e.g. blocks.2.hook_mlp_out)')
    .option('--skip', 'transcoder with a linear skip connection')
    .option('--arch <a>', SAE_ARCHITECTURES.join(', '), choiceArg(SAE_ARCHITECTURES), DEFAULT_ARCH)
    .option('--top-k <n>', 'active latents per row (topk, batchtopk)', intArg(1), 32)
    .option('--width <n>', 'number of latents (default 8 x d_in)', intArg(1))
    .option('--data <file>', 'text corpus (default: the built-in stories260K samples)')
    .option('--activations <file>', '.npy or .safetensors [n, d_in] (float32/float16) or a harvested folder')
    .option('--targets <file>', 'transcoder targets [n, d_out], row-aligned with --activations')
    .option('--synthetic', 'train on synthetic features in superposition and report their recovery (MMCS)')
    .option('--features <n>', 'synthetic: number of true features', intArg(1), 512)
    .option('--dim <n>', 'synthetic: dimension', intArg(1), 256)
    .option('--correlation <x>', 'synthetic: feature correlation in [0, 1)', numberArg, 0)
    .option('--n-tokens <n>', `training budget in rows (default ${DEFAULT_BUDGET})`, intArg(1))
    .option('--epochs <x>', 'training budget in passes over the data (instead of --n-tokens)', numberArg)
    .option(
      '--harvest-tokens <n>',
      'rows to harvest from --data (default: the budget, at most the corpus)',
      intArg(1),
    )
    .option(
      '--store <dir>',
      'activation store folder (default: <out>.activations[-in|-out]); reused and resumed',
    )
    .option('--store-dtype <t>', 'float32 or float16', choiceArg(['float32', 'float16'] as const), 'float32')
    .option('--ctx <n>', 'tokens per context when harvesting', intArg(2), 128)
    .option('--batch-size <n>', 'rows per step', intArg(1))
    .option('--lr <x>', 'Adam learning rate', numberArg)
    .option('--coefficient <x>', 'sparsity coefficient: L1 (standard, gated) or L0 (jumprelu)', numberArg)
    .option('--lr-warmup <steps>', 'linear LR warm-up steps (default 0)', intArg(0))
    .option(
      '--b-dec-init <how>',
      'geometric_median (default), mean or zeros',
      choiceArg(['geometric_median', 'mean', 'zeros'] as const),
    )
    .option(
      '--dead-window <rows>',
      'a latent silent for this many rows is dead (and revived); default 131072, topk/batchtopk: budget / 128',
      intArg(1),
    )
    .option(
      '--k-anneal <x>',
      'topk/batchtopk: fraction of the steps over which k falls from 8k (at most d_in / 2) to k (default 0.25; 0 disables)',
      numberArg,
    )
    .option('--no-normalize', 'do not scale inputs to mean norm sqrt(d_in)')
    .option(
      '--test-fraction <x>',
      `fraction kept out of training to measure on: the last documents of --data, the last rows of --activations (default ${DEFAULT_HOLDOUT}; 0 trains on all)`,
      numberArg,
      DEFAULT_HOLDOUT,
    )
    .option('--seed <n>', 'seed', intArg(0), 0)
    .option('--checkpoint <dir>', 'checkpoint folder (default: <out>.checkpoint); a run resumes from it')
    .option('--checkpoint-every <n>', 'steps between checkpoints', intArg(1), 50)
    .option('--no-resume', 'start over even if a checkpoint exists')
    .requiredOption('--out <dir>', 'SAELens folder to write')
    .action((opts: TrainOpts, cmd: Command) => runTrain(opts, cmd));
}

async function runTrain(o: TrainOpts, cmd: Command): Promise<void> {
  const g = globalsOf(cmd);
  const sources = [o.synthetic, o.activations, o.data].filter(Boolean).length;
  if (sources > 1) throw new UsageError('give one of --synthetic, --activations FILE or --data FILE');
  if (o.nTokens !== undefined && o.epochs !== undefined)
    throw new UsageError('give --n-tokens or --epochs, not both');
  if (o.epochs !== undefined && !(o.epochs > 0)) throw new UsageError('--epochs must be positive');
  if (o.targets && !o.activations) throw new UsageError('--targets goes with --activations');
  if (o.targets && !o.hookOut)
    throw new UsageError('--targets trains a transcoder: give --hook-out NAME too');
  if (!o.synthetic && !o.activations && !o.hook)
    throw new UsageError('give --hook NAME (or --activations FILE)');
  // SAELens's transcoder formats: standard (with or without skip) and jumprelu (without).
  if (o.hookOut && o.arch !== 'standard' && o.arch !== 'jumprelu')
    throw new UsageError(
      `SAELens has no ${o.arch} transcoder: use --arch standard or jumprelu with --hook-out`,
    );
  if (o.skip && !o.hookOut) throw new UsageError('--skip is for transcoders (with --hook-out)');
  if (o.skip && o.arch !== 'standard')
    throw new UsageError('SAELens stores skip transcoders as standard only: use --arch standard');
  if (o.correlation < 0 || o.correlation >= 1) throw new UsageError('--correlation must be in [0, 1)');
  if (!(o.testFraction >= 0 && o.testFraction < 1)) throw new UsageError('--test-fraction must be in [0, 1)');
  const outDir = path.resolve(o.out);
  const checkpointDir = o.checkpoint ?? `${outDir}.checkpoint`;
  const harvesting = !o.synthetic && !o.activations;
  checkOutputs(
    [
      { flag: '--out', path: outDir, kind: 'dir', existing: 'force' },
      { flag: '--checkpoint', path: checkpointDir, kind: 'dir', existing: 'reuse' },
      harvesting && {
        flag: '--store',
        path: `${o.store ?? `${outDir}.activations`}${o.hookOut ? '-in' : ''}`,
        kind: 'dir',
        existing: 'reuse',
      },
    ],
    g.force,
  );
  lockOutput('--out', outDir);
  if (!o.resume) fs.rmSync(checkpointDir, { recursive: true, force: true });
  const progress = createProgress(g);

  let data: TrainingData;
  let hookName = o.hook ?? 'activations';
  const hookNameOut = o.hookOut ?? null;
  let dataRows: number | null = null;
  let synthetic: SyntheticFeatures | null = null;
  let split: TrainingSplit | null = null;
  // What the reported numbers are measured on: never-trained-on data unless --test-fraction 0.
  let heldOut: (sae: SparseAutoencoder) => Promise<HeldOutEval>;
  const metadata: Record<string, unknown> = {};
  const t0 = performance.now();
  if (o.synthetic) {
    synthetic = new SyntheticFeatures({
      features: o.features,
      dim: o.dim,
      correlation: o.correlation,
      seed: o.seed,
    });
    data = synthetic.trainingData();
    const syn = synthetic;
    heldOut = async (sae) => {
      // Training never draws this block; 65536 rows see even the rarest feature (p ≈ 3e-4) ~19 times.
      const rows = syn.rows(SYNTHETIC_EVAL_ROWS, SYNTHETIC_EVAL_BLOCK).x;
      return { metrics: await evaluateRows(sae, rows, syn.dim), on: 'fresh synthetic rows', heldOut: true };
    };
    hookName = o.hook ?? 'synthetic';
    metadata.dataset_path = `synthetic:${o.features}x${o.dim}${o.correlation ? `:corr${o.correlation}` : ''}`;
  } else if (o.activations) {
    const input = ActivationStore.open(o.activations);
    const target = o.targets ? ActivationStore.open(o.targets) : undefined;
    split = splitData(input.rows, o.testFraction, 'rows');
    const s = split;
    data = storeTrainingData(input, target, s.train);
    dataRows = s.train;
    heldOut = async (sae) => {
      if (s.train === s.total) return inSampleEval(data, sae);
      const n = Math.min(s.total - s.train, EVAL_ROWS);
      const metrics = await evaluateRows(sae, input.read(s.train, n), data.dIn, {
        targets: target?.read(s.train, n),
      });
      return { metrics, on: `held-out rows ${s.train + 1}-${s.train + n} of ${s.total}`, heldOut: true };
    };
    hookName = o.hook ?? input.hook ?? 'activations';
    metadata.dataset_path = path.resolve(o.activations);
  } else {
    const model = await loadModel(g);
    const budget = o.nTokens ?? DEFAULT_BUDGET;
    let harvesting: string | null = null;
    const t = await corpusTrainingData(model, {
      hook: o.hook!,
      hookOut: hookNameOut,
      corpus: o.data ?? defaultCorpusPath(),
      ctx: o.ctx,
      testFraction: o.testFraction,
      maxRows: o.harvestTokens ?? budget,
      storeDir: o.store ?? `${outDir}.activations`,
      dtype: o.storeDtype,
      onHarvest: (hook, done) => {
        if (hook !== harvesting) progress.start(o.harvestTokens ?? budget, `harvest ${(harvesting = hook)}`);
        progress.update(done);
      },
    });
    progress.stop();
    for (const { hook, dir, manifest: m } of t.stores)
      note(g, `harvested ${m.rows} rows of ${hook} into ${dir}${m.complete ? ' (whole corpus)' : ''}`);
    data = t.data;
    dataRows = t.rows;
    split = t.split;
    const evaluate = t.evaluate;
    heldOut = async (sae) => {
      if (evaluate === null) return inSampleEval(data, sae);
      const ev = await evaluate(sae);
      return { metrics: ev, ceRecovered: ev.ce.recovered, on: ev.on, heldOut: true };
    };
    Object.assign(metadata, t.metadata);
  }

  if (split) metadata[SPLIT_KEY] = split;
  const defaults = defaultTrainOptions(o.arch);
  const totalRows =
    o.epochs !== undefined
      ? Math.max(1, Math.round(o.epochs * (dataRows ?? DEFAULT_BUDGET)))
      : (o.nTokens ?? DEFAULT_BUDGET);
  const width = o.width ?? 8 * data.dIn;
  const batchSize = o.batchSize ?? defaults.batchSize;
  const topk = o.arch === 'topk' || o.arch === 'batchtopk';
  // Recorded in the checkpoint under the flags' names: a resume with other values is refused.
  const settings = {
    '--data': String(metadata.dataset_path ?? ''),
    '--hook': hookName,
    '--hook-out': hookNameOut,
    '--skip': o.skip ?? false,
    '--arch': o.arch,
    '--top-k': topk ? o.topK : null,
    '--width': width,
    '--n-tokens': totalRows,
    '--batch-size': batchSize,
    '--lr': o.lr ?? defaults.lr,
    '--coefficient': o.coefficient ?? defaults.coefficient,
    '--lr-warmup': o.lrWarmup ?? defaults.lrWarmupSteps,
    '--b-dec-init': o.bDecInit ?? defaults.bDecInit,
    '--dead-window': o.deadWindow ?? defaults.deadWindowRows,
    '--k-anneal': topk ? (o.kAnneal ?? defaults.kAnnealFraction) : null,
    '--normalize': o.normalize,
    '--seed': o.seed,
  };
  progress.start(Math.ceil(totalRows / batchSize), `train ${o.arch}`, ['L0', 'MSE', 'dead']);
  const result: SaeTrainResult = await trainSae(data, {
    architecture: o.arch,
    width,
    k: o.topK,
    hookName,
    hookNameOut,
    transcoderSkip: o.skip ?? false,
    totalRows,
    batchSize,
    lr: o.lr,
    coefficient: o.coefficient,
    lrWarmupSteps: o.lrWarmup,
    bDecInit: o.bDecInit,
    deadWindowRows: o.deadWindow,
    kAnnealFraction: o.kAnneal,
    normalize: o.normalize,
    seed: o.seed,
    checkpointDir,
    checkpointEverySteps: o.checkpointEvery,
    resume: o.resume,
    settings,
    metadata,
    onResume: (step) => note(g, `resumed from step ${step}`),
    onStep: (s) =>
      progress.update(s.step, {
        L0: s.l0.toFixed(1),
        MSE: s.mse.toPrecision(3),
        dead: fmtPct(s.deadFraction),
      }),
  });
  progress.stop();
  await saveSaeLens(result.sae, outDir, { sparsity: result.logDensity });
  fs.rmSync(checkpointDir, { recursive: true, force: true });
  const seconds = (performance.now() - t0) / 1000;

  const held = await heldOut(result.sae);
  const ev = held.metrics;
  const last = result.history[result.history.length - 1];
  const mmcs = synthetic
    ? meanMaxCosine(synthetic.directions, result.sae.param('W_dec').f32Sync(), o.dim)
    : null;
  const doc = {
    out: outDir,
    architecture: result.sae.cfg.architecture,
    trainedAs: o.arch,
    hookName,
    hookNameOut,
    dIn: data.dIn,
    dSae: width,
    k: o.arch === 'topk' || o.arch === 'batchtopk' ? o.topK : null,
    steps: result.steps,
    rows: result.steps * batchSize,
    trainingSplit: split,
    resumedFrom: result.resumedFrom,
    seconds,
    // The last training batch (in-sample).
    final: last ? { loss: last.loss, mse: last.mse, l0: last.l0, deadFraction: last.deadFraction } : null,
    eval: {
      measuredOn: held.on,
      heldOut: held.heldOut,
      rows: ev.rows,
      l0: ev.l0,
      mse: ev.mse,
      explainedVariance: ev.explainedVariance,
      cosineSimilarity: ev.cosineSimilarity,
      ceLossRecovered: held.ceRecovered ?? null,
      deadLatents: ev.deadLatents.length,
      denseLatents: ev.denseLatents.length,
    },
    mmcs: mmcs ? mmcs.mmcs : null,
    featuresRecovered: mmcs ? Array.from(mmcs.perFeature).filter((c) => c >= 0.9).length : null,
  };
  if (g.json) return printJson(doc);
  out(
    `Trained a ${o.arch} ${hookNameOut ? 'transcoder' : 'SAE'} (${data.dIn} -> ${width}) on ${doc.rows} rows in ${seconds.toFixed(1)} s; saved to ${outDir}`,
  );
  out(`Measured on ${held.on}${held.heldOut ? ', never trained on' : ''}:`);
  const rows = [
    ['L0', fmt(ev.l0, 3)],
    ['explained variance', fmt(ev.explainedVariance, 4)],
    ['MSE (per row)', fmt(ev.mse, 4)],
  ];
  if (held.ceRecovered !== undefined) rows.push(['CE loss recovered', fmt(held.ceRecovered, 4)]);
  rows.push([`dead latents (no firing in ${ev.rows} rows)`, `${ev.deadLatents.length} of ${width}`]);
  if (mmcs)
    rows.push(
      ['MMCS', fmt(mmcs.mmcs, 4)],
      ['features with max cos >= 0.9', `${doc.featuresRecovered} of ${o.features}`],
    );
  for (const line of table(rows, [false, true])) out(`  ${line}`);
}

/** Rows evaluated at most from held-out activation rows, tokens from held-out documents. */
const EVAL_ROWS = 65536;
const SYNTHETIC_EVAL_ROWS = 65536;
/** A synthetic block training never reaches (training uses blocks 1, 2, ... one per batch). */
const SYNTHETIC_EVAL_BLOCK = 0xe7a1;

interface HeldOutEval {
  metrics: SaeRowMetrics;
  ceRecovered?: number;
  /** What the numbers were measured on, in words. */
  on: string;
  heldOut: boolean;
}

/** --test-fraction 0: the numbers can only come from the training data, and say so. */
async function inSampleEval(data: TrainingData, sae: SparseAutoencoder): Promise<HeldOutEval> {
  const sample = data.sample(8192);
  const metrics = await evaluateRows(sae, sample.input, data.dIn, { targets: sample.target });
  return { metrics, on: `${metrics.rows} training rows (in-sample: --test-fraction 0)`, heldOut: false };
}

function fmtPct(x: number): string {
  return `${(100 * x).toFixed(1)}%`;
}
