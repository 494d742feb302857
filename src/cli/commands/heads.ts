// sonde heads: previous-token, induction and duplicate-token scores of every attention head.
import type { Command } from 'commander';
import { headScores, type HeadScores } from '../../methods/heads.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import { fmt, globalsOf, intArg, loadModel, out, printJson, table } from '../common.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

export function registerHeads(program: Command): void {
  program
    .command('heads')
    .description("every attention head's previous-token, induction and duplicate-token scores")
    .option('--seq-len <n>', 'length of the repeated random sequence (default: 40, or what fits)', intArg(2))
    .option('--batch-size <n>', 'random sequences averaged', intArg(1), 8)
    .option('--seed <n>', 'seed for the random tokens', intArg(0), 0)
    .option('--threshold <x>', 'score above which a head is named (the usual detectors use 0.4)', Number, 0.4)
    .option(PLOT_FLAG, 'heatmaps (layer x head) of the three scores')
    .addHelpText(
      'after',
      `
Scores are mean attention on [BOS, r, r] with r random tokens: previous-token (to position i-1),
induction (to the token after the earlier copy: seq_len-1 back) and duplicate-token (to the earlier copy).

Examples:
  sonde heads
  sonde --model induction-model heads --json`,
    )
    .action(
      async (
        o: { seqLen?: number; batchSize: number; seed: number; threshold: number; plot?: string },
        cmd: Command,
      ) => {
        const g = globalsOf(cmd);
        checkPlotPath(o.plot, g.force);
        const model = await loadModel(g);
        const s = await headScores(model, { seqLen: o.seqLen, batch: o.batchSize, seed: o.seed });
        const named = (m: number[][]) =>
          m
            .flatMap((r, l) => r.map((x, h) => ({ layer: l, head: h, score: x })))
            .filter((x) => x.score > o.threshold);
        const result = {
          model: model.source,
          ...s,
          threshold: o.threshold,
          previousTokenHeads: named(s.previousToken),
          inductionHeads: named(s.induction),
          duplicateTokenHeads: named(s.duplicateToken),
        };
        if (o.plot) await writePlot(o.plot, headsPlotSpec(s));
        if (g.json) {
          printJson(result);
          return;
        }
        out(`Head scores on ${s.batch} repeated random sequences of ${s.seqLen} tokens`);
        out(`Loss: first repeat ${fmt(s.lossFirstRepeat)}, second repeat ${fmt(s.lossSecondRepeat)}`);
        const rows = [['head', 'prev-token', 'induction', 'duplicate']];
        s.induction.forEach((r, l) =>
          r.forEach((x, h) =>
            rows.push([
              `L${l}H${h}`,
              fmt(s.previousToken[l]![h]!, 3),
              fmt(x, 3),
              fmt(s.duplicateToken[l]![h]!, 3),
            ]),
          ),
        );
        for (const line of table(rows, [false, true, true, true])) out(line);
        const list = (xs: { layer: number; head: number }[]) =>
          xs.length ? xs.map((x) => `L${x.layer}H${x.head}`).join(', ') : 'none';
        out(
          `\nAbove ${o.threshold}: previous-token ${list(result.previousTokenHeads)}; induction ${list(result.inductionHeads)}`,
        );
      },
    );
}

/** Three layer x head heatmaps, one per score. */
export function headsPlotSpec(s: HeadScores): TopLevelSpec {
  const rows = (['previousToken', 'induction', 'duplicateToken'] as const).flatMap((kind) =>
    s[kind].flatMap((r, l) => r.map((score, h) => ({ kind, layer: `L${l}`, head: `H${h}`, score }))),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Attention-head scores on ${s.batch} repeated random sequences of ${s.seqLen} tokens`,
    data: { values: rows },
    facet: { column: { field: 'kind', type: 'nominal', title: null } },
    spec: {
      width: { step: 36 },
      height: { step: 36 },
      mark: 'rect',
      encoding: {
        x: { field: 'head', type: 'ordinal', title: 'head' },
        y: { field: 'layer', type: 'ordinal', title: 'layer' },
        color: { field: 'score', type: 'quantitative', scale: { domain: [0, 1], scheme: 'viridis' } },
        tooltip: [{ field: 'score', type: 'quantitative', format: '.3f' }],
      },
    },
  } as TopLevelSpec;
}
