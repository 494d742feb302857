// sonde graph: an attribution graph (circuit-tracer) of one prompt with per-layer transcoders replacing the
// MLPs: direct effects between features, error nodes, tokens and the top logits, pruned to what matters,
// with the replacement and completeness scores; written as circuit-tracer's graph file and drawn.
import path from 'node:path';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import type { AttributionGraph } from '../../circuits/attribution-graph.js';
import { GRAPH_INDEX, graphPlot, saveGraphFile } from '../../circuits/attribution-file.js';
import { strongestPaths } from '../../circuits/attribution-influence.js';
import { GRAPH_DEFAULTS, promptGraph, type PromptGraph } from '../../circuits/attribution-prompt.js';
import { defaultTranscodersDir, loadTranscoders } from '../../circuits/transcoder-set.js';
import { circuitSpec } from '../../plot/circuit.js';
import { writePlot } from '../../plot/vega.js';
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
  table,
  truncateOption,
  type TruncateKeep,
} from '../common.js';
import { checkOutputs, PLOT_FLAG, plotOutput, jsonOutput } from '../output.js';
import { createProgress } from '../progress.js';
import { numberArg } from './probe.js';
import { DEFAULT_PROMPT } from './run.js';

interface GraphOpts {
  prompt: string;
  tokens?: number[];
  prependBos?: boolean;
  truncate?: TruncateKeep | true;
  transcoders?: string;
  out?: string;
  plot?: string;
  slug?: string;
  nodeThreshold: number;
  edgeThreshold: number;
  maxLogits: number;
  logitProb: number;
  batchSize: number;
  top: number;
}

const fraction = (flag: string) => (v: string) => {
  const x = numberArg(v);
  if (!(x >= 0 && x <= 1)) throw new UsageError(`${flag} must be in [0, 1], got ${v}`);
  return x;
};

export function registerGraph(program: Command): void {
  program
    .command('graph')
    .description('attribution graph of a prompt with transcoders replacing the MLPs (circuit-tracer format)')
    .option('--prompt <text>', 'the text to run', DEFAULT_PROMPT)
    .option('--tokens <ids>', 'token ids instead of text, e.g. 1,403,407', idListArg)
    .addOption(truncateOption())
    .option('--prepend-bos', "prepend the BOS token (default: what the model's tokenizer does)")
    .option('--no-prepend-bos', 'do not prepend the BOS token')
    .option(
      '--transcoders <dir>',
      'folder of per-layer SAELens transcoders (default with the built-in model: assets/stories260K-transcoders)',
    )
    .option('--out <file.json>', "write the pruned graph as circuit-tracer's graph file")
    .option('--slug <name>', "the graph file's slug (default: the --out file name)")
    .option(PLOT_FLAG, 'draw the pruned graph')
    .option(
      '--node-threshold <x>',
      'keep the nodes holding this fraction of the influence',
      fraction('--node-threshold'),
      GRAPH_DEFAULTS.nodeThreshold,
    )
    .option(
      '--edge-threshold <x>',
      'keep the edges holding this fraction of the influence',
      fraction('--edge-threshold'),
      GRAPH_DEFAULTS.edgeThreshold,
    )
    .option('--max-logits <n>', 'at most this many logits are targets', intArg(1), GRAPH_DEFAULTS.maxLogits)
    .option(
      '--logit-prob <x>',
      '...the fewest whose probability reaches this',
      fraction('--logit-prob'),
      GRAPH_DEFAULTS.logitProb,
    )
    .option('--batch-size <n>', 'targets back-propagated together', intArg(1), GRAPH_DEFAULTS.batchSize)
    .option('--top <n>', 'features and paths listed', intArg(1), 8)
    .addHelpText(
      'after',
      `
The MLPs are replaced by the transcoders plus an error node per layer and position (what they miss), the
attention patterns and norm scales frozen at their values on the prompt: every feature's pre-activation and
every logit is then a sum of direct effects from the features, errors and tokens before it. The graph is
pruned as circuit-tracer does (influence on the logits through the normalised adjacency). --out also lists
the graph in graph-metadata.json beside it, the index circuit-tracer's viewer reads from a folder.

Examples:
  sonde graph --prompt "Once upon a time, there was a little girl named Lily. She"
  sonde graph --prompt "Tom and Lily went to the park. Lily" --out lily.json --plot lily.svg
  sonde graph --model ./my-model --transcoders ./my-transcoders --prompt "..." --json`,
    )
    .action(async (o: GraphOpts, cmd: Command) => {
      const g = globalsOf(cmd);
      checkOutputs([jsonOutput(o.out), plotOutput(o.plot)], g.force);
      if (g.model !== undefined && o.transcoders === undefined)
        throw new UsageError(
          '--transcoders DIR is needed with --model (the built-in ones are for stories260K)',
        );
      const dir = o.transcoders ?? defaultTranscodersDir();
      const model = await loadModel(g);
      const transcoders = loadTranscoders(dir, model.cfg);
      const input = resolveInput(model, inputFlags(o, cmd));
      const bar = createProgress(g);
      let made: PromptGraph;
      let started = false;
      try {
        made = await promptGraph(model, transcoders, input.ids, {
          nodeThreshold: o.nodeThreshold,
          edgeThreshold: o.edgeThreshold,
          maxLogits: o.maxLogits,
          logitProb: o.logitProb,
          batchSize: o.batchSize,
          slug: o.slug ?? (o.out ? path.basename(o.out, '.json') : 'sonde-graph'),
          scan: path.basename(path.resolve(dir)),
          prompt: input.prompt,
          onProgress: (done, total) => {
            if (!started) bar.start(total, 'attribution');
            started = true;
            bar.update(done);
          },
        });
      } finally {
        bar.stop();
      }
      const { graph, scores, pruned, file, tokenStrings: strings, logitStrings } = made;
      if (o.out) saveGraphFile(o.out, file);
      if (o.plot) await writePlot(o.plot, circuitSpec(graphPlot(file, graph.nLayers)));
      const paths = await strongestPaths(graph, pruned, graph.n - graph.logits.length, o.top);
      const name = (i: number) => nodeName(graph, i, strings, logitStrings);
      const kept = (from: number, to: number) => pruned.nodes.subarray(from, to).reduce((a, b) => a + b, 0);
      const nFeat = graph.features.length;
      const nErr = graph.nLayers * graph.nPos;
      let nonzero = 0;
      for (const v of graph.adjacency) if (v !== 0) nonzero++;
      const topFeatures = graph.features
        .map((f, i) => ({ ...f, node: i, influence: pruned.cumulativeInfluence[i]! }))
        .filter((f) => pruned.nodes[f.node])
        .sort((a, b) => a.influence - b.influence)
        .slice(0, o.top);
      const summary = {
        model: model.source,
        transcoders: path.resolve(dir),
        prompt: input.prompt ?? null,
        tokens: graph.tokens,
        tokenStrings: strings,
        logits: graph.logits.map((l, k) => ({ ...l, string: logitStrings[k] })),
        activeFeatures: nFeat,
        errorNodes: nErr,
        nodes: graph.n,
        nonzeroEdges: nonzero,
        replacementScore: scores.replacement,
        completenessScore: scores.completeness,
        pruned: {
          nodeThreshold: o.nodeThreshold,
          edgeThreshold: o.edgeThreshold,
          features: kept(0, nFeat),
          errors: kept(nFeat, nFeat + nErr),
          nodes: file.nodes.length,
          links: file.links.length,
        },
        topFeatures: topFeatures.map((f) => ({
          layer: f.layer,
          pos: f.pos,
          token: strings[f.pos],
          feature: f.index,
          activation: f.activation,
          cumulativeInfluence: f.influence,
        })),
        paths: paths.map((p) => ({ nodes: p.nodes.map(name), strength: p.strength })),
        out: o.out ?? null,
        plot: o.plot ?? null,
      };
      if (g.json) return printJson(summary);
      out(
        `Attribution graph of ${graph.nPos} tokens with ${transcoders.length} transcoders (${path.relative(process.cwd(), path.resolve(dir)) || dir})`,
      );
      out(
        `${nFeat} active features, ${nErr} error nodes, ${graph.nPos} tokens, ${graph.logits.length} logits: ${nonzero} nonzero direct effects`,
      );
      out(
        `logits: ${graph.logits.map((l, k) => `${fmtToken(logitStrings[k]!)} ${fmt(l.prob, 3)}`).join(', ')}`,
      );
      out(
        `replacement score ${fmt(scores.replacement, 3)}, completeness score ${fmt(scores.completeness, 3)}`,
      );
      out(
        `pruned (nodes ${o.nodeThreshold}, edges ${o.edgeThreshold}): ${summary.pruned.features} features, ${summary.pruned.errors} error nodes, ${file.links.length} links`,
      );
      out('');
      out(
        'Most influential features (cumulative influence: the share of all influence held by nodes this strong):',
      );
      const rows = [['layer', 'pos', 'token', 'feature', 'activation', 'cum. influence']];
      for (const f of topFeatures)
        rows.push([
          String(f.layer),
          String(f.pos),
          fmtToken(strings[f.pos]!),
          `#${f.index}`,
          fmt(f.activation, 3),
          fmt(f.influence, 3),
        ]);
      for (const line of table(rows, [true, true, false, false, true, true])) out(`  ${line}`);
      out('');
      out(
        `Strongest paths into ${fmtToken(logitStrings[0]!)} (product of each edge's share of its target's input):`,
      );
      for (const p of paths) out(`  ${fmt(p.strength, 3)}  ${p.nodes.map(name).join(' -> ')}`);
      if (o.out) out(`\ngraph file: ${o.out} (listed in ${GRAPH_INDEX} beside it)`);
      if (o.plot) out(`plot: ${o.plot}`);
    });
}

/** 'L3 #12 @5', 'err L2 @5', 'tok "She" @16', 'logit " She"'. */
function nodeName(g: AttributionGraph, i: number, strings: string[], logitStrings: string[]): string {
  const nFeat = g.features.length;
  if (i < nFeat) {
    const f = g.features[i]!;
    return `L${f.layer} #${f.index} @${f.pos}`;
  }
  const e = i - nFeat;
  if (e < g.nLayers * g.nPos) return `err L${Math.floor(e / g.nPos)} @${e % g.nPos}`;
  const t = e - g.nLayers * g.nPos;
  if (t < g.nPos) return `tok ${JSON.stringify(strings[t])} @${t}`;
  return `logit ${JSON.stringify(logitStrings[t - g.nPos])}`;
}
