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
import { circuitTask } from '../src/circuits/task.js';

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
  /** ACDC over the receivers `slice` names: edges tested, patched runs, ms, edges kept. */
  acdc: { slice: string; tested: number; runs: number; ms: number; kept: number; threshold: number };
}

/**
 * The receivers ACDC is timed on: late ones, whose patched runs start near the end, and early ones, whose
 * runs are nearly full forwards (about their share of the whole graph's cost per edge would be a mix).
 */
export const ACDC_SLICE =
  'logits; m11 and a11.h0-h2 <q>/<k>/<v>; m10 and a10.h0 <q>/<k>/<v>; m1 and a1.h0 <q>/<k>/<v>';
function inSlice(nLayers: number): (r: Receiver) => boolean {
  const heads = new Map([
    [nLayers - 1, 3],
    [nLayers - 2, 1],
    [1, 1],
  ]);
  return (r) =>
    r.kind === 'logits' || (heads.has(r.layer) && (r.kind === 'mlp' || r.head! < heads.get(r.layer)!));
}

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
  const receivers = inSlice(model.cfg.nLayers);
  log(`circuits: ACDC over ${ACDC_SLICE}...`);
  // Warm-up: the logits alone (compiles the patched runs' structures).
  await acdc(task, { threshold, receivers: (r) => r.kind === 'logits' });
  const t0 = performance.now();
  let shown = t0;
  const r = await acdc(task, {
    threshold,
    receivers,
    onProgress: (tested) => {
      if (performance.now() - shown < 30_000) return;
      shown = performance.now();
      log(`circuits: ACDC ${tested} edges tested, ${((shown - t0) / 1000).toFixed(0)} s`);
    },
  });
  const ms = performance.now() - t0;
  return {
    pairs: n,
    seq: P,
    edges,
    forward,
    forwardBackward,
    eap,
    eapIg,
    igSteps,
    acdc: {
      slice: ACDC_SLICE,
      tested: r.decisions.length,
      runs: r.runs,
      ms,
      kept: r.decisions.filter((d) => !d.removed).length,
      threshold,
    },
  };
}

/** The BENCHMARKS.md section. */
export function circuitSection(b: CircuitBench): string[] {
  const f = (x: number) => x.toFixed(1);
  const edgesPerS = (b.acdc.tested / b.acdc.ms) * 1000;
  return [
    '## Circuit discovery',
    '',
    `GPT-2-small-sized random model, ${b.pairs} clean/corrupt pairs x ${b.seq} tokens, metric kl (last position). The graph has **${b.edges} edges** (EAP-IG's: q/k/v inputs per head; the ACDC paper counts 32,923 for GPT-2 small in its own graph). Baselines over the same pairs, compiled: forward ${f(b.forward)} ms, forward + backward ${f(b.forwardBackward)} ms.`,
    '',
    '| work | Sonde | baseline | ratio | goal |',
    '|---|---:|---:|---:|---:|',
    `| EAP, every edge | ${f(b.eap)} ms | forward + backward ${f(b.forwardBackward)} ms | ${(b.eap / b.forwardBackward).toFixed(2)}x | ≤ 3x |`,
    `| EAP-IG, ${b.igSteps} steps | ${f(b.eapIg)} ms | forward + backward ${f(b.forwardBackward)} ms | ${(b.eapIg / b.forwardBackward).toFixed(2)}x | |`,
    `| ACDC, edges tested / s | ${f(edgesPerS)} | one forward per edge: ${f(1000 / b.forward)} | ${(edgesPerS * (b.forward / 1000)).toFixed(1)}x | ≥ 10x |`,
    '',
    `ACDC over ${b.acdc.slice} (threshold ${b.acdc.threshold}): ${b.acdc.tested} edges tested in ${b.acdc.runs} patched runs, ${b.acdc.kept} kept, ${(b.acdc.ms / 1000).toFixed(1)} s. EAP times exclude the task's clean and corrupt runs (done once per task).`,
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
