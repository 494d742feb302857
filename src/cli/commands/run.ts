// sonde run: tokens, top-k next-token predictions at every position, and the mean next-token loss.
import type { Command } from 'commander';
import { promptPredictions, type PromptPredictions } from '../../methods/predictions.js';
import {
  fmt,
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

export const DEFAULT_PROMPT = 'Once upon a time';

export interface RunResult extends PromptPredictions {
  model: string;
  prompt: string | null;
  prependBos: boolean;
}

export function registerRun(program: Command): void {
  program
    .command('run')
    .description('run a prompt: its tokens, the top-k next-token predictions at each position, and the loss')
    .option('--prompt <text>', 'the text to run', DEFAULT_PROMPT)
    .option(
      '--tokens <ids>',
      'token ids instead of text, e.g. 1,403,407 (models without a tokenizer)',
      idListArg,
    )
    .addOption(truncateOption())
    .option('--top-k <n>', 'predictions shown per position', intArg(0), 5)
    .option('--prepend-bos', "prepend the BOS token (default: what the model's tokenizer does)")
    .option('--no-prepend-bos', 'do not prepend the BOS token')
    .addHelpText(
      'after',
      `
The loss is the mean next-token cross-entropy over the prompt, in nats (JSON field "loss"; null for a
single token). "losses" holds the cross-entropy of each actual next token.

Examples:
  sonde run --prompt "Once upon a time"
  sonde run --prompt "Once upon a time" --top-k 3 --json
  sonde --model path/to/model run --tokens 1,2,3`,
    )
    .action(async (opts: InputFlags & { topK: number }, cmd: Command) => {
      const g = globalsOf(cmd);
      const model = await loadModel(g);
      const input = resolveInput(model, inputFlags(opts, cmd));
      const r: RunResult = {
        model: model.source,
        prompt: input.prompt,
        prependBos: input.prependBos,
        ...(await promptPredictions(model, input.ids, opts.topK)),
      };
      if (g.json) return printJson(r);
      printRun(r);
    });
}

function printRun(r: RunResult): void {
  const n = r.tokens.length;
  const loss =
    r.loss === null ? 'loss n/a (one token)' : `loss ${fmt(r.loss)} nats (mean over ${n - 1} next tokens)`;
  out(`${n} token${n === 1 ? '' : 's'} · ${loss}`);
  out();
  const rows = [['pos', 'id', 'token', 'loss', r.topK ? `top-${r.topK} next tokens` : '']];
  r.tokens.forEach((id, p) => {
    const preds = r.predictions[p]!.map((q) => `${fmtToken(q.token, 14)} ${fmtPercent(q.prob)}`).join('  ');
    rows.push([String(p), String(id), fmtToken(r.strings[p]!), fmt(r.losses[p - 1] ?? null, 3), preds]);
  });
  for (const line of table(rows, [true, true, false, true, false])) out(line);
  out();
  out('loss: cross-entropy (nats) of each token given the tokens before it');
}
