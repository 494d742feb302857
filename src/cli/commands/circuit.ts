// sonde circuit: find the edges of a model's graph that carry a task (ACDC, EAP, EAP-IG), or list the graph.
import { InvalidArgumentError, type Command } from 'commander';
import { UsageError } from '../../errors.js';
import {
  checkMethod,
  checkOptions,
  DEFAULT_IG_STEPS,
  discoverCircuit,
  DISCOVERY_METHODS,
  METHOD_NAMES,
  type DiscoverOptions,
  type DiscoveryResult,
} from '../../circuits/discover.js';
import { circuitDrawing } from '../../circuits/drawing.js';
import { circuitListing, type GraphListing } from '../../circuits/listing.js';
import { checkMetric, CIRCUIT_METRICS } from '../../circuits/metric.js';
import { readPairs } from '../../circuits/pairs.js';
import type { Ablation } from '../../circuits/task.js';
import { fmt, globalsOf, intArg, loadModel, out, printJson, table, warn } from '../common.js';
import { circuitSpec } from '../../plot/circuit.js';
import { writePlot } from '../../plot/vega.js';
import { createProgress } from '../progress.js';
import { checkOutputs, jsonOutput, PLOT_FLAG, plotOutput, writeJsonFile } from '../output.js';

interface CircuitFlags {
  list?: boolean;
  method?: string;
  data?: string;
  metric?: string;
  threshold?: number;
  sweep?: number[];
  top?: number;
  scoreThreshold?: number;
  steps?: number;
  ablation: string;
  batchSize?: number;
  show: number;
  out?: string;
  plot?: string;
}

/** A number ≥ 0. */
function nonNegativeArg(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0)
    throw new InvalidArgumentError('Expected a number >= 0.');
  return n;
}

/** Numbers ≥ 0 separated by commas: 0.001,0.01,0.1. */
function thresholdListArg(value: string): number[] {
  const parts = value.split(',').map((s) => s.trim());
  if (parts.some((p) => p === '')) throw new InvalidArgumentError('Expected thresholds like 0.001,0.01,0.1.');
  return parts.map(nonNegativeArg);
}

export function registerCircuit(program: Command): void {
  program
    .command('circuit')
    .description('circuit discovery: the edges between heads, MLPs, input and logits that carry a task')
    .option('--list', "list the model's full graph (nodes, receivers, edges) with counts, and stop")
    .option('--method <m>', `how to find the circuit: ${DISCOVERY_METHODS.join(', ')}`)
    .option('--data <file.jsonl>', 'clean/corrupt pairs: {"clean": TEXT, "corrupt": TEXT} per line')
    .option('--metric <m>', `what the circuit must preserve: ${CIRCUIT_METRICS.join(', ')}`)
    .option(
      '--threshold <t>',
      'acdc: drop an edge when patching it costs less than t (default: the first --sweep value)',
      nonNegativeArg,
    )
    .option('--sweep <t,...>', 'acdc: also run these thresholds and report each circuit', thresholdListArg)
    .option('--top <n>', 'eap, eap-ig: keep the n edges of largest |score|', intArg(1))
    .option('--score-threshold <s>', 'eap, eap-ig: keep every edge with |score| >= s', nonNegativeArg)
    .option('--steps <n>', `eap-ig: integrated-gradient steps (default ${DEFAULT_IG_STEPS})`, intArg(1))
    .option(
      '--ablation <a>',
      'what a patched edge carries: corrupt (its corrupt-run value) or zero',
      'corrupt',
    )
    .option('--batch-size <n>', 'pairs run together', intArg(1))
    .option('--show <n>', 'edges shown in the table (largest |score| first)', intArg(0), 20)
    .option('--out <file.json>', 'write the result (as --json prints it)')
    .option(PLOT_FLAG, 'draw the circuit: nodes by layer, edges by score')
    .addHelpText(
      'after',
      `
The graph's nodes are the input (token + position embeddings), each head a{l}.h{h}, each MLP m{l} and
the logits; a head receives through its q, k and v inputs (a1.h0<k>), an MLP and the logits through
their input. An edge sender->receiver is patched by replacing the sender's contribution to that one
input with its value on the corrupt prompt (or zero with --ablation zero). Under grouped-query
attention, a{l}.h{g}<k> and <v> are KV head g's inputs, shared by its group of query heads (--list
names the group).

Metrics: kl (KL of the patched from the clean next-token distribution at the scored positions),
logit-diff ("answer" minus "wrong" at the last position; both needed in every pair), loss (next-token
cross-entropy). A pair may give "positions" to score, and token ids as "clean_ids"/"corrupt_ids".

score: the metric lost by patching the edge, metric(kept) - metric(patched): estimated to first order
by eap and eap-ig, measured by acdc when it tested the edge. A circuit is pruned to the edges on a path
from the input to the logits, then checked by real patching: its metric with every other edge patched
and its faithfulness, (metric - corrupt) / (clean - corrupt).

Examples:
  sonde circuit --list
  sonde circuit --method eap-ig --data examples/circuit-names.jsonl --metric logit-diff --top 40 \\
    --plot names.svg
  sonde circuit --method acdc --data examples/circuit-names.jsonl --metric logit-diff \\
    --threshold 0.1 --sweep 0.05,0.2 --json --out names-acdc.json
  sonde circuit --model test/fixtures/induction-2l --method acdc --data examples/induction-pairs.jsonl \\
    --metric kl --threshold 0.02`,
    )
    .action(async (o: CircuitFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      if (o.list) {
        const given = (['method', 'data', 'metric', 'out', 'plot'] as const).filter(
          (k) => o[k] !== undefined,
        );
        if (given.length) throw new UsageError(`--list shows the graph only; drop --${given[0]}`);
        const model = await loadModel(g);
        const listing = circuitListing(model.cfg);
        if (g.json) printJson({ model: model.source, ...listing });
        else printListing(model.source, listing);
        return;
      }
      if (o.method === undefined)
        throw new UsageError(`missing --method: one of ${DISCOVERY_METHODS.join(', ')} (or --list)`);
      if (o.data === undefined)
        throw new UsageError('missing --data FILE.jsonl: one {"clean": TEXT, "corrupt": TEXT} pair per line');
      if (o.metric === undefined)
        throw new UsageError(`missing --metric: one of ${CIRCUIT_METRICS.join(', ')}`);
      if (o.ablation !== 'corrupt' && o.ablation !== 'zero')
        throw new UsageError(`unknown --ablation '${o.ablation}': use corrupt or zero`);
      const opts: DiscoverOptions = {
        method: checkMethod(o.method),
        metric: checkMetric(o.metric),
        ablation: o.ablation as Ablation,
        threshold: o.threshold,
        sweep: o.sweep,
        top: o.top,
        scoreThreshold: o.scoreThreshold,
        steps: o.steps,
        batchSize: o.batchSize,
      };
      checkOptions(opts);
      checkOutputs([jsonOutput(o.out), plotOutput(o.plot)], g.force);
      const model = await loadModel(g);
      const pairs = readPairs(model, o.data);
      const bar = createProgress(g);
      let stage = '';
      let result: DiscoveryResult;
      try {
        result = await discoverCircuit(model, pairs, {
          ...opts,
          onProgress: (name, done, total) => {
            if (name !== stage) bar.start(total, name);
            stage = name;
            bar.update(done);
          },
        });
      } finally {
        bar.stop();
      }
      for (const w of result.warnings) warn(w);
      const doc = { model: model.source, data: o.data, ...result, plot: o.plot ?? null };
      if (o.out) writeJsonFile(o.out, doc);
      if (o.plot) await writePlot(o.plot, circuitSpec(circuitDrawing(result, model.cfg)));
      if (g.json) {
        printJson(doc);
        return;
      }
      printResult(result, o.show);
      if (o.out) out(`\nwrote ${o.out}`);
      if (o.plot) out(`${o.out ? '' : '\n'}plot: ${o.plot}`);
    });
}

function printResult(r: DiscoveryResult, show: number): void {
  const how =
    r.method === 'acdc'
      ? `threshold ${r.threshold}, ${r.runs} patched runs`
      : `${r.method === 'eap-ig' ? `${r.steps} steps, ` : ''}${r.top !== null ? `top ${r.top}` : `|score| >= ${r.scoreThreshold}`}`;
  out(`${METHOD_NAMES[r.method]} on ${r.pairs} pairs: metric ${r.metric}, ${r.ablation} ablation, ${how}`);
  out(`${r.metric}: clean ${fmt(r.cleanMetric)}, corrupt ${fmt(r.corruptMetric)} (every edge patched)`);
  const c = r.circuit;
  const pruned = r.prunedEdges
    ? ` (pruned ${r.prunedEdges} kept edge${r.prunedEdges > 1 ? 's' : ''} on no input->logits path)`
    : '';
  out(
    `circuit: ${c.edges.length} of ${r.graph.edges} edges, ${c.nodes.length} nodes${pruned}; ` +
      `${r.metric} ${fmt(c.metric)}, faithfulness ${c.faithfulness.toFixed(3)}`,
  );
  if (c.nodes.length) out(`nodes: ${c.nodes.join(' ')}`);
  if (show > 0) {
    // Untested edges (null) last.
    const size = (s: number | null) => (s === null ? -1 : Math.abs(s));
    const ranked = [...r.edges].sort((a, b) => size(b.score) - size(a.score));
    const rows = [
      ['edge', 'score', 'in circuit'],
      ...ranked.slice(0, show).map((e) => [e.edge, fmt(e.score), e.inCircuit ? 'yes' : '']),
    ];
    out('');
    for (const line of table(rows, [false, true, false])) out(line);
    const untested = r.method === 'acdc' ? '; - = not tested (its node was already out)' : '';
    const more = r.edges.length > show ? ` (${show} of ${r.edges.length} edges; --json lists all)` : '';
    out(`score: ${r.metric}(kept) - ${r.metric}(patched)${untested}${more}`);
  }
  if (r.sweep) {
    out('');
    const rows = [
      ['threshold', 'edges', 'nodes', r.metric, 'faithfulness'],
      ...r.sweep.map((s) => [
        String(s.threshold),
        String(s.edges.length),
        String(s.nodes.length),
        fmt(s.metric),
        s.faithfulness.toFixed(3),
      ]),
    ];
    for (const line of table(rows, [true, true, true, true, true])) out(line);
  }
}

function printListing(source: string, l: GraphListing): void {
  const c = l.counts;
  const n = c.nodesByKind;
  const lay = l.layout;
  const shape = [
    `${lay.layers} layers`,
    `${lay.heads} heads`,
    lay.kvHeads !== lay.heads ? `${lay.kvHeads} KV heads (k, v receivers per KV head)` : '',
    lay.mlps ? (lay.parallelBlocks ? 'parallel attention and MLP' : 'MLPs') : 'attention only',
  ].filter(Boolean);
  out(`Circuit graph of ${source}: ${shape.join(', ')}`);
  out(
    `${c.nodes} nodes (${n.input} input, ${n.head} heads, ${n.mlp} MLPs, ${n.logits} logits), ` +
      `${c.receivers} receivers, ${c.edges} edges`,
  );
  const kinds = ['q', 'k', 'v', 'mlp', 'logits'] as const;
  out(`edges by receiver: ${kinds.map((k) => `${k} ${c.edgesByKind[k]}`).join(', ')}`);
  out('');
  // Under GQA a KV head's k and v inputs feed a group of query heads: named beside them.
  const name = (r: GraphListing['receivers'][number]) =>
    r.feeds.length > 1 ? `${r.name} (${r.feeds[0]}..${r.feeds[r.feeds.length - 1]})` : r.name;
  const rows = [['receiver', 'senders'], ...l.receivers.map((r) => [name(r), sendersOf(l, r.upstream)])];
  for (const line of table(rows)) out(line);
}

/** The first `upstream` senders, compactly: 'input a0.h0..a0.h3 m0'. */
function sendersOf(l: GraphListing, upstream: number): string {
  const names = l.nodes.slice(0, upstream).map((x) => x.name);
  const parts: string[] = [];
  for (let i = 0; i < names.length;) {
    const m = /^(a\d+)\.h/.exec(names[i]!);
    let j = i + 1;
    if (m) while (j < names.length && names[j]!.startsWith(`${m[1]}.h`)) j++;
    parts.push(j - i > 2 ? `${names[i]}..${names[j - 1]}` : names.slice(i, j).join(' '));
    i = j;
  }
  return parts.join(' ');
}
