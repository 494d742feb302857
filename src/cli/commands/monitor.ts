// sonde monitor: run a probe with a threshold over texts (or alongside generation) and report where it fires.
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { monitoredGeneration, runMonitor, type MonitorSpec } from '../../methods/monitor.js';
import { loadProbe } from '../../methods/probes.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fmt,
  fmtToken,
  globalsOf,
  intArg,
  loadModel,
  out,
  printJson,
  table,
  temperatureArg,
} from '../common.js';
import { numberArg } from './probe.js';
import { readTexts } from './steer.js';
import { checkPlotPath } from '../output.js';

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
    .option('--plot <file.svg>', 'score at each position of each text')
    .addHelpText(
      'after',
      `
Examples:
  sonde monitor --probe probe.json --data examples/monitor-texts.txt
  sonde monitor --probe probe.json --prompt "Once upon a time" --generate 40 --stop-on-fire`,
    )
    .action(async (o: MonitorOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      if ((o.data === undefined) === (o.prompt === undefined))
        throw new UsageError('give --data FILE or --prompt TEXT');
      if (o.generate !== undefined && o.prompt === undefined)
        throw new UsageError('--generate needs --prompt');
      checkPlotPath(o.plot);
      const model = await loadModel(g);
      const probe = loadProbe(o.probe);
      const spec: MonitorSpec = { hook: probe.hook, probe, threshold: o.threshold };
      const threshold = o.threshold ?? probe.threshold;
      let texts: string[];
      let scores: number[][];
      let tokens: string[][];
      let hits: { text: number; position: number; token: string; score: number }[];
      let stopped: boolean | null = null;
      if (o.generate !== undefined) {
        const r = monitoredGeneration(model, o.prompt!, spec, {
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
        texts = o.data ? readTexts(o.data) : [o.prompt!];
        ({ scores, tokens, hits } = runMonitor(model, texts, spec));
      }
      if (o.plot) await writePlot(o.plot, scoresSpec(scores, tokens, threshold, probe.labels[1]));
      if (g.json) {
        printJson({
          model: model.source,
          probe: o.probe,
          hook: probe.hook,
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

function scoresSpec(scores: number[][], tokens: string[][], threshold: number, label: string): TopLevelSpec {
  const values = scores.flatMap((row, t) =>
    row.map((score, position) => ({ text: `text ${t}`, position, token: tokens[t]![position] ?? '', score })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Monitor score per position ("${label}")`, subtitle: `threshold ${fmt(threshold)}` },
    width: 480,
    height: 220,
    layer: [
      {
        data: { values },
        mark: { type: 'line', point: true },
        encoding: {
          x: { field: 'position', type: 'quantitative', title: 'token position' },
          y: { field: 'score', type: 'quantitative', title: 'score' },
          color: { field: 'text', type: 'nominal', title: null },
          tooltip: [{ field: 'token' }, { field: 'score' }],
        },
      },
      {
        data: { values: [{ threshold }] },
        mark: { type: 'rule', strokeDash: [4, 4] },
        encoding: { y: { field: 'threshold' } },
      },
    ],
  } as TopLevelSpec;
}
