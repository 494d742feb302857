// sonde monitor: run a probe with a threshold over texts (or alongside generation) and report where it fires.
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { monitoredGeneration, runMonitor, type MonitorSpec } from '../../methods/monitor.js';
import { loadProbe, type Position } from '../../methods/probes.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fitText,
  fmt,
  fmtToken,
  globalsOf,
  intArg,
  loadModel,
  out,
  printJson,
  table,
  temperatureArg,
  truncateFlags,
  truncateOption,
  type TruncateKeep,
} from '../common.js';
import { numberArg } from './probe.js';
import { readFittedTexts } from './steer.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface MonitorOpts {
  probe: string;
  data?: string;
  prompt?: string;
  threshold?: number;
  generate?: number;
  stopOnFire?: boolean;
  seed: number;
  temperature: number;
  plot?: string;
  truncate?: TruncateKeep | true;
}

export function registerMonitor(program: Command): void {
  program
    .command('monitor')
    .description('run a probe with a threshold over texts or alongside generation; report where it fires')
    .requiredOption('--probe <probe.json>', "a probe file (from 'sonde probe --out')")
    .option('--data <file.txt>', 'texts to scan, one per line')
    .option('--prompt <text>', 'one text to scan (or to continue with --generate)')
    .option('--threshold <x>', "score above which the monitor fires (default: the probe's)", numberArg)
    .option('--generate <n>', 'generate N tokens after --prompt with the monitor alongside', intArg(1))
    .option('--stop-on-fire', 'with --generate: stop at the first generated token where the monitor fires')
    .option('--seed <n>', 'sampling seed', intArg(0), 0)
    .option('--temperature <t>', 'sampling temperature (0 = greedy)', temperatureArg, 0)
    .option(PLOT_FLAG, 'the scores where the probe is read (a bar per text, or a line per text)')
    .addOption(truncateOption())
    .addHelpText(
      'after',
      `
Examples:
  sonde monitor --probe probe.json --data examples/monitor-texts.txt
  sonde monitor --probe probe.json --prompt "Once upon a time" --generate 40 --stop-on-fire`,
    )
    .action(async (o: MonitorOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      checkPlotPath(o.plot, g.force);
      if ((o.data === undefined) === (o.prompt === undefined))
        throw new UsageError('give --data FILE or --prompt TEXT');
      if (o.generate !== undefined && o.prompt === undefined)
        throw new UsageError('--generate needs --prompt');
      const model = await loadModel(g);
      const fit = truncateFlags(o, cmd);
      const probe = loadProbe(o.probe);
      const spec: MonitorSpec = {
        hook: probe.hook,
        probe,
        position: probe.position,
        threshold: o.threshold,
      };
      const threshold = o.threshold ?? probe.threshold;
      let texts: string[];
      let scores: (number | null)[][];
      let tokens: string[][];
      let hits: { text: number; position: number; token: string; score: number }[];
      let stopped: boolean | null = null;
      if (o.generate !== undefined) {
        const prompt = fitText(model, o.prompt!, fit, '--prompt', o.generate);
        const r = await monitoredGeneration(model, prompt, spec, {
          maxTokens: o.generate,
          seed: o.seed,
          temperature: o.temperature,
          stopOnFire: o.stopOnFire === true,
        });
        texts = [r.text];
        scores = [r.scores];
        tokens = [model.tokenStrings(r.tokens)];
        hits = r.hits.map((h) => ({ text: 0, position: h.position, token: h.token, score: h.score }));
        stopped = r.stopped;
      } else {
        const input = o.data
          ? readFittedTexts(model, o.data, fit, '--data')
          : { texts: [o.prompt!], ids: [fitText(model, o.prompt!, fit, '--prompt')] };
        texts = input.texts;
        ({ scores, tokens, hits } = await runMonitor(model, input.ids, spec));
      }
      const readAt = READ_AT[probe.position](o.generate !== undefined);
      if (o.plot) await writePlot(o.plot, scoresSpec(scores, tokens, threshold, probe.labels[1], readAt));
      if (g.json) {
        printJson({
          model: model.source,
          probe: o.probe,
          hook: probe.hook,
          position: probe.position,
          threshold,
          texts,
          hits,
          scores,
          ...(stopped === null ? {} : { stopped }),
        });
        return;
      }
      out(
        `Monitor ${o.probe} (${probe.hook}, "${probe.labels[1]}" above ${fmt(threshold)}) over ${texts.length} text(s)`,
      );
      out(`Read ${readAt}, as the probe was trained (position '${probe.position}').`);
      if (o.generate !== undefined)
        out(`Generated: ${texts[0]}${stopped ? '  [stopped: monitor fired]' : ''}`);
      if (!hits.length) {
        out('No position fires.');
        return;
      }
      const rows = [['text', 'pos', 'token', 'score']];
      for (const h of hits)
        rows.push([String(h.text), String(h.position), fmtToken(h.token), fmt(h.score, 3)]);
      for (const line of table(rows, [true, true, false, true])) out(line);
    });
}

/** Where a probe trained at each position rule is read (the rule is recorded in the probe file). */
const READ_AT: Record<Position, (generating: boolean) => string> = {
  all: () => 'at every token',
  last: (gen) =>
    gen ? 'at the end of the prompt and of each generated sentence' : 'at the last token of each text',
  mean: (gen) =>
    gen
      ? 'by the mean so far at the end of the prompt and of each generated sentence'
      : 'by the mean over each text',
};

function scoresSpec(
  scores: (number | null)[][],
  tokens: string[][],
  threshold: number,
  label: string,
  readAt: string,
): TopLevelSpec {
  // Only the positions the probe's rule reads are drawn: one bar per text when it reads one per text.
  const values = scores.flatMap((row, t) =>
    row.flatMap((score, position) =>
      score === null ? [] : [{ text: `text ${t}`, position, token: tokens[t]![position] ?? '', score }],
    ),
  );
  const perText = scores.every((row) => row.filter((s) => s !== null).length <= 1);
  const rule = {
    data: { values: [{ threshold }] },
    mark: { type: 'rule', strokeDash: [4, 4] },
    encoding: { y: { datum: threshold } },
  };
  const y = { field: 'score', type: 'quantitative', title: `score ("${label}")` };
  const tooltip = [{ field: 'text' }, { field: 'position' }, { field: 'token' }, { field: 'score' }];
  const main = perText
    ? {
        data: { values },
        mark: { type: 'bar' },
        encoding: {
          x: { field: 'text', type: 'nominal', sort: null, title: null, axis: { labelAngle: 0 } },
          y,
          color: {
            condition: { test: `datum.score > ${threshold}`, value: '#e45756' },
            value: '#4c78a8',
          },
          tooltip,
        },
      }
    : {
        data: { values },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'position', type: 'quantitative', title: 'token position' },
          y,
          color: { field: 'text', type: 'nominal', title: null },
          tooltip,
        },
      };
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: perText ? `Monitor score per text ("${label}")` : `Monitor score per position ("${label}")`,
      subtitle: `read ${readAt}; fires above ${fmt(threshold)} (dashed)`,
    },
    width: perText ? Math.max(160, 60 * scores.length) : 480,
    height: 220,
    layer: [main, rule],
  } as TopLevelSpec;
}
