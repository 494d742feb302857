// sonde compare: layer-by-layer representation similarity (linear CKA or SVCCA) of two models.
import fs from 'node:fs';
import type { Command } from 'commander';
import { UsageError } from '../../index.js';
import { defaultCorpus } from '../../organisms/induction.js';
import { similarityMatrix, type SimilarityMatrix, type SimilarityMethod } from '../../methods/similarity.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fitText,
  fmt,
  globalsOf,
  intArg,
  loadModel,
  out,
  printJson,
  table,
  truncateFlags,
  truncateOption,
  type TruncateFlags,
  type TruncateKeep,
} from '../common.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

function label(hook: string): string {
  const m = /^blocks\.(\d+)\.hook_(.+)$/.exec(hook);
  if (!m) return hook;
  return m[2] === 'resid_pre' ? `L${m[1]} in` : m[2] === 'resid_post' ? `L${m[1]} out` : `L${m[1]} ${m[2]}`;
}

function heatmapSpec(s: SimilarityMatrix, a: string, b: string): TopLevelSpec {
  const values = s.values.flatMap((r, i) =>
    r.map((v, j) => ({ a: label(s.rows[i]!), ai: i, b: label(s.columns[j]!), bj: j, v })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: `${s.method === 'cka' ? 'linear CKA' : 'SVCCA'}: ${a} vs ${b}`,
    data: { values },
    width: 40 * s.columns.length,
    height: 40 * s.rows.length,
    layer: [
      {
        mark: 'rect',
        encoding: {
          x: { field: 'b', type: 'ordinal', sort: { field: 'bj' }, title: `model B (${b})` },
          y: { field: 'a', type: 'ordinal', sort: { field: 'ai' }, title: `model A (${a})` },
          color: {
            field: 'v',
            type: 'quantitative',
            scale: { domain: [0, 1], scheme: 'viridis' },
            title: s.method,
          },
        },
      },
      {
        mark: { type: 'text', fontSize: 10 },
        encoding: {
          x: { field: 'b', type: 'ordinal', sort: { field: 'bj' } },
          y: { field: 'a', type: 'ordinal', sort: { field: 'ai' } },
          text: { field: 'v', type: 'quantitative', format: '.2f' },
          color: { condition: { test: 'datum.v > 0.6', value: 'black' }, value: 'white' },
        },
      },
    ],
  } as TopLevelSpec;
}

/** Texts: the data file's paragraphs (blank-line separated), the first `n`. */
function texts(file: string, n: number): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read --data '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const docs = text
    .split(/\n\s*\n/)
    .map((d) => d.trim())
    .filter((d) => d.length > 0);
  if (docs.length === 0) throw new UsageError(`--data '${file}' has no text`);
  return docs.slice(0, n);
}

interface CompareOpts {
  modelA?: string;
  modelB?: string;
  data?: string;
  texts: number;
  method: string;
  plot?: string;
  truncate?: TruncateKeep | true;
}

export function registerCompare(program: Command): void {
  program
    .command('compare')
    .description("layer-by-layer similarity (linear CKA or SVCCA) of two models' residual streams")
    .option('--model-a <dir>', 'first model folder (default: the built-in stories260K)')
    .option('--model-b <dir>', 'second model folder (default: the built-in stories260K)')
    .option('--data <file>', 'text whose paragraphs are run through both models (default: built-in stories)')
    .option('--texts <n>', 'paragraphs used', intArg(1), 16)
    .option('--method <m>', 'cka or svcca', 'cka')
    .option(PLOT_FLAG, 'write the similarity matrix as a heatmap')
    .addOption(truncateOption())
    .addHelpText(
      'after',
      `
Rows are model A's residual streams (each block's input, then the last block's output), columns model B's.
Both models must share a tokenizer; positions of all texts (without BOS) are the samples. A --data
paragraph longer than the smaller context is refused unless --truncate; the built-in stories keep
their first tokens that fit.

Examples:
  sonde compare --model-a induction-seed0 --model-b induction-seed1 --plot cka.svg
  sonde compare --method svcca --json`,
    )
    .action(async (o: CompareOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      if (o.method !== 'cka' && o.method !== 'svcca')
        throw new UsageError(`--method must be cka or svcca, got '${o.method}'`);
      checkPlotPath(o.plot, g.force);
      const a = await loadModel(g, o.modelA ?? g.model);
      const b = await loadModel(g, o.modelB ?? g.model);
      // Both models run model A's tokens, so a paragraph must fit the smaller context.
      const both = {
        cfg: { nCtx: Math.min(a.cfg.nCtx, b.cfg.nCtx), bosTokenId: a.cfg.bosTokenId },
        encode: (t: string) => a.encode(t),
      };
      // The built-in stories are samples, not the user's text: each is cut to its first tokens that fit.
      const fit: TruncateFlags =
        o.data === undefined && o.truncate === undefined ? { truncate: 'first' } : truncateFlags(o, cmd);
      const source = o.data === undefined ? 'the built-in stories' : `--data '${o.data}'`;
      const ids = texts(o.data ?? defaultCorpus(), o.texts).map((t, i) =>
        fitText(both, t, fit, `paragraph ${i + 1} of ${source}`),
      );
      const s = await similarityMatrix(a, b, ids, {
        method: o.method as SimilarityMethod,
      });
      if (o.plot) await writePlot(o.plot, heatmapSpec(s, a.source, b.source));
      if (g.json) {
        printJson({ modelA: a.source, modelB: b.source, ...s, ...(o.plot ? { plot: o.plot } : {}) });
        return;
      }
      out(`${s.method === 'cka' ? 'Linear CKA' : 'SVCCA'} over ${s.samples} positions`);
      out(`rows: ${a.source}; columns: ${b.source}`);
      const rows = [
        ['', ...s.columns.map(label)],
        ...s.values.map((r, i) => [label(s.rows[i]!), ...r.map((v) => fmt(v, 3))]),
      ];
      for (const line of table(rows, [false, ...s.columns.map(() => true)])) out(line);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}
