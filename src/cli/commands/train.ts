// sonde train induction: grow an induction head in a small attention-only transformer.
import cliProgress from 'cli-progress';
import type { Command } from 'commander';
import { trainInduction, type InductionResult, type PhasePoint } from '../../organisms/induction.js';
import { writePlot } from '../../plot/vega.js';
import { fmt, globalsOf, intArg, note, out, printJson, table } from '../common.js';
import { progressEnabled } from '../progress.js';
import { checkOutputs, lockOutput, PLOT_FLAG, plotOutput } from '../output.js';

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`Expected a positive number, got '${value}'.`);
  return n;
}

/** The phase-change figure: training loss and the best induction / previous-token scores per step. */
export function phasePlotSpec(history: PhasePoint[]): Parameters<typeof writePlot>[1] {
  const rows = history.flatMap((p) => [
    { step: p.step, value: p.loss, series: 'training loss (nats)', panel: 'loss' },
    { step: p.step, value: p.lossSecondRepeat, series: 'loss on 2nd repeat', panel: 'loss' },
    { step: p.step, value: p.maxInduction, series: 'max induction score', panel: 'score' },
    { step: p.step, value: p.maxPreviousToken, series: 'max previous-token score', panel: 'score' },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: 'Induction heads: the phase change',
    data: { values: rows },
    vconcat: (['loss', 'score'] as const).map((panel) => ({
      width: 520,
      height: 180,
      transform: [{ filter: `datum.panel === '${panel}'` }],
      mark: { type: 'line', point: true },
      encoding: {
        x: { field: 'step', type: 'quantitative', title: 'training step', axis: { format: 'd' } },
        y: {
          field: 'value',
          type: 'quantitative',
          title: panel === 'loss' ? 'loss (nats)' : 'attention score',
        },
        color: { field: 'series', type: 'nominal', title: null },
      },
    })),
  } as Parameters<typeof writePlot>[1];
}

export function registerTrain(program: Command): void {
  const train = program.command('train').description('train model organisms');
  train
    .command('induction')
    .description('train an attention-only transformer on text until an induction head forms')
    .option(
      '--n-layers <n>',
      'attention-only layers (1 has no induction head; 2 grows one)',
      intArg(1, 12),
      2,
    )
    .option('--steps <n>', 'training steps', intArg(1), 2500)
    .option('--data <file>', 'text corpus (default: the built-in stories sampled from stories260K)')
    .option('--out <dir>', 'output model folder (Hugging Face layout)', 'induction-model')
    .option('--d-model <n>', 'residual width', intArg(8), 64)
    .option('--n-heads <n>', 'attention heads per layer', intArg(1), 4)
    .option('--ctx <n>', 'context length', intArg(8, 2048), 128)
    .option('--batch-size <n>', 'sequences per step', intArg(1), 16)
    .option('--lr <x>', 'peak learning rate (AdamW)', positiveNumber, 1e-3)
    .option('--no-layer-norm', 'no LayerNorm (TransformerLens normalization_type None)')
    .option('--seed <n>', 'seed for init and data order', intArg(0), 0)
    .option(
      '--repeat <p>',
      'fraction of windows made self-repeating (shuffled corpus tokens, random period); 0 = plain text',
      Number,
      1,
    )
    .option(PLOT_FLAG, 'draw the phase change (loss and induction score per step)')
    .option('--no-resume', 'start over even if <out>.checkpoint exists')
    .addHelpText(
      'after',
      `
Checkpoints go to <out>.checkpoint every 500 steps; rerunning the same command resumes exactly (a rerun
with other settings is refused: add --no-resume to start over). An existing --out needs --force.
The tokenizer is stories260K's (vocab 512). By default every training window is a self-repeating
sequence of shuffled corpus tokens with a random period (--repeat 1), so that only in-context copying
predicts its continuation: the induction head then forms near step 1,500 (about a minute on 2 cores).
On plain text (--repeat 0) it needs far more than a few CPU minutes. Head scores use repeated random
tokens (see 'sonde heads').

Examples:
  sonde train induction --steps 2000 --out induction-2l --plot phase.svg
  sonde train induction --n-layers 1 --out induction-1l
  sonde --model induction-2l heads`,
    )
    .action(
      async (
        o: {
          nLayers: number;
          steps: number;
          data?: string;
          out: string;
          dModel: number;
          nHeads: number;
          ctx: number;
          batchSize: number;
          lr: number;
          layerNorm: boolean;
          seed: number;
          repeat: number;
          plot?: string;
          resume: boolean;
        },
        cmd: Command,
      ) => {
        const g = globalsOf(cmd);
        checkOutputs(
          [{ flag: '--out', path: o.out, kind: 'dir', existing: 'force' }, plotOutput(o.plot)],
          g.force,
        );
        lockOutput('--out', o.out);
        const bar = progressEnabled(g)
          ? new cliProgress.SingleBar(
              {
                stream: process.stderr,
                format: 'training [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | induction {ind}',
                barsize: 25,
                clearOnComplete: true,
                hideCursor: true,
              },
              cliProgress.Presets.shades_classic,
            )
          : null;
        bar?.start(o.steps, 0, { loss: '-', tps: '-', ind: '-' });
        let lastInd = '-';
        const t0 = performance.now();
        const result: InductionResult = await trainInduction({
          layers: o.nLayers,
          steps: o.steps,
          data: o.data,
          out: o.out,
          dModel: o.dModel,
          heads: o.nHeads,
          ctx: o.ctx,
          batchSize: o.batchSize,
          lr: o.lr,
          layerNorm: o.layerNorm,
          seed: o.seed,
          repeatProbability: o.repeat,
          resume: o.resume,
          // Recorded in the checkpoint under the flags' names: a resume with other values is refused.
          settings: {
            '--data': o.data ?? null,
            '--n-layers': o.nLayers,
            '--d-model': o.dModel,
            '--n-heads': o.nHeads,
            '--ctx': o.ctx,
            '--layer-norm': o.layerNorm,
            '--steps': o.steps,
            '--batch-size': o.batchSize,
            '--lr': o.lr,
            '--seed': o.seed,
            '--repeat': o.repeat,
          },
          onResume: (step) => note(g, `resumed from step ${step}`),
          onStep: (s) =>
            bar?.update(s.step, {
              loss: s.loss.toFixed(3),
              tps: Math.round(s.tokensPerSecond),
              ind: lastInd,
            }),
          onScore: (p) => {
            lastInd = p.maxInduction.toFixed(2);
            if (!bar)
              note(
                g,
                `step ${p.step}: loss ${fmt(p.loss)}, max induction ${fmt(p.maxInduction, 3)}, max prev-token ${fmt(p.maxPreviousToken, 3)}`,
              );
          },
        });
        bar?.stop();
        const seconds = (performance.now() - t0) / 1000;
        if (o.plot) await writePlot(o.plot, phasePlotSpec(result.history));
        const s = result.scores;
        if (g.json) {
          printJson({
            out: result.dir,
            steps: result.train.step,
            seconds,
            finalLoss: result.train.losses.at(-1) ?? null,
            evals: result.train.evals,
            history: result.history,
            previousToken: s.previousToken,
            induction: s.induction,
            duplicateToken: s.duplicateToken,
            lossFirstRepeat: s.lossFirstRepeat,
            lossSecondRepeat: s.lossSecondRepeat,
            resumedFrom: result.train.resumedFrom,
          });
          return;
        }
        out(
          `Trained ${o.nLayers}-layer attention-only model for ${result.train.step} steps in ${seconds.toFixed(0)} s -> ${result.dir}`,
        );
        out(
          `Final training loss ${fmt(result.train.losses.at(-1) ?? null)}; held-out ${fmt(result.train.evals.at(-1)?.loss ?? null)}`,
        );
        out(
          `Loss on repeated random tokens: first repeat ${fmt(s.lossFirstRepeat)}, second repeat ${fmt(s.lossSecondRepeat)}`,
        );
        out('');
        out('Head scores (previous-token / induction):');
        const rows = [['layer', ...Array.from({ length: s.induction[0]!.length }, (_, h) => `head ${h}`)]];
        s.induction.forEach((r, l) =>
          rows.push([`${l}`, ...r.map((x, h) => `${fmt(s.previousToken[l]![h]!, 2)} / ${fmt(x, 2)}`)]),
        );
        for (const line of table(rows)) out(line);
        if (o.plot) out(`\nPhase-change plot: ${o.plot}`);
      },
    );
}
