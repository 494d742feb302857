// sonde probe: train a linear probe on labelled texts at a hook point (or sweep every layer's resid_post).
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import {
  checkProbeLabels,
  collectActivations,
  probeScores,
  readLabelledJsonl,
  saveProbe,
  trainProbe,
  type Position,
  type ProbeKind,
  type ProbeResult,
} from '../../methods/probes.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fmt,
  globalsOf,
  intArg,
  loadModel,
  note,
  out,
  printJson,
  table,
  validateHookNames,
  warn,
} from '../common.js';
import { checkOutputs, PLOT_FLAG, plotOutput, jsonOutput } from '../output.js';

export function choiceArg<T extends string>(choices: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(choices as readonly string[]).includes(v))
      throw new InvalidArgumentError(`Expected one of ${choices.join(', ')}.`);
    return v as T;
  };
}

export function numberArg(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n)) throw new InvalidArgumentError('Expected a number.');
  return n;
}

function fractionArg(value: string): number {
  const x = numberArg(value);
  if (!(x > 0 && x < 1)) throw new InvalidArgumentError('Expected a number between 0 and 1 (exclusive).');
  return x;
}

interface ProbeOpts {
  hook?: string;
  layers?: string;
  data: string;
  position: Position;
  kind: ProbeKind;
  l2: number;
  epochs: number;
  seed: number;
  testFraction: number;
  labels: string;
  out?: string;
  plot?: string;
}

export function registerProbe(program: Command): void {
  program
    .command('probe')
    .description(
      'train a logistic or linear probe on labelled texts; held-out accuracy and a random-label control',
    )
    .requiredOption('--data <file.jsonl>', 'one {"text": ..., "label": 0 or 1} per line')
    .option('--hook <name>', 'hook point to probe (e.g. blocks.2.hook_resid_post)')
    .option(
      '--layers <all>',
      "'all': sweep every layer's hook_resid_post (the probe saved is the best layer's)",
    )
    .option(
      '--position <p>',
      'last, mean or all tokens of each text',
      choiceArg(['last', 'mean', 'all'] as const),
      'last',
    )
    .option('--kind <k>', 'logistic or linear', choiceArg(['logistic', 'linear'] as const), 'logistic')
    .option('--l2 <x>', 'L2 penalty', numberArg, 1e-3)
    .option('--epochs <n>', 'full-batch Adam steps', intArg(1), 300)
    .option('--seed <n>', 'seed of the split and the control labels', intArg(0), 0)
    .option('--test-fraction <x>', 'held-out fraction of the texts of each label', fractionArg, 0.25)
    .option('--labels <a,b>', 'names of label 0 and label 1', '0,1')
    .option('--out <probe.json>', 'write the probe file')
    .option(PLOT_FLAG, 'score histogram per class (one hook) or accuracy per layer (--layers all)')
    .addHelpText(
      'after',
      `
The control task trains the same probe on randomly permuted labels (about 0.5 held-out accuracy);
selectivity = accuracy - control.

Examples:
  sonde probe --hook blocks.2.hook_resid_post --data examples/gender-probe.jsonl --labels girl,boy --out probe.json
  sonde probe --layers all --data examples/gender-probe.jsonl --plot layers.svg`,
    )
    .action(async (o: ProbeOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      if (!o.hook && o.layers === undefined) throw new UsageError('give --hook NAME or --layers all');
      if (o.hook && o.layers !== undefined) throw new UsageError('give either --hook or --layers, not both');
      if (o.layers !== undefined && o.layers !== 'all')
        throw new UsageError("--layers: only 'all' is supported");
      const labelNames = o.labels.split(',');
      if (labelNames.length !== 2) throw new UsageError('--labels: give two names, e.g. girl,boy');
      checkOutputs([jsonOutput(o.out), plotOutput(o.plot)], g.force);
      const { texts, labels } = readLabelledJsonl(o.data);
      checkProbeLabels(labels, `data file '${o.data}'`);
      const model = await loadModel(g);
      const hooks = o.hook
        ? [o.hook]
        : Array.from({ length: model.cfg.nLayers }, (_, l) => `blocks.${l}.hook_resid_post`);
      validateHookNames(hooks, model.hookNames());
      const results: { hook: string; probe: ProbeResult; scores: Float32Array; y: number[] }[] = [];
      for (const hook of hooks) {
        note(g, `probing ${hook} on ${texts.length} texts`);
        const X = await collectActivations(model, texts, hook, { position: o.position });
        const y = X.textIndex.map((t) => labels[t]!);
        const probe = trainProbe(X, y, {
          kind: o.kind,
          l2: o.l2,
          epochs: o.epochs,
          seed: o.seed,
          testFraction: o.testFraction,
        });
        results.push({ hook, probe, scores: probeScores(probe, X), y });
      }
      for (const w of new Set(results.flatMap((r) => r.probe.warnings))) warn(w);
      const best = results.reduce((a, b) => (b.probe.testAcc > a.probe.testAcc ? b : a));
      if (o.out) {
        saveProbe(o.out, {
          ...best.probe,
          hook: best.hook,
          position: o.position,
          labels: [labelNames[0]!, labelNames[1]!],
          metrics: {
            trainAcc: best.probe.trainAcc,
            testAcc: best.probe.testAcc,
            controlAcc: best.probe.controlAcc,
            trainSize: best.probe.trainSize,
            testSize: best.probe.testSize,
          },
        });
      }
      if (o.plot)
        await writePlot(
          o.plot,
          results.length > 1 ? layerPlotSpec(results) : histogramSpec(best, labelNames),
        );
      const summary = results.map(({ hook, probe }) => ({
        hook,
        trainAcc: probe.trainAcc,
        testAcc: probe.testAcc,
        controlAcc: probe.controlAcc,
        selectivity: probe.selectivity,
        trainSize: probe.trainSize,
        testSize: probe.testSize,
        warnings: probe.warnings,
      }));
      if (g.json) {
        printJson({
          model: model.source,
          data: o.data,
          kind: o.kind,
          position: o.position,
          labels: labelNames,
          results: summary,
          best: { hook: best.hook, bias: best.probe.bias, weights: best.probe.weights },
          out: o.out ?? null,
        });
        return;
      }
      out(
        `${o.kind} probe, ${texts.length} texts (${o.position} position), labels ${labelNames.join(' / ')}`,
      );
      const rows = [['hook', 'train', 'held-out', 'control', 'selectivity']];
      for (const s of summary)
        rows.push([
          s.hook,
          fmt(s.trainAcc, 3),
          fmt(s.testAcc, 3),
          fmt(s.controlAcc, 3),
          fmt(s.selectivity, 3),
        ]);
      for (const line of table(rows, [false, true, true, true, true])) out(line);
      if (o.out) out(`\nWrote ${o.out} (${best.hook})`);
    });
}

function histogramSpec(
  r: { hook: string; scores: Float32Array; y: number[] },
  labels: string[],
): TopLevelSpec {
  const values = Array.from(r.scores, (s, i) => ({ score: s, label: labels[r.y[i]!] }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Probe scores at ${r.hook}`, subtitle: 'per true label' },
    data: { values },
    width: 420,
    height: 220,
    mark: { type: 'bar', opacity: 0.7 },
    encoding: {
      x: { field: 'score', type: 'quantitative', bin: { maxbins: 30 }, title: 'probe score' },
      y: { aggregate: 'count', type: 'quantitative', stack: null, title: 'texts' },
      color: { field: 'label', type: 'nominal', title: 'label' },
    },
  } as TopLevelSpec;
}

function layerPlotSpec(results: { hook: string; probe: ProbeResult }[]): TopLevelSpec {
  const values = results.flatMap(({ hook, probe }, layer) => [
    { layer, hook, series: 'held-out accuracy', accuracy: probe.testAcc },
    { layer, hook, series: 'control (random labels)', accuracy: probe.controlAcc },
  ]);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: 'Probe accuracy per layer (hook_resid_post)' },
    data: { values },
    width: 420,
    height: 240,
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'layer', type: 'ordinal', title: 'layer' },
      y: { field: 'accuracy', type: 'quantitative', scale: { domain: [0, 1] }, title: 'accuracy' },
      color: { field: 'series', type: 'nominal', title: null },
    },
  } as TopLevelSpec;
}
