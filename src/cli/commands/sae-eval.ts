// sonde sae eval: evaluate an SAELens SAE or transcoder on the model over a corpus: L0, MSE, explained
// variance, cosine similarity, cross-entropy loss recovered, dead and dense latents, density histogram.
import type { Command } from 'commander';
import { histogramSpec } from '../../plot/histogram.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import { defaultCorpusPath, readCorpus } from '../../sae/corpus.js';
import { evaluateSae, type SaeEvaluation } from '../../sae/evaluate.js';
import { evaluationDocuments, modelMismatch } from '../../sae/provenance.js';
import { loadSaeLens } from '../../sae/saelens.js';
import {
  fmt,
  fmtCount,
  fmtPercent,
  globalsOf,
  intArg,
  loadModel,
  note,
  out,
  printJson,
  table,
  warn,
} from '../common.js';
import { createProgress } from '../progress.js';
import { numberArg } from './probe.js';
import { checkPlotPath, PLOT_FLAG } from '../output.js';

interface EvalOpts {
  sae: string;
  data?: string;
  nTokens: number;
  ctx: number;
  batchSize: number;
  denseThreshold: number;
  bins: number;
  includeBos?: boolean;
  plot?: string;
}

export function registerSaeEval(sae: Command): void {
  sae
    .command('eval')
    .description('evaluate an SAE or transcoder on the model: L0, MSE, explained variance, CE loss recovered')
    .requiredOption('--sae <dir>', 'SAELens folder (cfg.json, sae_weights.safetensors)')
    .option(
      '--data <file>',
      'text corpus, documents separated by blank lines (default: the built-in stories)',
    )
    .option('--n-tokens <n>', 'tokens to run (BOS included)', intArg(2), 20000)
    .option('--ctx <n>', 'tokens per sequence', intArg(2), 128)
    .option('--batch-size <n>', 'sequences per forward pass', intArg(1), 8)
    .option(
      '--dense-threshold <x>',
      'latents firing on more than this fraction of tokens are dense',
      numberArg,
      0.1,
    )
    .option('--bins <n>', 'bins of the log10 density histogram', intArg(1), 20)
    .option(
      '--include-bos',
      'keep BOS positions (by default the SAE leaves them alone and they are not counted)',
    )
    .option(PLOT_FLAG, 'write the log10 feature density histogram')
    .addHelpText(
      'after',
      `
MSE is the mean over tokens of the squared error summed over the activation's width (per element: divided
by the width). CE loss recovered = (CE zero-ablated - CE with SAE) / (CE zero-ablated - CE clean): 1 = the
SAE loses nothing, 0 = as bad as zeroing the hook. Texts are packed into sequences that each start with BOS.

Examples:
  sonde sae eval --sae my-sae --n-tokens 20000
  sonde sae eval --sae my-sae --data stories.txt --ctx 256 --plot density.svg --json`,
    )
    .action(async (o: EvalOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      checkPlotPath(o.plot, g.force);
      const sae = loadSaeLens(o.sae);
      const model = await loadModel(g);
      const dataFile = o.data ?? defaultCorpusPath();
      // Data the SAE never saw where its cfg says which (the held-out documents of its training corpus).
      const docs = evaluationDocuments(sae.cfg.metadata, dataFile, readCorpus(dataFile));
      const warnings = [modelMismatch(sae.cfg.metadata, model.source), docs.warning].filter(
        (w): w is string => w !== null,
      );
      for (const w of warnings) warn(w);
      const texts = docs.texts;
      const progress = createProgress(g);
      let started = false;
      let r: SaeEvaluation;
      try {
        r = await evaluateSae(model, sae, texts, {
          ctx: o.ctx,
          batchSize: o.batchSize,
          maxTokens: o.nTokens,
          excludeBos: !o.includeBos,
          denseThreshold: o.denseThreshold,
          bins: o.bins,
          onProgress: (done, total) => {
            if (!started) progress.start(total, 'evaluating');
            started = true;
            progress.update(done);
          },
        });
      } finally {
        progress.stop();
      }
      const source = docs.relation === 'held-out' ? 'the held-out documents have' : 'the corpus has';
      if (r.tokens < o.nTokens) note(g, `${source} only ${r.tokens} tokens: evaluated on all of them`);
      if (o.plot) await writePlot(o.plot, densitySpec(r, o.sae));
      const c = sae.cfg;
      if (g.json) {
        printJson({
          sae: o.sae,
          model: model.source,
          data: o.data ?? null,
          measuredOn: docs.label,
          heldOut: docs.relation === 'held-out',
          warnings,
          architecture: c.architecture,
          dIn: c.dIn,
          dSae: c.dSae,
          dOut: c.dOut,
          ...r,
          plot: o.plot ?? null,
        });
        return;
      }
      const where = c.hookNameOut ? `${c.hookName} -> ${c.hookNameOut}` : c.hookName;
      out(
        `${c.hookNameOut ? 'Transcoder' : 'SAE'} ${where} (${c.architecture}, d_in ${c.dIn}, d_sae ${c.dSae}) on ` +
          `${fmtCount(r.tokens)} tokens (${r.sequences} sequences of up to ${r.ctx}) of ${o.data ?? 'the built-in stories'}, ${docs.label}`,
      );
      const dead = r.deadLatents.length;
      const rows = [
        ['L0 (active latents per token)', fmt(r.l0)],
        ['MSE (sum over d)', `${fmt(r.mse)}  (per element ${fmt(r.msePerElement)})`],
        ['explained variance', fmt(r.explainedVariance)],
        ['cosine similarity', fmt(r.cosineSimilarity)],
        ['L2 ratio |recons| / |x|', fmt(r.l2Ratio)],
        ['CE loss clean', fmt(r.ce.clean)],
        ['CE loss with SAE', fmt(r.ce.spliced)],
        ['CE loss zero-ablated', fmt(r.ce.zeroAblated)],
        ['CE loss recovered', fmt(r.ce.recovered)],
        ['dead latents (never fired)', `${dead} (${fmtPercent(dead / c.dSae)})`],
        [`dense latents (> ${r.denseThreshold})`, String(r.denseLatents.length)],
      ];
      for (const line of table(rows)) out(`  ${line}`);
      out(`statistics over ${fmtCount(r.rows)} rows${r.excludeBos ? ' (BOS positions left out)' : ''}`);
      out('');
      out('log10 feature density (latents per bin):');
      const { edges, counts } = r.densityHistogram;
      const most = Math.max(...counts, 1);
      // Runs of empty bins (between the never-fired latents at -10 and the rest) are shown as one '...'.
      const hist: string[][] = [];
      counts.forEach((n, i) => {
        if (n === 0 && i > 0 && i < counts.length - 1) {
          if (hist[hist.length - 1]?.[0] !== '...') hist.push(['...', '', '']);
          return;
        }
        hist.push([
          `[${edges[i]!.toFixed(2)}, ${edges[i + 1]!.toFixed(2)}${i === counts.length - 1 ? ']' : ')'}`,
          String(n),
          '#'.repeat(Math.round((n / most) * 40)),
        ]);
      });
      for (const line of table(hist, [false, true, false])) out(`  ${line}`);
      if (o.plot) out(`\nplot: ${o.plot}`);
    });
}

function densitySpec(r: SaeEvaluation, sae: string): TopLevelSpec {
  return histogramSpec({
    title: `Feature density: ${r.hookNameOut ?? r.hookName}`,
    subtitle: `${sae}: ${r.density.length} latents, ${r.deadLatents.length} dead, over ${r.rows} tokens`,
    ...r.densityHistogram,
    xTitle: 'log10 density (+1e-10)',
    yTitle: 'latents',
  });
}
