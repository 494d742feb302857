// sonde sae features / sonde sae show: feature dashboards (SAE-Vis / Neuronpedia style) from a corpus scan
// kept in a DuckDB feature store (by default <sae dir>/features.duckdb), reused while it matches.
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { HookedTransformer } from '../../hooks/hooked-transformer.js';
import { histogramSpec } from '../../plot/histogram.js';
import { writePlot, type TopLevelSpec } from '../../plot/vega.js';
import { featureDashboard } from '../../sae/dashboard.js';
import {
  DEFAULT_SCAN_CTX,
  DEFAULT_SCAN_TOKENS,
  FEATURE_STORE_FILE,
  featureStorePath,
  openOrScanStore,
} from '../../sae/feature-scan.js';
import { FeatureStore, type FeatureContext, type FeatureStoreInfo } from '../../sae/feature-store.js';
import { checkSaeFitsModel, saeFingerprint } from '../../sae/features.js';
import { modelMismatch } from '../../sae/provenance.js';
import { loadSaeLens } from '../../sae/saelens.js';
import type { SparseAutoencoder } from '../../sae/sae.js';
import {
  fmt,
  fmtCount,
  fmtPercent,
  fmtToken,
  globalsOf,
  intArg,
  loadModel,
  note,
  out,
  printJson,
  table,
  warn,
  type GlobalOptions,
} from '../common.js';
import { createProgress } from '../progress.js';
import { choiceArg } from './probe.js';
import { checkOutput, checkPlotPath, PLOT_FLAG } from '../output.js';

interface ScanFlags {
  sae?: string;
  data?: string;
  nTokens: number;
  ctx: number;
  batchSize?: number;
  db?: string;
  rescan?: boolean;
}

function scanOptions(cmd: Command): Command {
  return cmd
    .option(
      '--data <file>',
      'corpus: documents separated by blank lines, or .jsonl of {"text"} (default: the built-in stories)',
    )
    .option('--n-tokens <n>', 'tokens to scan, BOS left out', intArg(1), DEFAULT_SCAN_TOKENS)
    .option(
      '--ctx <n>',
      'tokens per context, BOS included (longer documents are split)',
      intArg(2),
      DEFAULT_SCAN_CTX,
    )
    .option('--batch-size <n>', 'contexts per forward pass (default: by d_sae and vocabulary)', intArg(1))
    .option('--db <file>', `the feature store (default: <sae dir>/${FEATURE_STORE_FILE})`)
    .option('--rescan', 'scan again even when the store matches');
}

interface Opened {
  store: FeatureStore;
  sae: SparseAutoencoder | null;
  model: HookedTransformer | null;
  reused: boolean;
  seconds: number;
}

/**
 * Opens the store for the flags, scanning first when there is none, it does not match, or --rescan.
 * `lenient`: settings left at their defaults are not compared (sonde sae show takes any scan of the SAE).
 */
async function openOrScan(
  g: GlobalOptions,
  o: ScanFlags,
  cmd: Command,
  lenient: boolean,
  feature?: number,
): Promise<Opened> {
  const checkFeature = (dSae: number) => {
    if (feature !== undefined && feature >= dSae)
      throw new UsageError(`--feature ${feature} is outside the SAE's ${dSae} latents (0..${dSae - 1})`);
  };
  if (!o.sae && !o.db) throw new UsageError('give --sae DIR (or --db FILE of an earlier scan)');
  const dbPath = o.db ?? featureStorePath(o.sae!);
  if (!o.sae) {
    if (!fs.existsSync(dbPath))
      throw new UsageError(`no feature store at ${dbPath}: give --sae DIR to scan one`);
    const store = await FeatureStore.open(dbPath);
    try {
      checkFeature(store.dSae);
    } catch (e) {
      store.close();
      throw e;
    }
    let sae: SparseAutoencoder | null = null;
    let model: HookedTransformer | null = null;
    // The SAE and model it was made with, when they are still there: for the logits.
    const saeDir = store.info.sae;
    if (fs.existsSync(path.join(saeDir, 'cfg.json'))) {
      try {
        sae = loadSaeLens(saeDir);
        model = await loadModel({
          ...g,
          model: g.model ?? (fs.existsSync(store.info.model) ? store.info.model : undefined),
        });
        if ((await saeFingerprint(sae)) !== store.info.saeFingerprint) sae = null;
      } catch {
        sae = null;
      }
    }
    return { store, sae, model: sae ? model : null, reused: true, seconds: 0 };
  }
  if (!fs.existsSync(o.sae) || !fs.statSync(o.sae).isDirectory())
    throw new UsageError(`--sae: '${o.sae}' is not a folder`);
  const sae = loadSaeLens(o.sae);
  checkFeature(sae.dSae);
  checkOutput({ flag: o.db ? '--db' : '--sae', path: dbPath, kind: 'file', existing: 'reuse' });
  const model = await loadModel(g);
  checkSaeFitsModel(model, sae);
  const otherModel = modelMismatch(sae.cfg.metadata, model.source);
  if (otherModel) warn(otherModel);
  const given = (name: string) => !lenient || cmd.getOptionValueSource(name) === 'cli';
  const progress = createProgress(g);
  let last = -1;
  try {
    const opened = await openOrScanStore(model, sae, {
      dbPath,
      saeDir: o.sae,
      data: o.data,
      nTokens: o.nTokens,
      ctx: o.ctx,
      batchSize: o.batchSize,
      rescan: o.rescan,
      compare: { corpus: given('data'), tokens: given('nTokens'), ctx: given('ctx') },
      onNote: (line) => note(g, line),
      onProgress: (p) => {
        if (last < 0) progress.start(p.totalTokens, 'scanning');
        progress.increment(p.tokens - Math.max(last, 0));
        last = p.tokens;
      },
    });
    if (!opened.reused && opened.store.info.tokensScanned < o.nTokens)
      note(g, `the corpus has only ${opened.store.info.tokensScanned} tokens: scanned all of them`);
    return { ...opened, sae, model };
  } finally {
    progress.stop();
  }
}

function describeStore(info: FeatureStoreInfo): string {
  const hook = info.hookOut ? `${info.hook} -> ${info.hookOut}` : info.hook;
  return `${info.sae} at ${hook}: ${info.dSae} latents, ${fmtCount(info.tokensScanned)} tokens (${info.sequences} contexts of up to ${info.ctx}) of ${info.corpus}`;
}

function tokenList(tokens: { text: string; count: number }[]): string {
  return tokens.map((t) => `${fmtToken(t.text, 14)}×${t.count}`).join(' ');
}

/** Text bars for a histogram. */
function bars(edges: number[], counts: number[], f: (x: number) => string = (x) => fmt(x, 3)): string[] {
  const most = Math.max(...counts, 1);
  const rows = counts.map((n, i) => [
    `[${f(edges[i]!)}, ${f(edges[i + 1]!)}${i === counts.length - 1 ? ']' : ')'}`,
    String(n),
    '█'.repeat(Math.round((n / most) * 40)) || (n > 0 ? '▏' : ''),
  ]);
  return table(rows, [false, true, false]);
}

/** A context as one line: newlines shown as ↵, the activating token in [[ ]]. */
function contextLine(c: FeatureContext): string {
  return c.tokens
    .map((t, i) => {
      const s = t.text.replace(/\r?\n/g, '↵');
      return i === c.center ? `[[${s}]]` : s;
    })
    .join('');
}

export function registerSaeFeatures(sae: Command): void {
  scanOptions(
    sae
      .command('features')
      .description(
        'scan a corpus with an SAE into a DuckDB feature store and list its latents by density or max activation',
      )
      .requiredOption('--sae <dir>', 'SAELens folder (cfg.json, sae_weights.safetensors)'),
  )
    .option('--top-k <n>', 'latents listed', intArg(1), 20)
    .option('--order <by>', 'density or max (activation)', choiceArg(['density', 'max'] as const), 'density')
    .option('--bins <n>', 'bins of the log10 density histogram', intArg(1), 20)
    .addHelpText(
      'after',
      `
The scan stores every nonzero latent activation (BOS positions left out) with the tokens, so later
'sonde sae show' calls are queries. A store is reused while its SAE, model, corpus, --n-tokens and --ctx
match; --rescan scans again. The store is written to a temp file and renamed when complete.

Examples:
  sonde sae features --sae my-sae --n-tokens 50000
  sonde sae features --sae my-sae --order max --top-k 50 --json`,
    )
    .action(async (o: ScanFlags & { topK: number; order: 'density' | 'max'; bins: number }, cmd: Command) => {
      const g = globalsOf(cmd);
      const { store, reused, seconds } = await openOrScan(g, o, cmd, false);
      try {
        const features = await store.listFeatures({ orderBy: o.order, limit: o.topK, topTokens: 3 });
        const dens = await store.densityHistogram(o.bins);
        if (g.json) {
          printJson({
            db: store.path,
            reused,
            seconds: reused ? null : seconds,
            meta: store.info,
            live: dens.live,
            dead: dens.dead,
            densityHistogram: { edges: dens.edges, counts: dens.counts },
            orderBy: o.order,
            features,
          });
          return;
        }
        out(describeStore(store.info));
        out(
          `${store.path} (${reused ? 'reused' : `scanned in ${seconds.toFixed(1)} s`}); ${dens.live} live latents, ` +
            `${dens.dead} dead (${fmtPercent(dens.dead / store.dSae)})`,
        );
        if (dens.live > 0) {
          out('');
          out('log10 density (latents per bin):');
          for (const line of bars(dens.edges, dens.counts, (x) => x.toFixed(2))) out(`  ${line}`);
        }
        out('');
        out(`Top ${features.length} latents by ${o.order === 'density' ? 'density' : 'max activation'}:`);
        const rows = [['latent', 'density', 'max act', 'mean act', 'top tokens (×occurrences)']];
        for (const f of features)
          rows.push([
            String(f.feature),
            fmtPercent(f.density),
            fmt(f.maxAct),
            fmt(f.meanAct),
            tokenList(f.topTokens),
          ]);
        for (const line of table(rows, [true, true, true, true, false])) out(`  ${line}`);
        out('');
        out(
          `Look at one with: sonde sae show --sae ${store.info.sae} --feature ${features[0]?.feature ?? 0}`,
        );
      } finally {
        store.close();
      }
    });

  scanOptions(
    sae
      .command('show')
      .description(
        "one latent's dashboard: top-activating contexts, activation histogram, top and bottom logits, correlated latents",
      )
      .requiredOption('--feature <i>', 'latent index', intArg(0))
      .option('--sae <dir>', 'SAELens folder (cfg.json, sae_weights.safetensors)'),
  )
    .option('--contexts <n>', 'top-activating contexts shown', intArg(0), 10)
    .option('--window <w>', 'tokens either side of the activating one', intArg(0), 8)
    .option('--bins <n>', 'bins of the activation histogram', intArg(1), 20)
    .option('--top-k <k>', 'top and bottom logit tokens', intArg(0), 10)
    .option(PLOT_FLAG, 'write the activation histogram')
    .addHelpText(
      'after',
      `
Uses the feature store of an earlier scan of the SAE (any corpus and size, unless --data, --n-tokens or --ctx
are given, or --rescan); without one it scans first. Logits are the latent's direct effect: its decoder row
through ln_final's weight and the unembedding, without the final norm's scale (as SAE-Vis), for SAEs that
write to the residual stream.

Examples:
  sonde sae show --sae my-sae --feature 12
  sonde sae show --db my-sae/features.duckdb --feature 12 --contexts 20 --window 12 --json
  sonde sae show --sae my-sae --feature 12 --plot acts.svg`,
    )
    .action(
      async (
        o: ScanFlags & {
          feature: number;
          contexts: number;
          window: number;
          bins: number;
          topK: number;
          plot?: string;
        },
        cmd: Command,
      ) => {
        const g = globalsOf(cmd);
        checkPlotPath(o.plot, g.force);
        const { store, sae: s, model } = await openOrScan(g, o, cmd, true, o.feature);
        try {
          const f = o.feature;
          const d = await featureDashboard(store, s && model ? { sae: s, model } : null, f, {
            contexts: o.contexts,
            window: o.window,
            bins: o.bins,
            topK: o.topK,
          });
          const { summary, contexts, histogram: hist, logits, logitsUnavailable: logitsWhyNot } = d;
          if (o.plot)
            await writePlot(o.plot, activationHistogramSpec(store.info, hist.edges, hist.counts, f));
          if (g.json) {
            printJson({ db: store.path, ...d, plot: o.plot ?? null });
            return;
          }
          out(`Latent ${f} of ${describeStore(store.info)}`);
          out(
            `density ${fmtPercent(summary.density)} (${summary.nActive} of ${fmtCount(summary.tokensScanned)} tokens), ` +
              `max ${fmt(summary.maxAct)}, mean when active ${fmt(summary.meanAct)}`,
          );
          if (summary.nActive === 0) {
            out('It never fires on the scanned tokens (dead).');
          } else {
            out(`top tokens: ${tokenList(summary.topTokens)}`);
            out('');
            out(`Top ${contexts.length} activations ([[ ]] marks the token):`);
            const rows = contexts.map((c) => [String(c.rank), fmt(c.value), contextLine(c)]);
            for (const line of table(rows, [true, true, false])) out(`  ${line}`);
            out('');
            out(
              `Activation histogram (${hist.nonzero} nonzero; ${fmtCount(hist.zeros)} tokens at 0 not shown):`,
            );
            for (const line of bars(hist.edges, hist.counts)) out(`  ${line}`);
            if (d.correlated.length > 0) {
              out('');
              out(
                `Most correlated latents (Pearson r): ${d.correlated.map((c) => `${c.feature} (${fmt(c.correlation)})`).join(', ')}`,
              );
            }
          }
          out('');
          if (!logits) out(`No logits: ${logitsWhyNot}.`);
          else {
            out(`Logits (${logits.method}):`);
            const rows = [['promotes', '', 'suppresses', '']];
            for (let i = 0; i < Math.max(logits.top.length, logits.bottom.length); i++) {
              const t = logits.top[i];
              const b = logits.bottom[i];
              rows.push([
                t ? fmtToken(t.token) : '',
                t ? fmt(t.value) : '',
                b ? fmtToken(b.token) : '',
                b ? fmt(b.value) : '',
              ]);
            }
            for (const line of table(rows, [false, true, false, true])) out(`  ${line}`);
          }
          if (o.plot) out(`\nplot: ${o.plot}`);
        } finally {
          store.close();
        }
      },
    );
}

function activationHistogramSpec(
  info: FeatureStoreInfo,
  edges: number[],
  counts: number[],
  feature: number,
): TopLevelSpec {
  return histogramSpec({
    title: `Latent ${feature}: activation histogram`,
    subtitle: `${info.hookOut ?? info.hook}, nonzero activations over ${info.tokensScanned} tokens`,
    edges,
    counts,
    xTitle: 'activation',
    yTitle: 'tokens',
  });
}
