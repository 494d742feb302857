// sonde tuned-lens: train a tuned lens on a text file, and compare its held-out KL with the logit lens's.
import type { Command } from 'commander';
import { UsageError, type HookedTransformer } from '../../index.js';
import { defaultCorpus } from '../../organisms/induction.js';
import {
  lensDataset,
  lensKL,
  loadTunedLens,
  saveTunedLens,
  trainTunedLensOnText,
  type LensKL,
} from '../../methods/tuned-lens.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import { fmt, globalsOf, intArg, loadModel, note, out, printJson, table } from '../common.js';
import { createProgress } from '../progress.js';
import { checkOutput, checkPlotPath, lockOutput, PLOT_FLAG } from '../output.js';

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) throw new UsageError(`expected a number > 0, got '${value}'`);
  return n;
}

function layerLabel(hook: string): string {
  return `L${/^blocks\.(\d+)\./.exec(hook)?.[1] ?? '?'} in`;
}

function klTable(k: LensKL): string[] {
  const rows = [['layer', 'logit lens KL', 'tuned lens KL']];
  k.layers.forEach((h, l) =>
    rows.push([layerLabel(h), fmt(k.logit[l]!, 4), k.tuned ? fmt(k.tuned[l]!, 4) : '-']),
  );
  return table(rows, [false, true, true]);
}

function klPlotSpec(k: LensKL, model: string): TopLevelSpec {
  const values = k.layers.flatMap((h, l) => [
    { layer: layerLabel(h), order: l, lens: 'logit lens', kl: k.logit[l]! },
    ...(k.tuned ? [{ layer: layerLabel(h), order: l, lens: 'tuned lens', kl: k.tuned[l]! }] : []),
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `KL(final || lens) on held-out text, ${model}`,
    width: 360,
    height: 240,
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'layer', type: 'ordinal', sort: { field: 'order' }, title: 'residual stream' },
      y: { field: 'kl', type: 'quantitative', scale: { type: 'log' }, title: 'KL (nats)' },
      color: { field: 'lens', type: 'nominal' },
    },
  } as TopLevelSpec;
}

function report(k: LensKL, model: HookedTransformer): void {
  out(`KL(final || lens) per layer on ${k.positions} held-out positions (${model.source})`);
  for (const line of klTable(k)) out(line);
}

export function registerTunedLens(program: Command): void {
  const cmd = program
    .command('tuned-lens')
    .description('the tuned lens: affine translators per layer, trained to match the final distribution');
  cmd
    .command('train')
    .description('train a tuned lens on a text file and save it')
    .requiredOption('--out <dir>', 'folder to write tuned-lens.safetensors and tuned-lens.json')
    .option('--data <file>', 'training text (default: the built-in stories260K samples)')
    .option('--steps <n>', 'optimizer steps', intArg(0), 300)
    .option('--batch-size <n>', 'windows per step', intArg(1), 8)
    .option('--ctx <n>', 'tokens per window', intArg(2), 128)
    .option('--lr <x>', 'AdamW learning rate', positiveNumber, 3e-3)
    .option('--seed <n>', 'seed for the sampled windows', intArg(0), 0)
    .addHelpText(
      'after',
      `
The last 10% of the text is held out; the held-out KL is measured after training and saved.

Examples:
  sonde tuned-lens train --out lens-260k --steps 300
  sonde tuned-lens eval --lens lens-260k --plot kl.svg`,
    )
    .action(
      async (
        o: {
          out: string;
          data?: string;
          steps: number;
          batchSize: number;
          ctx: number;
          lr: number;
          seed: number;
        },
        c: Command,
      ) => {
        const g = globalsOf(c);
        checkOutput({ flag: '--out', path: o.out, kind: 'dir', existing: 'force' }, g.force);
        lockOutput('--out', o.out);
        const model = await loadModel(g);
        const dataFile = o.data ?? defaultCorpus();
        const bar = createProgress(g);
        bar.start(o.steps, 'training tuned lens');
        const {
          lens,
          kl: k,
          finalTrainLoss: last,
        } = await trainTunedLensOnText(model, dataFile, {
          steps: o.steps,
          batchSize: o.batchSize,
          ctx: o.ctx,
          lr: o.lr,
          seed: o.seed,
          onStep: () => bar.increment(),
        });
        bar.stop();
        await saveTunedLens(lens, o.out);
        if (g.json) {
          printJson({ out: o.out, model: model.source, steps: o.steps, finalTrainLoss: last, ...k });
          return;
        }
        note(g, `trained ${o.steps} steps, last training loss (KL summed over layers) ${fmt(last)}`);
        report(k, model);
        out(`\nsaved: ${o.out}`);
      },
    );
  cmd
    .command('eval')
    .description("a saved tuned lens's KL to the final distribution per layer, next to the logit lens's")
    .requiredOption('--lens <dir>', 'a folder written by `sonde tuned-lens train`')
    .option('--data <file>', 'text whose last 10% is evaluated (default: the built-in stories260K samples)')
    .option('--ctx <n>', 'tokens per window', intArg(2), 128)
    .option('--windows <n>', 'held-out windows evaluated', intArg(1), 32)
    .option(PLOT_FLAG, 'write the KL per layer as a line chart')
    .action(
      async (o: { lens: string; data?: string; ctx: number; windows: number; plot?: string }, c: Command) => {
        const g = globalsOf(c);
        checkPlotPath(o.plot, g.force);
        const model = await loadModel(g);
        const lens = loadTunedLens(o.lens, model);
        const data = lensDataset(model, o.data ?? defaultCorpus());
        const k = await lensKL(model, data, lens, { ctx: o.ctx, maxWindows: o.windows });
        if (o.plot) await writePlot(o.plot, klPlotSpec(k, model.source));
        if (g.json) {
          printJson({ lens: o.lens, model: model.source, ...k, ...(o.plot ? { plot: o.plot } : {}) });
          return;
        }
        report(k, model);
        if (o.plot) out(`\nplot: ${o.plot}`);
      },
    );
}
