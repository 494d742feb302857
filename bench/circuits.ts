/**
 * Circuit discovery on the GPT-2-small-sized random model: EAP over every edge against one forward +
 * backward, and ACDC's edges tested per second against one forward per edge (what ACDC without batching
 * or caches costs), both over the same pairs, in the same process. Measured from bench/main.ts; alone:
 * `npx tsx bench/circuits.ts [--reps 3] [--pairs 8] [--seq 16]`.
 */
import { pathToFileURL } from 'node:url';
import { realize } from '../src/engine/lazy.js';
import { Tensor } from '../src/engine/tensor.js';
import type { HookedTransformer } from '../src/hooks/hooked-transformer.js';
import { acdc } from '../src/circuits/acdc.js';
import { edgeAttribution } from '../src/circuits/eap.js';
import type { Receiver } from '../src/circuits/graph.js';
import type { CircuitPair } from '../src/circuits/pairs.js';
import { circuitTask, patchedMetrics, variantsPerRun } from '../src/circuits/task.js';
import { edgeOffsets } from '../src/circuits/edge-run.js';

export interface CircuitBench {
  pairs: number;
  seq: number;
  edges: number;
  /** Median ms: one compiled forward, one forward + backward (gradients at every resid hook), over the pairs. */
  forward: number;
  forwardBackward: number;
  /** Median ms of EAP and of EAP-IG with `igSteps` steps over every edge (the task's clean/corrupt runs done). */
  eap: number;
  eapIg: number;
  igSteps: number;
  /** ACDC over each slice of receivers: edges tested, patched runs, ms, edges kept. */
  acdc: { slice: string; receivers: string; tested: number; runs: number; ms: number; kept: number }[];
  threshold: number;
  /** ms to compile and first run the slices' patched-run shapes (one per receiver block), before timing. */
  warmUp: number;
}

/**
 * The receivers ACDC is timed on, in two slices: late ones, whose patched runs start near the end, and
 * early ones, whose runs are nearly full forwards.
 */
export const ACDC_SLICES: {
  name: string;
  receivers: string;
  test: (r: Receiver, nLayers: number) => boolean;
}[] = [
  {
    name: 'late',
    receivers: 'logits; m11 and a11.h0-h2 <q>/<k>/<v>; m10 and a10.h0 <q>/<k>/<v>',
    test: (r, L) =>
      r.kind === 'logits' ||
      (r.layer === L - 1 && (r.kind === 'mlp' || r.head! < 3)) ||
      (r.layer === L - 2 && (r.kind === 'mlp' || r.head! < 1)),
  },
  {
    name: 'early',
    receivers: 'm1 and a1.h0 <q>/<k>/<v>',
    test: (r) => r.layer === 1 && (r.kind === 'mlp' || r.head! < 1),
  },
];

/** Seeded pairs of random ids: the corrupt side changes the first half (the last position's context). */
export function benchPairs(vocab: number, n: number, P: number): CircuitPair[] {
  let s = 12345;
  const next = () => ((s = (s * 1103515245 + 12345) % 2 ** 31), s % vocab);
  return Array.from({ length: n }, () => {
    const clean = Array.from({ length: P }, next);
    const corrupt = clean.map((t, i) => (i < P / 2 ? next() : t));
    return { clean, corrupt };
  });
}

async function median(reps: number, fn: () => Promise<unknown>): Promise<number> {
  await fn(); // the first sight of a structure runs eagerly,
  await fn(); // the second compiles it
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export async function circuitBench(
  model: HookedTransformer,
  opts: { reps: number; pairs?: number; seq?: number; threshold?: number; log?: (s: string) => void },
): Promise<CircuitBench> {
  const log = opts.log ?? (() => {});
  const n = opts.pairs ?? 8;
  const P = opts.seq ?? 16;
  const pairs = benchPairs(model.cfg.vocabSize, n, P);
  const ids = new Tensor(
    BigInt64Array.from(
      pairs.flatMap((p) => p.clean),
      BigInt,
    ),
    [n, P],
  );
  const residNames = (name: string) => /hook_resid_(pre|mid|post)$/.test(name);
  log(`circuits: baselines over ${n} pairs x ${P} tokens...`);
  const forward = await median(opts.reps, () => model.run(ids).data());
  const forwardBackward = await median(opts.reps, async () => {
    const r = model.gradients(ids, { names: [residNames] });
    await realize(r.loss, ...[...r.grads].map(([, t]) => t));
  });
  const task = await circuitTask(model, pairs, { metric: 'kl' });
  const edges = task.graph.edges.length;
  log(`circuits: EAP over ${edges} edges...`);
  const eap = await median(opts.reps, () => edgeAttribution(task));
  const igSteps = 5;
  const eapIg = await median(1, () => edgeAttribution(task, { steps: igSteps }));
  // Random weights: a head's direct effect on the logits is ~5e-4 in kl, an edge into a head ~1e-8. At
  // 1e-3 ACDC keeps a few edges and drops the rest, as on a real task (a kept edge ends a speculative batch).
  const threshold = opts.threshold ?? 1e-3;
  const L = model.cfg.nLayers;
  // Warm-up: ACDC runs one shape per receiver block (compiled on first sight, and ORT's first run of a
  // graph sets up its memory); over a whole graph that is paid once per block. Timed apart.
  const w0 = performance.now();
  const layers = new Set(
    task.graph.receivers.filter((r) => ACDC_SLICES.some((sl) => sl.test(r, L))).map((r) => r.layer),
  );
  for (const layer of layers) {
    const r = task.graph.receivers.findIndex((x) => x.layer === layer);
    const V = Math.min(64, variantsPerRun(task, Math.min(layer, L - 1)));
    const values = new Float32Array(V * edges);
    const first = edgeOffsets(task.graph)[r]!;
    for (let v = 0; v < V; v++) values[v * edges + first + (v % task.graph.receivers[r]!.upstream)] = 1;
    for (let i = 0; i < 2; i++) await patchedMetrics(task, values, V);
  }
  const warmUp = performance.now() - w0;
  const slices: CircuitBench['acdc'] = [];
  for (const slice of ACDC_SLICES) {
    log(`circuits: ACDC over ${slice.receivers}...`);
    const t0 = performance.now();
    let shown = t0;
    const r = await acdc(task, {
      threshold,
      receivers: (rec) => slice.test(rec, L),
      onProgress: (tested) => {
        if (performance.now() - shown < 30_000) return;
        shown = performance.now();
        log(`circuits: ACDC ${tested} edges tested, ${((shown - t0) / 1000).toFixed(0)} s`);
      },
    });
    slices.push({
      slice: slice.name,
      receivers: slice.receivers,
      tested: r.decisions.length,
      runs: r.runs,
      ms: performance.now() - t0,
      kept: r.decisions.filter((d) => !d.removed).length,
    });
  }
  return {
    pairs: n,
    seq: P,
    edges,
    forward,
    forwardBackward,
    eap,
    eapIg,
    igSteps,
    acdc: slices,
    threshold,
    warmUp,
  };
}

/** The BENCHMARKS.md section. */
export function circuitSection(b: CircuitBench): string[] {
  const f = (x: number) => x.toFixed(1);
  const all = b.acdc.reduce(
    (t, s) => ({
      tested: t.tested + s.tested,
      runs: t.runs + s.runs,
      ms: t.ms + s.ms,
      kept: t.kept + s.kept,
    }),
    { tested: 0, runs: 0, ms: 0, kept: 0 },
  );
  const acdcRow = (name: string, s: { tested: number; ms: number }) => {
    const perS = (s.tested / s.ms) * 1000;
    return `| ACDC, edges tested / s, ${name} | ${f(perS)} | one forward per edge: ${f(1000 / b.forward)} | ${(perS * (b.forward / 1000)).toFixed(1)}x | ≥ 10x |`;
  };
  return [
    '## Circuit discovery',
    '',
    `GPT-2-small-sized random model, ${b.pairs} clean/corrupt pairs x ${b.seq} tokens, metric kl (last position). The graph has **${b.edges} edges** (EAP-IG's: q/k/v inputs per head; the ACDC paper counts 32,923 for GPT-2 small in its own graph). Baselines over the same pairs, compiled: forward ${f(b.forward)} ms, forward + backward (gradients at every resid hook) ${f(b.forwardBackward)} ms.`,
    '',
    '| work | Sonde | baseline | ratio | goal |',
    '|---|---:|---:|---:|---:|',
    `| EAP, every edge | ${f(b.eap)} ms | forward + backward ${f(b.forwardBackward)} ms | ${(b.eap / b.forwardBackward).toFixed(2)}x | ≤ 3x |`,
    `| EAP-IG, ${b.igSteps} steps | ${f(b.eapIg)} ms | forward + backward ${f(b.forwardBackward)} ms | ${(b.eapIg / b.forwardBackward).toFixed(2)}x | |`,
    ...b.acdc.map((s) => acdcRow(s.slice, s)),
    acdcRow('both', all),
    '',
    `ACDC at threshold ${b.threshold}, ${b.acdc.map((s) => `${s.slice} receivers (${s.receivers}): ${s.tested} edges tested in ${s.runs} patched runs, ${s.kept} kept, ${(s.ms / 1000).toFixed(1)} s`).join('; ')}. Edges into nodes that no longer reach the logits are dropped untested and not counted. Each receiver block's patched-run shape was compiled and run once before timing (${(b.warmUp / 1000).toFixed(1)} s for the slices' blocks; paid once per block in a whole-graph ACDC). EAP times exclude the task's clean and corrupt runs (done once per task).`,
  ];
}
if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { rerunWithTunedMalloc } = await import('../src/engine/backend/malloc.js');
  const code = await rerunWithTunedMalloc();
  if (code !== null) process.exit(code);
  await import('../src/engine/node.js');
  const { Command } = await import('commander');
  const { HookedTransformer } = await import('../src/hooks/hooked-transformer.js');
  const { gpt2SmallConfig, randomWeights } = await import('./gpt2-small.js');
  const o = new Command()
    .option('--reps <n>', 'timed repetitions', '3')
    .option('--pairs <n>', 'clean/corrupt pairs', '8')
    .option('--seq <n>', 'tokens per pair', '16')
    .option('--threshold <x>', 'ACDC threshold (kl)')
    .parse()
    .opts<{ reps: string; pairs: string; seq: string; threshold?: string }>();
  const cfg = gpt2SmallConfig();
  const model = new HookedTransformer(cfg, randomWeights(cfg), null, 'bench', 'always');
  const b = await circuitBench(model, {
    reps: Number(o.reps),
    pairs: Number(o.pairs),
    seq: Number(o.seq),
    threshold: o.threshold === undefined ? undefined : Number(o.threshold),
    log: (s) => console.error(s),
  });
  console.log(JSON.stringify(b));
  console.log(circuitSection(b).join('\n'));
}
