// sonde lens: the logit lens, every layer's residual stream read through the final norm and unembedding.
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError, type HookedTransformer } from '../../index.js';
import { loadTunedLens } from '../../methods/tuned-lens.js';
import { lensLayerLabels, logitLens, type LogitLensResult } from '../../methods/lens.js';
import { singleToken } from '../../methods/tokens.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fmtPercent,
  fmtToken,
  globalsOf,
  idListArg,
  inputFlags,
  intArg,
  loadModel,
  out,
  printJson,
  resolveInput,
  truncateOption,
  table,
  type InputFlags,
} from '../common.js';
import { DEFAULT_PROMPT } from './run.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

/** A token from --NAME TEXT or --NAME-id N (at most one of them); undefined when neither is given. */
export function tokenFlag(
  model: HookedTransformer,
  name: string,
  text: string | undefined,
  id: number | undefined,
): number | undefined {
  if (text !== undefined && id !== undefined)
    throw new UsageError(`give either --${name} or --${name}-id, not both`);
  if (id !== undefined) return singleToken(model, id, `--${name}-id`);
  if (text !== undefined) return singleToken(model, text, `--${name}`);
  return undefined;
}

/** An integer, negative counting from the end (-1 = the last position). */
export function posArg(value: string): number {
  const v = value.trim();
  if (!/^[-+]?\d+$/.test(v) || !Number.isSafeInteger(Number(v)))
    throw new InvalidArgumentError('Expected a position: an integer (negative counts from the end).');
  return Number(v);
}

interface LensOpts extends InputFlags {
  target?: string;
  targetId?: number;
  topK: number;
  tunedLens?: string;
  plot?: string;
}

export function registerLens(program: Command): void {
  program
    .command('lens')
    .description("the logit lens: each layer's residual stream through the final norm and the unembedding")
    .option('--prompt <text>', 'the text to run', DEFAULT_PROMPT)
    .option(
      '--tokens <ids>',
      'token ids instead of text, e.g. 1,403,407 (models without a tokenizer)',
      idListArg,
    )
    .addOption(truncateOption())
    .option('--prepend-bos', "prepend the BOS token (default: what the model's tokenizer does)")
    .option('--no-prepend-bos', 'do not prepend the BOS token')
    .option(
      '--target <token>',
      'a token (text that is exactly one token, e.g. " Lily") to follow: its rank and probability',
    )
    .option('--target-id <n>', 'the target as a token id', intArg(0))
    .option('--top-k <n>', 'top tokens reported per layer and position', intArg(1), 3)
    .option('--tuned-lens <dir>', "read block inputs through a tuned lens saved by 'sonde tuned-lens train'")
    .option(PLOT_FLAG, "heatmap (layer × position) of the target's probability, or the top-1 probability")
    .addHelpText(
      'after',
      `
Layer "L<l> in" is the residual stream entering block l (hook_resid_pre; "L0 in" is the embedding) and
"final" the last block's output, whose lens logits are the model's own. Each residual goes through the
model's final norm with its scale recomputed from that residual (as TransformerLens's logit lens does),
then the unembedding.

Examples:
  sonde lens --prompt "Once upon a time there was a little girl named Lily. One day, Lily" --target " was"
  sonde lens --prompt "Once upon a time" --top-k 5 --json
  sonde lens --prompt "Tom and Lily went to the park. Tom gave the ball to" --target " Lily" --plot lens.svg
  sonde --model path/to/model lens --tokens 1,2,3 --target-id 4`,
    )
    .action(async (o: LensOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      checkPlotPath(o.plot, g.force);
      const model = await loadModel(g);
      const target = tokenFlag(model, 'target', o.target, o.targetId);
      const input = resolveInput(model, inputFlags(o, cmd));
      const tunedLens = o.tunedLens ? loadTunedLens(o.tunedLens, model) : undefined;
      const r = await logitLens(model, input.ids, { target, topK: o.topK, tunedLens });
      const labels = lensLayerLabels(r.layers);
      if (o.plot) await writePlot(o.plot, lensPlotSpec(r, labels));
      if (g.json) {
        const { logits: _logits, ...rest } = r;
        void _logits;
        printJson({
          model: model.source,
          prompt: input.prompt,
          prependBos: input.prependBos,
          ...rest,
          labels,
          topK: o.topK,
        });
        return;
      }
      printLens(r, labels);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}

function printLens(r: LogitLensResult, labels: string[]): void {
  const P = r.tokens.length;
  out(`Logit lens over ${labels.length} layers × ${P} positions: top-1 token and its probability`);
  out();
  const head = ['pos', 'token', ...labels];
  const rows = [head];
  for (let p = 0; p < P; p++) {
    rows.push([
      String(p),
      fmtToken(r.strings[p]!, 14),
      ...r.top.map((layer) => {
        const t = layer[p]![0]!;
        return `${fmtToken(t.token, 12)} ${fmtPercent(t.prob)}`;
      }),
    ]);
  }
  for (const line of table(rows, [true, false])) out(line);
  if (r.targets && r.target) {
    out();
    out(`Target ${fmtToken(r.target.token)} (id ${r.target.id}): probability and rank (1 = top)`);
    out();
    const trows = [head];
    for (let p = 0; p < P; p++) {
      trows.push([
        String(p),
        fmtToken(r.strings[p]!, 14),
        ...r.targets.map((layer) => `${fmtPercent(layer[p]!.prob)} #${layer[p]!.rank}`),
      ]);
    }
    for (const line of table(trows, [true, false, ...labels.map(() => true)])) out(line);
  }
}

/** Heatmap: layer (final on top) × position, coloured by probability, with the top-1 token in each cell. */
export function lensPlotSpec(r: LogitLensResult, labels: string[]): TopLevelSpec {
  const P = r.tokens.length;
  const posLabels = r.strings.map((s, p) => `${p} ${JSON.stringify(s)}`);
  const values = [];
  for (let l = 0; l < labels.length; l++) {
    for (let p = 0; p < P; p++) {
      const top = r.top[l]![p]![0]!;
      const prob = r.targets ? r.targets[l]![p]!.prob : top.prob;
      values.push({
        layer: labels[l]!,
        position: posLabels[p]!,
        prob: Math.round(prob * 1e4) / 1e4,
        top: top.token,
        topProb: Math.round(top.prob * 1e4) / 1e4,
        ...(r.targets ? { rank: r.targets[l]![p]!.rank } : {}),
      });
    }
  }
  const what = r.target ? `probability of ${JSON.stringify(r.target.token)}` : 'top-1 probability';
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: `Logit lens: ${what} (cells: top-1 token)`,
    data: { values },
    width: { step: 56 },
    height: { step: 28 },
    encoding: {
      x: {
        field: 'position',
        type: 'ordinal',
        sort: posLabels,
        title: 'position',
        axis: { labelAngle: -45 },
      },
      y: { field: 'layer', type: 'ordinal', sort: [...labels].reverse(), title: 'layer (residual stream)' },
    },
    layer: [
      {
        mark: 'rect',
        encoding: {
          color: {
            field: 'prob',
            type: 'quantitative',
            title: r.target ? 'p(target)' : 'p(top-1)',
            scale: { scheme: 'viridis', domain: [0, 1] },
          },
          tooltip: [
            { field: 'layer' },
            { field: 'position' },
            { field: 'prob', title: r.target ? 'p(target)' : 'p(top-1)' },
            { field: 'top', title: 'top-1 token' },
            { field: 'topProb', title: 'p(top-1)' },
          ],
        },
      },
      {
        mark: { type: 'text', fontSize: 9, limit: 52 },
        encoding: {
          text: { field: 'top' },
          color: { condition: { test: 'datum.prob > 0.6', value: 'black' }, value: 'white' },
        },
      },
    ],
  } as TopLevelSpec;
}
