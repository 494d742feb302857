// sonde attribute: attribution patching (AtP*, Kramár et al. 2024): the first-order estimate of every
// activation patch of a sweep from one forward and one backward pass.
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { ATTRIBUTION_TARGETS, attributionCompared } from '../../methods/attribution.js';
import { patchingTable, type PatchDirection, type PatchTarget } from '../../methods/patching.js';
import { writePlot } from '../../plot/vega.js';
import {
  fmt,
  globalsOf,
  loadModel,
  out,
  printJson,
  table,
  truncateOption,
  type TruncateKeep,
} from '../common.js';
import { createProgress, reportTo } from '../progress.js';
import { heatmapSpec, promptPair } from './patch.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface AttributeFlags {
  clean: string;
  corrupt: string;
  answer: string;
  wrong: string;
  component: string;
  perPosition?: boolean;
  direction: string;
  qkFix: boolean;
  gradDrop?: boolean;
  compare?: boolean;
  plot?: string;
  truncate?: TruncateKeep | true;
}

export function registerAttribute(program: Command): void {
  program
    .command('attribute')
    .description('attribution patching: estimate every activation patch from one forward and backward pass')
    .requiredOption('--clean <text>', 'the prompt on which the model gives the answer')
    .requiredOption('--corrupt <text>', 'a prompt of the same token length on which it does not')
    .requiredOption('--answer <token>', 'the clean answer (one token; the metric is its logit minus --wrong)')
    .requiredOption('--wrong <token>', 'the corrupt answer (one token)')
    .option('--component <name>', `what to patch: ${ATTRIBUTION_TARGETS.join(', ')}`, 'resid_pre')
    .option('--per-position', 'one estimate per position (default for resid_pre, attn_out, mlp_out)')
    .option('--no-per-position', 'all positions at once (default for heads: z, q, k, v)')
    .option('--direction <d>', 'denoise or noise (as sonde patch)', 'denoise')
    .option('--no-qk-fix', "targets q, k: the plain linear estimate instead of AtP*'s exact softmax")
    .option('--grad-drop', "also compute AtP*'s GradDrop magnitudes (one backward pass per layer)")
    .option('--compare', 'also run real activation patching and print the correlation')
    .addOption(truncateOption())
    .option(PLOT_FLAG, 'write a heatmap of the estimate')
    .action(async (o: AttributeFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      if (o.direction !== 'denoise' && o.direction !== 'noise')
        throw new UsageError(`--direction '${o.direction}': use denoise or noise`);
      checkPlotPath(o.plot, g.force);
      const model = await loadModel(g);
      const opts = {
        ...promptPair(model, o, cmd),
        answer: o.answer,
        wrong: o.wrong,
        target: o.component as PatchTarget,
        perPosition: o.perPosition,
        direction: o.direction as PatchDirection,
      };
      const bar = createProgress(g);
      let compared: Awaited<ReturnType<typeof attributionCompared>>;
      try {
        compared = await attributionCompared(model, {
          ...opts,
          qkFix: o.qkFix,
          gradDrop: o.gradDrop,
          compare: o.compare,
          onProgress: reportTo(bar, 'patching'),
        });
      } finally {
        bar.stop();
      }
      const { result, correlation: corr } = compared;
      const actual = compared.actual?.values ?? null;
      // Position columns are labelled with their tokens, as in `sonde patch`.
      const m = patchingTable(model, result);
      const { columns } = m;
      const label = {
        method: `Attribution patching${result.qkFixed ? ' (QK fix)' : ''}`,
        measure: 'first-order estimate of the normalised logit difference',
        valueTitle: 'estimate',
      };
      if (o.plot) await writePlot(o.plot, heatmapSpec(result, m.rows, columns, m.values, label));
      if (g.json) {
        printJson({
          model: model.source,
          ...result,
          actual,
          correlation: corr,
          matrix: {
            rows: m.rows,
            columns,
            rowAxis: m.rowAxis,
            columnAxis: m.columnAxis,
            values: m.values,
          },
          plot: o.plot ?? null,
        });
        return;
      }
      out(
        `Attribution patching (${result.direction}, ${result.target}${result.qkFixed ? ', QK fix' : ''}) on ` +
          `${result.cleanTokens.length} tokens: ${result.forwardPasses} forward, ${result.backwardPasses} backward passes`,
      );
      out(
        `metric: clean ${fmt(result.cleanMetric)}, corrupt ${fmt(result.corruptMetric)}; values: 0 = corrupt, 1 = clean`,
      );
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
      if (corr !== null) out(`\ncorrelation with activation patching: ${corr.toFixed(3)}`);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}
