// sonde info: the model's configuration, size, source folder and tokenizer.
import type { Command } from 'commander';
import type { HookedTransformer } from '../../index.js';
import {
  fmtCount,
  globalsOf,
  loadModel,
  out,
  parameterCount,
  printJson,
  table,
  tokenizerSummary,
} from '../common.js';

export function modelInfo(model: HookedTransformer) {
  return {
    source: model.source,
    ...model.cfg,
    params: parameterCount(model),
    tokenizer: tokenizerSummary(model),
    hookPoints: model.hookNames().length,
  };
}

export function registerInfo(program: Command): void {
  program
    .command('info')
    .description("the model's configuration, parameter count, source folder, tokenizer and hook points")
    .addHelpText(
      'after',
      `
With --json: the ModelConfig fields at the top level, plus source, params, tokenizer and hookPoints.

Examples:
  sonde info
  sonde --model path/to/hf-model info --json`,
    )
    .action(async (_opts: unknown, cmd: Command) => {
      const g = globalsOf(cmd);
      const info = modelInfo(await loadModel(g));
      if (g.json) return printJson(info);
      const { source, params, tokenizer, hookPoints, ...cfg } = info;
      const tok = tokenizer
        ? `${tokenizer.kind}, ${tokenizer.vocabSize} tokens, BOS ${tokenizer.bosId ?? 'none'}, EOS ${tokenizer.eosId ?? 'none'}, ` +
          `prepends BOS: ${tokenizer.prependBosDefault ? 'yes' : 'no'}`
        : 'none (pass token ids with --tokens)';
      const rows: string[][] = [
        ['source', source],
        ['parameters', `${params.toLocaleString('en-US')} (${fmtCount(params)})`],
        ['tokenizer', tok],
        ['hook points', String(hookPoints)],
      ];
      for (const [k, v] of Object.entries(cfg)) rows.push([k, describe(v)]);
      for (const line of table(rows)) out(line);
    });
}

function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return v.map(String).join(', ');
  if (typeof v === 'object') {
    return Object.entries(v as Record<string, unknown>)
      .map(([k, x]) => `${k}=${String(x)}`)
      .join(', ');
  }
  return String(v);
}
