// sonde ablate: zero, mean or resample ablation of attention heads, and the loss with each ablated.
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { Tensor } from '../../engine/tensor.js';
import { repeatedTokens } from '../../methods/heads.js';
import {
  ABLATION_KINDS,
  ablate,
  ablateHeads,
  repeatLosses,
  type AblationKind,
} from '../../methods/ablation.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fmt,
  fmtHead,
  globalsOf,
  headArg,
  idListArg,
  inputFlags,
  intArg,
  loadModel,
  out,
  printJson,
  resolveInput,
  truncateOption,
  table,
} from '../common.js';
import { createProgress } from '../progress.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface AblateFlags {
  prompt?: string;
  tokens?: number[];
  repeated?: number;
  batchSize: number;
  seed: number;
  kind: string;
  heads?: string;
  head?: { layer: number; head: number };
  plot?: string;
}

function rowsOf(t: Tensor): number[][] {
  const flat = t.toArraySync() as number[];
  const P = t.shape[1]!;
  return Array.from({ length: t.shape[0]! }, (_, b) => flat.slice(b * P, (b + 1) * P));
}

export function registerAblate(program: Command): void {
  program
    .command('ablate')
    .description('ablate attention heads (zero, mean or resample) and report the loss')
    .option('--prompt <text>', 'input text')
    .option('--tokens <ids>', 'input token ids', idListArg)
    .addOption(truncateOption())
    .option(
      '--repeated <n>',
      'repeated random tokens [BOS, r, r] with r of length n (the induction probe)',
      intArg(2),
    )
    .option('--batch-size <n>', 'rows of repeated random tokens', intArg(1), 8)
    .option('--seed <n>', 'seed of the random tokens', intArg(0), 0)
    .option(
      '--kind <k>',
      `ablation: ${ABLATION_KINDS.join(', ')} (mean and resample over other random rows)`,
      'zero',
    )
    .option('--heads <all>', 'ablate every head in turn (default)')
    .option('--head <LxHy>', 'ablate one head, e.g. L1H2 (or 1.2)', headArg)
    .option(PLOT_FLAG, 'write a heatmap of the loss with each head ablated')
    .action(async (o: AblateFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      const kind = o.kind as AblationKind;
      if (!ABLATION_KINDS.includes(kind))
        throw new UsageError(`--kind '${o.kind}': use ${ABLATION_KINDS.join(', ')}`);
      if (o.heads !== undefined && o.heads !== 'all')
        throw new UsageError(`--heads '${o.heads}': only 'all'`);
      if (o.heads !== undefined && o.head) throw new UsageError('give --heads all or --head LxHy, not both');
      checkPlotPath(o.plot, g.force);
      const model = await loadModel(g);
      let input: number[][];
      let reference: number[][] | undefined;
      if (o.repeated !== undefined) {
        if (o.prompt !== undefined || o.tokens !== undefined)
          throw new UsageError('give one of --repeated, --prompt or --tokens');
        input = rowsOf(repeatedTokens(model, o.repeated, o.batchSize, o.seed));
        reference = rowsOf(repeatedTokens(model, o.repeated, Math.max(2, o.batchSize), o.seed + 1));
      } else {
        input = [
          resolveInput(model, inputFlags(o, cmd), 'Once upon a time, there was a little girl named Lily.')
            .ids,
        ];
        if (kind !== 'zero')
          throw new UsageError(`--kind ${kind} needs other inputs to draw from: use --repeated N`);
      }
      const T = o.repeated;
      const split = (byPos: number[]) => (T ? repeatLosses(byPos, T) : null);
      const opts = {
        kind,
        dataset: reference,
        resampleFrom:
          reference?.slice(0, input.length).length === input.length
            ? reference.slice(0, input.length)
            : undefined,
      };
      const { nLayers: L, nHeads: H } = model.cfg;
      if (o.head) {
        if (o.head.layer >= L || o.head.head >= H)
          throw new UsageError(`--head ${fmtHead(o.head)}: the model has ${L} layers of ${H} heads`);
        const r = await ablate(model, input, {
          ...opts,
          target: 'head',
          layer: o.head.layer,
          head: o.head.head,
        });
        const doc = {
          model: model.source,
          head: fmtHead(o.head),
          ...r,
          repeats: split(r.lossByPosition),
          ablatedRepeats: split(r.ablatedLossByPosition),
        };
        if (g.json) return printJson(doc);
        out(`${kind}-ablating ${fmtHead(o.head)}: loss ${fmt(r.loss)} -> ${fmt(r.ablatedLoss)}`);
        if (doc.repeats && doc.ablatedRepeats)
          out(
            `second repeat: ${fmt(doc.repeats.second)} -> ${fmt(doc.ablatedRepeats.second)} (first repeat ${fmt(doc.repeats.first)})`,
          );
        return;
      }
      const bar = createProgress(g);
      let s;
      try {
        s = await ablateHeads(model, input, {
          ...opts,
          onProgress: (done, total) => {
            if (done === 1) bar.start(total, 'ablating');
            bar.increment();
          },
        });
      } finally {
        bar.stop();
      }
      const grid = s.ablatedLossByPosition.map((l) =>
        l.map((h) => (T ? repeatLosses(h, T).second : h.reduce((a, b) => a + b, 0) / h.length)),
      );
      const what = T ? 'second-repeat loss' : 'loss';
      const base = T ? repeatLosses(s.lossByPosition, T) : null;
      if (o.plot) await writePlot(o.plot, spec(grid, kind, what));
      if (g.json)
        return printJson({
          model: model.source,
          ...s,
          metric: what,
          values: grid,
          repeats: base,
          plot: o.plot ?? null,
        });
      out(
        `${kind}-ablating each head: ${what} (base ${fmt(base ? base.second : s.loss)}${base ? `, first repeat ${fmt(base.first)}` : ''})`,
      );
      const header = ['layer', ...Array.from({ length: H }, (_, h) => `H${h}`)];
      const rows = [header, ...grid.map((r, l) => [`L${l}`, ...r.map((x) => x.toFixed(2))])];
      for (const line of table(
        rows,
        header.map((_, i) => i > 0),
      ))
        out(line);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}

function spec(grid: number[][], kind: string, what: string): TopLevelSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `Head ablation (${kind})`, subtitle: what },
    data: { values: grid.flatMap((r, l) => r.map((v, h) => ({ layer: `L${l}`, head: `H${h}`, value: v }))) },
    mark: 'rect',
    width: Math.max(160, 28 * grid[0]!.length),
    height: Math.max(80, 22 * grid.length),
    encoding: {
      x: { field: 'head', type: 'ordinal', title: null },
      y: { field: 'layer', type: 'ordinal', title: null },
      color: { field: 'value', type: 'quantitative', title: what },
      tooltip: [
        { field: 'layer' },
        { field: 'head' },
        { field: 'value', type: 'quantitative', format: '.3f' },
      ],
    },
  } as TopLevelSpec;
}
