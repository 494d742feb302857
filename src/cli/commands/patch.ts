// sonde patch: activation patching between a clean and a corrupt prompt, by layer and position or head.
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { HookedTransformer } from '../../hooks/hooked-transformer.js';
import {
  activationPatching,
  patchingTable,
  PATCH_TARGETS,
  type PatchDirection,
  type PatchingResult,
  type PatchTarget,
} from '../../methods/patching.js';
import { divergingHeatmapSpec } from '../../plot/heatmap.js';
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
  truncateFlags,
  truncateOption,
  type TruncateKeep,
} from '../common.js';
import { createProgress, reportTo } from '../progress.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface PatchFlags {
  clean: string;
  corrupt: string;
  answer: string;
  wrong: string;
  component: string;
  perPosition?: boolean;
  direction: string;
  batchSize: number;
  plot?: string;
  truncate?: TruncateKeep | true;
}

/**
 * --clean and --corrupt as token ids within the model's context (sonde patch and attribute): refused
 * past it, or cut alike by --truncate, so that equal lengths stay equal.
 */
export function promptPair(
  model: HookedTransformer,
  o: { clean: string; corrupt: string; truncate?: TruncateKeep | true },
  cmd: Command,
): { clean: number[]; corrupt: number[] } {
  const flags = truncateFlags(o, cmd);
  return {
    clean: fitText(model, o.clean, flags, '--clean'),
    corrupt: fitText(model, o.corrupt, flags, '--corrupt'),
  };
}

export function registerPatch(program: Command): void {
  program
    .command('patch')
    .description('activation patching: which activations carry the difference between two prompts')
    .requiredOption('--clean <text>', 'the prompt on which the model gives the answer')
    .requiredOption('--corrupt <text>', 'a prompt of the same token length on which it does not')
    .requiredOption('--answer <token>', 'the clean answer (one token; the metric is its logit minus --wrong)')
    .requiredOption('--wrong <token>', 'the corrupt answer (one token)')
    .option('--component <name>', `what to patch: ${PATCH_TARGETS.join(', ')}`, 'resid_pre')
    .option('--per-position', 'patch each position separately (default for resid_pre, attn_out, mlp_out)')
    .option('--no-per-position', 'patch all positions at once (default for heads: z, q, k, v, pattern)')
    .option(
      '--direction <d>',
      'denoise (corrupt run, clean patch) or noise (clean run, corrupt patch)',
      'denoise',
    )
    .option('--batch-size <n>', 'patched runs per forward pass', intArg(1), 64)
    .addOption(truncateOption())
    .option(PLOT_FLAG, 'write a heatmap (layer x position, or layer x head)')
    .addHelpText(
      'after',
      `
The metric is logit(answer) - logit(wrong) at the final position, normalised so that the corrupt run
is 0 and the clean run 1, in both directions: denoising, 1 = the patch restores the clean answer;
noising, 0 = the patch destroys it (1 = no effect). Each layer's patched runs are batched and start at
that layer from the cached residual stream.

Examples:
  sonde patch --clean "Once upon a time, there was a little girl named Lily. One day," \\
    --corrupt "Once upon a time, there was a little girl named Tim. One day," \\
    --answer Lily --wrong Tim --plot lily.svg
  sonde patch ... --component z --direction noise --json`,
    )
    .action(async (o: PatchFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      if (o.direction !== 'denoise' && o.direction !== 'noise')
        throw new UsageError(`--direction '${o.direction}': use denoise or noise`);
      checkPlotPath(o.plot, g.force);
      const model = await loadModel(g);
      const prompts = promptPair(model, o, cmd);
      const bar = createProgress(g);
      let result: PatchingResult;
      try {
        result = await activationPatching(model, {
          ...prompts,
          answer: o.answer,
          wrong: o.wrong,
          target: o.component as PatchTarget,
          perPosition: o.perPosition,
          direction: o.direction as PatchDirection,
          batchSize: o.batchSize,
          onProgress: reportTo(bar, 'patching'),
        });
      } finally {
        bar.stop();
      }
      const m = patchingTable(model, result);
      const { columns } = m;
      if (o.plot) await writePlot(o.plot, heatmapSpec(result, m.rows, columns, m.values));
      if (g.json) {
        printJson({
          model: model.source,
          ...result,
          cleanTokenStrings: m.cleanStrings,
          corruptTokenStrings: m.corruptStrings,
          matrix: { rows: m.rows, columns, rowAxis: m.rowAxis, columnAxis: m.columnAxis, values: m.values },
          plot: o.plot ?? null,
        });
        return;
      }
      out(
        `Activation patching (${result.direction}, ${result.target}${result.perPosition ? ', per position' : ', all positions'}) ` +
          `on ${result.cleanTokens.length} tokens: ${result.runs} patched runs in ${result.forwardPasses} forward passes`,
      );
      out(
        `metric: logit(${fmtToken(result.answer!.token)}) - logit(${fmtToken(result.wrong!.token)}) at the final position; ` +
          `clean ${fmt(result.cleanMetric)}, corrupt ${fmt(result.corruptMetric)}`,
      );
      out(
        result.direction === 'denoise'
          ? 'values: 0 = corrupt, 1 = clean restored by the patch'
          : 'values: 1 = clean (no effect), 0 = the patch destroys the answer (corrupt)',
      );
      if (m.columnAxis === 'position') {
        out('positions: ' + columns.join('  '));
      }
      out('');
      const header = [
        m.rowAxis,
        ...(m.columnAxis === 'position' ? columns.map((_, i) => String(i)) : columns),
      ];
      const rows = [header, ...m.values.map((r, i) => [m.rows[i]!, ...r.map((x) => x.toFixed(2))])];
      for (const line of table(
        rows,
        header.map((_, i) => i > 0),
      ))
        out(line);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}

/** The patching heatmap: normalised values on a red/blue scale symmetric about 0 (at least ±1). */
export function heatmapSpec(
  r: Pick<PatchingResult, 'direction' | 'target'>,
  rows: string[],
  columns: string[],
  values: number[][],
  label: { method: string; measure: string; valueTitle: string } = {
    method: 'Activation patching',
    measure: 'normalised logit difference',
    valueTitle: 'patched',
  },
): TopLevelSpec {
  const what = r.direction === 'denoise' ? 'clean patched into corrupt' : 'corrupt patched into clean';
  return divergingHeatmapSpec({
    title: `${label.method}: ${r.target} (${what})`,
    subtitle: `${label.measure}: 0 = corrupt, 1 = clean`,
    rows,
    columns,
    values,
    valueTitle: label.valueTitle,
    atLeast: 1,
  });
}
