// sonde scrub: causal scrubbing of a hypothesis (a JSON file) over a dataset; loss recovered and its
// per-example distribution.
import type { Command } from 'commander';
import { readHypothesis } from '../../circuits/hypothesis.js';
import { readPairs } from '../../circuits/pairs.js';
import { scrub, SCRUB_BASELINES, type ScrubBaseline, type ScrubResult } from '../../circuits/scrub.js';
import { histogramSpec } from '../../plot/histogram.js';
import { writePlot } from '../../plot/vega.js';
import { fmt, fmtPercent, globalsOf, intArg, loadModel, out, printJson, table } from '../common.js';
import { checkOutputs, PLOT_FLAG, plotOutput, jsonOutput, writeJsonFile } from '../output.js';
import { choiceArg, numberArg } from './probe.js';

interface ScrubFlags {
  data: string;
  samples: number;
  seed: number;
  baseline: ScrubBaseline;
  far: number;
  out?: string;
  plot?: string;
}

export function registerScrub(program: Command): void {
  program
    .command('scrub')
    .description('causal scrubbing: how much of the loss a hypothesis about the circuit explains')
    .argument(
      '<hypothesis.json>',
      'the hypothesis: {"output": [...], "heads": {"a1.h0": {"q": ..., "k": ..., "v": ...}}}',
    )
    .requiredOption(
      '--data <file.jsonl>',
      'examples, one per line: {"clean": TEXT} or {"clean_ids": [...]}, optional "positions" (scored)',
    )
    .option('--samples <n>', 'scrubbed evaluations per example, each with fresh draws', intArg(1), 4)
    .option('--seed <n>', 'seed of the resampling', intArg(0), 0)
    .option(
      '--baseline <b>',
      `what loss recovered 0 is: ${Object.keys(SCRUB_BASELINES).join(' or ')}`,
      choiceArg(Object.keys(SCRUB_BASELINES) as ScrubBaseline[]),
      'random',
    )
    .option(
      '--far <x>',
      'an example is far from the mean when its loss recovered differs by more',
      numberArg,
      0.5,
    )
    .option('--out <file.json>', 'write the result (as --json prints it)')
    .option(PLOT_FLAG, 'histogram of the per-example loss recovered')
    .addHelpText(
      'after',
      `
A hypothesis claims which senders (input, a{l}.h{h}, m{l}) the logits and each listed head's q, k and v
inputs read, and which feature of the input ("agree": token, prev_token, position, all, none) those
senders carry. Scrubbing computes each claimed input on another example that agrees on the feature at
that position (a fresh draw per position), following the listed heads' own claims recursively;
everything unclaimed is computed on a random example. A claimed head that is not listed is computed
exactly on its example. Examples are resampled among those of the same length; the loss is the
next-token cross-entropy at each example's "positions" (default: every position but the last).

loss recovered = (scrubbed - baseline) / (clean - baseline)

Examples:
  sonde --model test/fixtures/induction-2l scrub examples/scrub/induction-refined.json \\
    --data examples/scrub/induction-2l.jsonl --plot scrub.svg
  sonde scrub hypothesis.json --data pairs.jsonl --baseline listed-inputs --json`,
    )
    .action(async (file: string, o: ScrubFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      checkOutputs([jsonOutput(o.out), plotOutput(o.plot)], g.force);
      const hypothesis = readHypothesis(file);
      const model = await loadModel(g);
      const examples = readPairs(model, o.data, { cleanOnly: true });
      const r = await scrub(model, examples, hypothesis, {
        samples: o.samples,
        seed: o.seed,
        baseline: o.baseline,
        far: o.far,
        where: file,
      });
      const doc = { model: model.source, hypothesis: file, data: o.data, ...r };
      if (o.out) writeJsonFile(o.out, doc);
      if (o.plot) await writePlot(o.plot, plotSpec(r, file));
      if (g.json) {
        printJson({ ...doc, out: o.out ?? null, plot: o.plot ?? null });
        return;
      }
      report(r, file, examples.length);
      if (o.out) out(`\nWrote ${o.out}`);
      if (o.plot) out(`plot: ${o.plot}`);
    });
}

function report(r: ScrubResult, file: string, n: number): void {
  out(
    `Causal scrubbing of ${file} on ${n} examples (${r.samples} samples each, seed ${r.seed}; ` +
      `${r.rows} forward rows in ${r.forwardPasses} pass${r.forwardPasses === 1 ? '' : 'es'})`,
  );
  out(`baseline: ${r.baseline} (${r.baselineDescription})`);
  const rows = [
    ['loss', 'value'],
    ['clean', fmt(r.cleanLoss)],
    ['scrubbed', fmt(r.scrubbedLoss)],
    ['baseline', fmt(r.baselineLoss)],
  ];
  for (const line of table(rows, [false, true])) out(line);
  out(`\nloss recovered: ${fmt(r.lossRecovered, 3)}`);
  const d = r.distribution;
  const q = d.quantiles;
  out(
    `per example (${d.count}): mean ${fmt(d.mean, 3)}, std ${fmt(d.std, 3)}, ` +
      `quantiles 5% ${fmt(q.q05, 3)}  25% ${fmt(q.q25, 3)}  50% ${fmt(q.q50, 3)}  75% ${fmt(q.q75, 3)}  95% ${fmt(q.q95, 3)}`,
  );
  out(
    `${d.farFromMean.fraction === 0 ? '0%' : fmtPercent(d.farFromMean.fraction)} of examples are more than ${d.farFromMean.threshold} from the mean` +
      (d.count < n ? ` (${n - d.count} examples have clean = baseline and no loss recovered)` : ''),
  );
}

function plotSpec(r: ScrubResult, file: string) {
  return histogramSpec({
    title: `Causal scrubbing: ${file}`,
    subtitle: `loss recovered ${fmt(r.lossRecovered, 3)} (baseline ${r.baseline}), per-example mean ${fmt(r.distribution.mean, 3)}, std ${fmt(r.distribution.std, 3)}`,
    ...r.distribution.histogram,
    xTitle: 'loss recovered per example',
    yTitle: 'examples',
  });
}
