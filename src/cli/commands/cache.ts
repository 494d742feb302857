// sonde cache: run a prompt with runWithCache and describe the activations at the chosen hook points.
import type { Command } from 'commander';
import type { ModelConfig, Tensor } from '../../index.js';
import {
  collectList,
  fmt,
  fmtShape,
  fmtToken,
  globalsOf,
  idListArg,
  inputFlags,
  loadModel,
  normsAlong,
  out,
  positionAxis,
  printJson,
  resolveInput,
  truncateOption,
  table,
  tensorStats,
  toJson,
  validateHookNames,
  type InputFlags,
  type TensorStats,
} from '../common.js';
import { UsageError } from '../../errors.js';
import { headMatrices } from '../../methods/attention.js';
import { attentionPatternSpec } from '../../plot/attention.js';
import { writePlot } from '../../plot/vega.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';
import { DEFAULT_PROMPT } from './run.js';

export interface ActivationSummary extends TensorStats {
  name: string;
  /** The axis that `norms` runs along (1; 2 for attention scores and patterns: the query position). */
  positionAxis: number;
  /** L2 norm of the activation at each position. */
  norms: number[];
  values?: unknown;
}

/** Statistics of one cached activation, for the cache and demo commands. */
export async function summarize(
  cfg: ModelConfig,
  name: string,
  t: Tensor,
  withValues = false,
): Promise<ActivationSummary> {
  const axis = positionAxis(cfg, name, t);
  return {
    name,
    ...(await tensorStats(t)),
    positionAxis: axis,
    norms: await normsAlong(t, axis),
    ...(withValues ? { values: await t.toNested() } : {}),
  };
}

export function registerCache(program: Command): void {
  program
    .command('cache')
    .description('run a prompt and show statistics of the activations at one or more hook points')
    .requiredOption(
      '--hook <name>',
      "hook point name, e.g. blocks.0.hook_resid_pre (repeatable; see 'sonde hooks')",
      collectList,
    )
    .option('--prompt <text>', 'the text to run', DEFAULT_PROMPT)
    .option(
      '--tokens <ids>',
      'token ids instead of text, e.g. 1,403,407 (models without a tokenizer)',
      idListArg,
    )
    .addOption(truncateOption())
    .option('--values', 'include the full values (nested arrays; with --json, non-finite values are null)')
    .option(PLOT_FLAG, 'draw the attention patterns of the --hook ...attn.hook_pattern hooks (heads grid)')
    .option('--prepend-bos', "prepend the BOS token (default: what the model's tokenizer does)")
    .option('--no-prepend-bos', 'do not prepend the BOS token')
    .addHelpText(
      'after',
      `
For each hook: shape, dtype, mean / std / min / max / max |x| (over finite entries: masked attention
scores are -inf), and the L2 norm at each position (the query position for attention scores/patterns).

Examples:
  sonde cache --prompt "Once upon a time" --hook blocks.2.hook_resid_post
  sonde cache --hook blocks.0.attn.hook_pattern --hook blocks.4.hook_mlp_out --json --values
  sonde cache --hook blocks.1.attn.hook_pattern --plot attention.png`,
    )
    .action(async (opts: InputFlags & { hook: string[]; values?: boolean; plot?: string }, cmd: Command) => {
      const g = globalsOf(cmd);
      const hooks = [...new Set(opts.hook)];
      const patterns = hooks.filter((h) => h.endsWith('.hook_pattern'));
      if (opts.plot) {
        checkPlotPath(opts.plot, g.force);
        if (!patterns.length)
          throw new UsageError(
            '--plot draws attention patterns: give a --hook ending in .attn.hook_pattern, e.g. blocks.0.attn.hook_pattern',
          );
      }
      const model = await loadModel(g);
      validateHookNames(hooks, model.hookNames({ useAttnResult: true }));
      const useAttnResult = hooks.some((h) => h.endsWith('.attn.hook_result'));
      const input = resolveInput(model, inputFlags(opts, cmd));
      const { cache } = model.runWithCache(input.ids, { names: hooks, useAttnResult });
      const summaries = await Promise.all(
        hooks.map((h) => summarize(model.cfg, h, cache.get(h), opts.values === true)),
      );
      const strings = model.tokenStrings(input.ids);
      if (opts.plot) {
        const spec = attentionPatternSpec({
          hooks: await Promise.all(
            patterns.map(async (name) => ({ name, pattern: await headMatrices(cache.get(name)) })),
          ),
          tokens: strings,
        });
        await writePlot(opts.plot, spec);
      }
      if (g.json) {
        return printJson({
          model: model.source,
          prompt: input.prompt,
          prependBos: input.prependBos,
          tokens: input.ids,
          strings,
          hooks: summaries,
          plot: opts.plot ?? null,
        });
      }
      summaries.forEach((s, i) => {
        if (i > 0) out();
        printSummary(s, strings);
      });
      if (opts.plot) out(`\nplot: ${opts.plot}`);
    });
}

export function printSummary(s: ActivationSummary, strings: string[], indent = ''): void {
  out(`${indent}${s.name}  ${fmtShape(s.shape)}  ${s.dtype}`);
  const extra = s.nonFinite ? `  (${s.nonFinite} non-finite entries left out)` : '';
  out(
    `${indent}  mean ${fmt(s.mean)}  std ${fmt(s.std)}  min ${fmt(s.min)}  max ${fmt(s.max)}  max|x| ${fmt(s.absMax)}${extra}`,
  );
  out(
    `${indent}  L2 norm per position${s.positionAxis === 2 ? ' (query position, summed over heads)' : ''}:`,
  );
  const rows = s.norms.map((v, p) => [
    String(p),
    strings[p] !== undefined ? fmtToken(strings[p]!) : '',
    fmt(v),
  ]);
  for (const line of table(rows, [true, false, true])) out(`${indent}    ${line}`);
  if (s.values !== undefined) {
    out(`${indent}  values:`);
    out(
      toJson(roundNested(s.values), `${indent}  `)
        .split('\n')
        .map((l, i) => (i === 0 ? `${indent}  ${l}` : l))
        .join('\n'),
    );
  }
}

function roundNested(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(roundNested);
  return typeof v === 'number' && Number.isFinite(v) ? Number(v.toPrecision(4)) : v === undefined ? null : v;
}
