// sonde toy superposition: train the toy ReLU output model of Elhage et al. (2022), "Toy Models of
// Superposition", and report how its features share the hidden dimensions.
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import {
  featureCosine,
  PAPER_DEFAULTS,
  sweepSparsities,
  sweepSparsity,
  trainSuperposition,
  type SuperpositionInstance,
  type SuperpositionResult,
} from '../../organisms/superposition.js';
import { superpositionPlotSpec, sweepPlotSpec } from '../../organisms/superposition-plot.js';
import { writePlot } from '../../plot/vega.js';
import { fmt, globalsOf, intArg, out, printJson, table } from '../common.js';
import { createProgress } from '../progress.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface ToyFlags {
  features: number;
  hidden: number;
  sparsity: number;
  importanceDecay: number;
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  restarts: number;
  seed: number;
  sweep?: number | true;
  plot?: string;
}

function numberArg(ok: (n: number) => boolean, expected: string): (value: string) => number {
  return (value) => {
    const n = Number(value.trim());
    if (value.trim() === '' || !Number.isFinite(n) || !ok(n))
      throw new InvalidArgumentError(`Expected ${expected}.`);
    return n;
  };
}

const sparsityArg = numberArg(
  (n) => n >= 0 && n < 1,
  'a number in [0, 1) (the probability that a feature is zero)',
);
const positiveArg = numberArg((n) => n > 0, 'a number > 0');
const nonNegativeArg = numberArg((n) => n >= 0, 'a number >= 0');

/** Per-feature table and the sharing summary of one trained model. */
function describeInstance(r: SuperpositionInstance): string[] {
  const lines: string[] = [];
  const rows = [['feature', 'importance', '||W_i||', 'D_i', 'superposition']];
  r.norms.forEach((norm, i) =>
    rows.push([
      String(i),
      fmt(r.importance[i]!),
      fmt(norm, 3),
      fmt(r.dimensionality[i]!, 3),
      fmt(r.superposition[i]!, 3),
    ]),
  );
  lines.push(...table(rows, [false, true, true, true, true]));
  lines.push('');
  lines.push(`dimensions per feature (m / ||W||_F^2): ${fmt(r.dimsPerFeature, 3)}`);
  const grouped = new Set(r.sharing.flat());
  const own = r.norms.flatMap((_, i) => (!grouped.has(i) && !r.dropped.includes(i) ? [i] : []));
  lines.push(`own direction (no other feature at |cos| > 0.5): ${own.length ? own.join(', ') : 'none'}`);
  if (r.sharing.length === 0) lines.push('sharing directions (|cos| > 0.5): none');
  else {
    lines.push('sharing directions (|cos| > 0.5):');
    for (const g of r.sharing) {
      const dims = g.reduce((s, i) => s + r.dimensionality[i]!, 0);
      let kind = '';
      if (g.length === 2) {
        const c = featureCosine(r, g[0]!, g[1]!);
        kind = c < -0.9 ? `, antipodal (cos ${fmt(c, 3)})` : `, cos ${fmt(c, 3)}`;
      }
      lines.push(`  features ${g.join(', ')}: ${g.length} features in ${fmt(dims, 3)} dimensions${kind}`);
    }
  }
  lines.push(`not represented (||W_i|| < 0.5): ${r.dropped.length ? r.dropped.join(', ') : 'none'}`);
  return lines;
}

function instanceJson(r: SuperpositionInstance) {
  return {
    sparsity: r.sparsity,
    importanceDecay: r.importanceDecay,
    importance: r.importance,
    restart: r.restart,
    loss: r.loss,
    norms: r.norms,
    dimensionality: r.dimensionality,
    superposition: r.superposition,
    dimsPerFeature: r.dimsPerFeature,
    sharing: r.sharing,
    dropped: r.dropped,
    W: r.W,
    b: r.b,
    gram: r.gram,
  };
}

function runJson(run: SuperpositionResult) {
  return {
    features: run.features,
    hidden: run.hidden,
    steps: run.steps,
    batch: run.batch,
    lr: run.lr,
    weightDecay: run.weightDecay,
    restarts: run.restarts,
    seed: run.seed,
    timing: run.timing,
  };
}

function trainingLine(run: SuperpositionResult): string {
  const t = run.timing;
  return (
    `trained ${run.instances.length} instance${run.instances.length > 1 ? 's' : ''} x ${run.steps.toLocaleString('en-US')} steps ` +
    `(batch ${run.batch}, AdamW lr ${run.lr}, weight decay ${run.weightDecay}) in ${t.trainSeconds.toFixed(1)} s: ` +
    `${Math.round(t.stepsPerSecond)} steps/s, ${fmt(t.samplesPerSecond, 3)} samples/s`
  );
}

export function registerToy(program: Command): void {
  const toy = program
    .command('toy')
    .description('toy models (Anthropic circuits thread), trained from scratch');
  toy
    .command('superposition')
    .description(
      "the ReLU output model x' = ReLU(W^T W x + b) of 'Toy Models of Superposition' (Elhage et al., 2022)",
    )
    .requiredOption('--features <n>', 'n: number of features', intArg(1, 100_000))
    .requiredOption('--hidden <m>', 'm: hidden dimensions (at most n)', intArg(1, 100_000))
    .requiredOption(
      '--sparsity <S>',
      'probability that a feature is zero, in [0, 1) (with --sweep: the largest sparsity)',
      sparsityArg,
    )
    .option(
      '--importance-decay <R>',
      'feature i has importance R^i (1 = uniform)',
      positiveArg,
      PAPER_DEFAULTS.importanceDecay,
    )
    .option('--steps <k>', 'AdamW steps', intArg(1), PAPER_DEFAULTS.steps)
    .option('--batch-size <b>', 'samples per step', intArg(1), PAPER_DEFAULTS.batch)
    .option('--lr <x>', 'AdamW learning rate', positiveArg, PAPER_DEFAULTS.lr)
    .option('--weight-decay <x>', 'AdamW decoupled weight decay', nonNegativeArg, PAPER_DEFAULTS.weightDecay)
    .option(
      '--restarts <k>',
      'independent initialisations per setting; the lowest loss is kept',
      intArg(1, 1000),
      4,
    )
    .option('--seed <x>', 'seed of the initialisation and the data', intArg(0, 2 ** 32 - 1), 0)
    .option(
      '--sweep [points]',
      'train many sparsities at once, 1/(1-S) log-spaced from S = 0 to --sparsity (default 10 points)',
      intArg(2, 200),
    )
    .option(PLOT_FLAG, 'draw the feature directions and W^T W (with --sweep: dimensionality vs sparsity)')
    .addHelpText(
      'after',
      `
Data: each feature is U[0, 1] with probability 1 - S, else 0. Loss: sum_i I_i (x_i - x'_i)^2, mean over
the batch. Defaults follow the paper's notebook: Xavier-normal W, zero b, AdamW lr 1e-3 (weight decay
0.01, PyTorch's default), batch 1024, 10,000 steps. All restarts (and sweep points) train side by side
as one batched model; the restart with the lowest loss on fresh data is reported.

Reported per feature: ||W_i|| (about 1 when represented, 0 when dropped), the dimensionality
D_i = ||W_i||^2 / sum_j (W_i_hat . W_j)^2 (1: own dimension, 1/2: antipodal pair, 2/5: pentagon) and
the superposition sum_{j != i} (W_i_hat . W_j)^2; overall, dimensions per feature m / ||W||_F^2, and the
groups of features whose directions overlap (|cos| > 0.5). --json: the same numbers (per-feature
arrays, D_i under "dimensionality"), plus W, b and W^T W; with --sweep, one entry per sparsity.

Examples:
  sonde toy superposition --features 5 --hidden 2 --sparsity 0     # 2 features, orthogonal
  sonde toy superposition --features 5 --hidden 2 --sparsity 0.8   # 2 antipodal pairs
  sonde toy superposition --features 5 --hidden 2 --sparsity 0.9 --plot pentagon.svg
  sonde toy superposition --features 5 --hidden 2 --sparsity 0.95 --sweep --plot sweep.svg`,
    )
    .action(async (o: ToyFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      if (o.hidden > o.features) {
        throw new UsageError(
          `--hidden ${o.hidden} must be at most --features ${o.features} (superposition needs fewer dimensions than features)`,
        );
      }
      if (o.sweep !== undefined && o.sparsity === 0)
        throw new UsageError('--sweep: give the largest sparsity with --sparsity, in (0, 1)');
      checkPlotPath(o.plot, g.force);
      // A progress bar over the training steps (on a terminal, without --json or --quiet).
      const bar = createProgress(g);
      let done = 0;
      const common = {
        features: o.features,
        hidden: o.hidden,
        importanceDecay: o.importanceDecay,
        steps: o.steps,
        batch: o.batchSize,
        lr: o.lr,
        weightDecay: o.weightDecay,
        restarts: o.restarts,
        seed: o.seed,
        progressEvery: Math.max(1, Math.floor(o.steps / 200)),
        onProgress: (step: number) => {
          bar.increment(step - done);
          done = step;
        },
      };
      const withProgress = async <T>(fn: () => Promise<T>): Promise<T> => {
        bar.start(o.steps, 'training');
        try {
          return await fn();
        } finally {
          bar.stop();
        }
      };
      if (o.sweep !== undefined) {
        const points = o.sweep === true ? 10 : o.sweep;
        const sparsities = sweepSparsities(points, o.sparsity);
        const sweep = await withProgress(() => sweepSparsity({ ...common, sparsities }));
        if (o.plot) await writePlot(o.plot, sweepPlotSpec(sweep));
        if (g.json) {
          printJson({
            ...runJson(sweep.run),
            importanceDecay: o.importanceDecay,
            sweep: sweep.run.best.map(instanceJson),
          });
          return;
        }
        out(
          `toy model of superposition: n = ${o.features} features, m = ${o.hidden} hidden, sparsity sweep ` +
            `S = 0 .. ${o.sparsity} (${points} points), importance ${o.importanceDecay}^i`,
        );
        out(trainingLine(sweep.run));
        out('');
        const rows = [['sparsity', '1/(1-S)', 'loss', 'dims/feature', 'D_i']];
        for (const p of sweep.run.best) {
          rows.push([
            fmt(p.sparsity, 3),
            fmt(1 / (1 - p.sparsity), 3),
            fmt(p.loss, 3),
            fmt(p.dimsPerFeature, 3),
            p.dimensionality.map((d) => d.toFixed(2)).join(' '),
          ]);
        }
        for (const line of table(rows, [true, true, true, true, false])) out(line);
        if (o.plot) out(`\nplot: ${o.plot}`);
        return;
      }

      const run = await withProgress(() => trainSuperposition({ ...common, sparsities: [o.sparsity] }));
      const best = run.best[0]!;
      if (o.plot) await writePlot(o.plot, superpositionPlotSpec(best));
      if (g.json) {
        printJson({
          ...runJson(run),
          ...instanceJson(best),
          restartLosses: run.instances.map((r) => r.loss),
        });
        return;
      }
      out(
        `toy model of superposition: n = ${o.features} features, m = ${o.hidden} hidden, S = ${o.sparsity}, ` +
          `importance ${o.importanceDecay}^i`,
      );
      out(trainingLine(run));
      out(
        `best of ${run.restarts} restart${run.restarts > 1 ? 's' : ''}: restart ${best.restart}, loss ${fmt(best.loss)}` +
          (run.restarts > 1 ? ` (all: ${run.instances.map((r) => fmt(r.loss, 3)).join(', ')})` : ''),
      );
      out('');
      for (const line of describeInstance(best)) out(line);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}
