// sonde dla: direct logit attribution of one prediction to embeddings, heads, MLPs and biases.
import type { Command } from 'commander';
import { UsageError } from '../../index.js';
import { directLogitAttribution, rankComponents, type DlaResult } from '../../methods/dla.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import {
  fmt,
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
import { posArg, tokenFlag } from './lens.js';
import { DEFAULT_PROMPT } from './run.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface DlaOpts extends InputFlags {
  answer?: string;
  answerId?: number;
  wrong?: string;
  wrongId?: number;
  pos?: number;
  topK: number;
  plot?: string;
}

export function registerDla(program: Command): void {
  program
    .command('dla')
    .description('direct logit attribution: what each head, MLP and embedding adds to a logit (difference)')
    .option('--prompt <text>', 'the text to run', DEFAULT_PROMPT)
    .option(
      '--tokens <ids>',
      'token ids instead of text, e.g. 1,403,407 (models without a tokenizer)',
      idListArg,
    )
    .addOption(truncateOption())
    .option('--prepend-bos', "prepend the BOS token (default: what the model's tokenizer does)")
    .option('--no-prepend-bos', 'do not prepend the BOS token')
    .option('--answer <token>', 'the predicted token: text that is exactly one token, e.g. " Lily"')
    .option('--answer-id <n>', 'the answer as a token id', intArg(0))
    .option('--wrong <token>', 'attribute logit(answer) - logit(wrong) instead of logit(answer)')
    .option('--wrong-id <n>', 'the wrong token as a token id', intArg(0))
    .option('--pos <n>', 'the position whose next-token prediction is explained (default: the last)', posArg)
    .option('--top-k <n>', 'components listed, largest |contribution| first (0 = all)', intArg(0), 20)
    .option(PLOT_FLAG, 'bar chart of every component, sorted by contribution')
    .addHelpText(
      'after',
      `
Components: the token embedding (and position embedding), each attention head (its hook_result), each
attention output bias b_O, each MLP output, ln_final.b and unembed.b_U. The final norm is applied as
TransformerLens's apply_ln_to_stack does, with the scale of the actual final residual, so the
contributions sum to the model's logit difference.

Examples:
  sonde dla --prompt "Lily and Tom went to the park. Tom gave the ball to" --answer " Lily" --wrong " Tom"
  sonde dla --prompt "Once upon a time" --answer-id 407 --json
  sonde dla --prompt "One day, Lily saw a big dog" --pos 3 --answer " saw" --plot dla.svg`,
    )
    .action(async (o: DlaOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      checkPlotPath(o.plot, g.force);
      const model = await loadModel(g);
      const answer = tokenFlag(model, 'answer', o.answer, o.answerId);
      if (answer === undefined) throw new UsageError('missing --answer TOKEN (or --answer-id N)');
      const wrong = tokenFlag(model, 'wrong', o.wrong, o.wrongId);
      const input = resolveInput(model, inputFlags(o, cmd));
      const P = input.ids.length;
      if (o.pos !== undefined && (o.pos >= P || o.pos < -P))
        throw new UsageError(
          `--pos ${o.pos} is outside the ${P} tokens of the input (0..${P - 1}, or -1 for the last)`,
        );
      const r = await directLogitAttribution(model, input.ids, { answer, wrong, pos: o.pos });
      if (o.plot) await writePlot(o.plot, dlaPlotSpec(r, model.tokenStrings(r.tokens)));
      if (g.json) {
        printJson({ model: model.source, prompt: input.prompt, prependBos: input.prependBos, ...r });
        return;
      }
      printDla(r, model.tokenStrings(r.tokens), o.topK);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}

function metric(r: DlaResult): string {
  const a = `logit(${JSON.stringify(r.answer.token)})`;
  return r.wrong ? `${a} - logit(${JSON.stringify(r.wrong.token)})` : a;
}

function printDla(r: DlaResult, strings: string[], top: number): void {
  out(`Direct logit attribution of ${metric(r)} at position ${r.pos} (${fmtToken(strings[r.pos]!)})`);
  out(
    `model: ${fmt(r.logitDiff)} · sum of ${r.components.length} components: ${fmt(r.total)}` +
      ` (error ${fmt(r.error, 2)}) · final norm scale ${fmt(r.scale)}`,
  );
  out();
  const ranked = rankComponents(r.components);
  const shown = top === 0 ? ranked : ranked.slice(0, top);
  const max = Math.max(...ranked.map((c) => Math.abs(c.contribution)), 1e-12);
  const rows = [['component', 'contribution', '']];
  for (const c of shown) {
    const n = Math.round((Math.abs(c.contribution) / max) * 20);
    rows.push([c.name, fmt(c.contribution), (c.contribution < 0 ? '-' : '+').repeat(n)]);
  }
  for (const line of table(rows, [false, true, false])) out(line);
  if (shown.length < ranked.length)
    out(`(${ranked.length - shown.length} smaller components not shown: --top-k 0)`);
}

/** Bars per component, sorted by contribution, positive and negative in two colours. */
export function dlaPlotSpec(r: DlaResult, strings: string[]): TopLevelSpec {
  const values = [...r.components]
    .sort((x, y) => y.contribution - x.contribution)
    .map((c) => ({
      component: c.name,
      kind: c.kind,
      contribution: Math.round(c.contribution * 1e5) / 1e5,
      sign: c.contribution >= 0 ? 'positive' : 'negative',
    }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: `Direct logit attribution: ${metric(r)}`,
      subtitle: `position ${r.pos} (${JSON.stringify(strings[r.pos])}); model ${fmt(r.logitDiff)}, sum ${fmt(r.total)}`,
    },
    data: { values },
    width: 420,
    height: { step: 14 },
    mark: 'bar',
    encoding: {
      y: { field: 'component', type: 'nominal', sort: values.map((v) => v.component), title: null },
      x: { field: 'contribution', type: 'quantitative', title: 'direct contribution (logits)' },
      color: {
        field: 'sign',
        type: 'nominal',
        scale: { domain: ['positive', 'negative'], range: ['#4c78a8', '#e45756'] },
        legend: null,
      },
      tooltip: [{ field: 'component' }, { field: 'kind' }, { field: 'contribution' }],
    },
  } as TopLevelSpec;
}
