/**
 * npm run bench [-- --seq 128,512 --reps 5 --torch-threads 1,2 --no-torch --no-circuits --out BENCHMARKS.md]
 *
 * GPT-2-small-sized model, random weights: forward, forward with the full activation cache, and
 * backward to every residual activation, in Sonde and in PyTorch (CPU) in the same run.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import '../src/engine/node.js';
import { getBackend } from '../src/engine/backend/backend.js';
import { realize } from '../src/engine/lazy.js';
import { noGrad, Tensor } from '../src/engine/tensor.js';
import { HookedTransformer } from '../src/hooks/hooked-transformer.js';
import { makeHookPoint } from '../src/hooks/hooks.js';
import { forward } from '../src/models/transformer.js';
import { forwardFlops, gpt2SmallConfig, randomWeights } from './gpt2-small.js';
import { circuitBench, circuitSection } from './circuits.js';
import { hookedForwards, type HookedTimes } from './hooked.js';

const opts = new Command()
  .option('--seq <list>', 'sequence lengths', '128,512')
  .option('--reps <n>', 'timed repetitions', '5')
  .option('--torch-threads <list>', 'PyTorch intra-op thread counts to try (the fastest is reported)', '1,2')
  .option('--no-torch', 'skip PyTorch')
  .option('--no-circuits', 'skip circuit discovery (EAP, ACDC)')
  .option('--python <path>', 'python with torch', '/usr/bin/python3')
  .option('--torch-device <device>', 'PyTorch device: cpu or cuda', 'cpu')
  .option('--out <file>', 'markdown report', 'BENCHMARKS.md')
  .parse()
  .opts<{
    seq: string;
    reps: string;
    torchThreads: string;
    torch: boolean;
    circuits: boolean;
    python: string;
    torchDevice: string;
    out: string;
  }>();

const reps = Number(opts.reps);
const seqs = opts.seq.split(',').map(Number);

/** The tensors a call returned (a tensor, or logits with a cache or gradients), to read them. */
function tensorsOf(r: unknown): Tensor[] {
  if (r instanceof Tensor) return [r];
  const o = r as {
    logits?: Tensor;
    loss?: Tensor;
    cache?: Iterable<[string, Tensor]>;
    grads?: Iterable<[string, Tensor]>;
  };
  return [
    ...(o.loss ? [o.loss] : []),
    ...(o.logits ? [o.logits] : []),
    ...[...(o.cache ?? [])].map(([, t]) => t),
    ...[...(o.grads ?? [])].map(([, t]) => t),
  ];
}

/**
 * Median and minimum ms of `fn` with its results computed (on a lazy or asynchronous backend a call
 * only records: the time is the call plus the read).
 */
async function time(fn: () => unknown): Promise<{ median: number; min: number }> {
  await realize(...tensorsOf(fn())); // warm-up (and, for compiled paths, the trace)
  const times: number[] = [];
  for (let i = 0; i < reps; i++) {
    const t0 = performance.now();
    await realize(...tensorsOf(fn()));
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(times.length / 2)]!, min: times[0]! };
}

interface Row {
  work: string;
  seq: number;
  sonde: number;
  sondeEager: number;
  torch: number | null;
  torchThreads: number | null;
  flops: number;
}

const cfg = gpt2SmallConfig();
console.error('building random GPT-2-small weights...');
const weights = randomWeights(cfg);
const compiled = new HookedTransformer(cfg, weights, null, 'bench', 'always');
const eager = new HookedTransformer(cfg, weights, null, 'bench', 'never');
const residNames = (n: string) => /hook_resid_(pre|mid|post)$/.test(n);
const rows: Row[] = [];
const hookOverhead: { seq: number; none: number; empty: number }[] = [];
const hooked: ({ seq: number; forward: number } & HookedTimes)[] = [];

function torchTimes(seq: number): Map<string, { ms: number; threads: number }> {
  const best = new Map<string, { ms: number; threads: number }>();
  if (!opts.torch) return best;
  for (const threads of opts.torchThreads.split(',').map(Number)) {
    const r = spawnSync(
      opts.python,
      [
        'bench/torch_bench.py',
        '--seq',
        String(seq),
        '--threads',
        String(threads),
        '--reps',
        String(reps),
        '--work',
        'all',
        '--device',
        opts.torchDevice,
      ],
      { encoding: 'utf8', maxBuffer: 1 << 24 },
    );
    if (r.status !== 0) {
      console.error(`PyTorch run failed (threads ${threads}): ${r.stderr.trim().split('\n').pop()}`);
      continue;
    }
    for (const line of r.stdout.trim().split('\n')) {
      const j = JSON.parse(line) as { work: string; median_ms: number };
      const prev = best.get(j.work);
      if (!prev || j.median_ms < prev.ms) best.set(j.work, { ms: j.median_ms, threads });
    }
  }
  return best;
}

for (const P of seqs) {
  const tokens = new Tensor(
    BigInt64Array.from({ length: P }, (_, i) => BigInt((i * 7919 + 17) % cfg.vocabSize)),
    [1, P],
  );
  console.error(`seq ${P}: Sonde...`);
  const fwd = await time(() => compiled.run(tokens));
  const fwdEager = await time(() => eager.run(tokens));
  const cache = await time(() => compiled.runWithCache(tokens));
  const cacheEager = await time(() => eager.runWithCache(tokens));
  const bwd = await time(() => compiled.gradients(tokens, { names: [residNames] }));
  const bwdEager = await time(() => eager.gradients(tokens, { names: [residNames] }));
  // Hook cost: the eager forward with no hook function vs. with an (empty) hook plan on every point,
  // interleaved and taking the minimum, so that machine noise does not pass for hook cost.
  const plan = makeHookPoint({ fwd: [], bwd: [], cache: null, store: new Map() });
  const noneTimes: number[] = [];
  const emptyTimes: number[] = [];
  for (let i = 0; i < reps + 2; i++) {
    let t0 = performance.now();
    await noGrad(() => forward(cfg, weights, tokens)).data();
    noneTimes.push(performance.now() - t0);
    t0 = performance.now();
    await noGrad(() => forward(cfg, weights, tokens, { hook: plan })).data();
    emptyTimes.push(performance.now() - t0);
  }
  const none = { median: Math.min(...noneTimes.slice(1)) };
  const empty = { median: Math.min(...emptyTimes.slice(1)) };
  hookOverhead.push({ seq: P, none: none.median, empty: empty.median });
  console.error(`seq ${P}: hooked forwards...`);
  hooked.push({ seq: P, forward: fwd.median, ...(await hookedForwards(compiled, tokens, reps)) });
  console.error(`seq ${P}: PyTorch...`);
  const t = torchTimes(P);
  const flops = forwardFlops(cfg, P);
  const add = (work: string, s: number, se: number, f: number) =>
    rows.push({
      work,
      seq: P,
      sonde: s,
      sondeEager: se,
      torch: t.get(work)?.ms ?? null,
      torchThreads: t.get(work)?.threads ?? null,
      flops: f,
    });
  add('forward', fwd.median, fwdEager.median, flops);
  add('cache', cache.median, cacheEager.median, flops);
  // Activation gradients only (weights frozen): about one more forward's worth of matmuls.
  add('backward', bwd.median, bwdEager.median, 2 * flops);
}

// Memory: the full activation cache at 1024 tokens (the issue's "fits easily in 24 GB"), measured in
// a fresh process so that this one's compiled graphs do not count.
console.error('cache at 1024 tokens...');
const mem = spawnSync(process.execPath, [...process.execArgv, 'bench/memory.ts'], {
  encoding: 'utf8',
  env: process.env,
});
let memoryLine = `memory run failed: ${mem.stderr?.trim().split('\n').pop()}`;
if (mem.status === 0) {
  const m = JSON.parse(mem.stdout.trim().split('\n').pop()!) as {
    activations: number;
    cacheGiB: number;
    rssGiB: number;
    ms: number;
  };
  memoryLine = `Eager \`runWithCache\` of every hook point at 1024 tokens, in a fresh process: ${m.activations} activations, ${m.cacheGiB.toFixed(2)} GiB of tensors, process RSS ${m.rssGiB.toFixed(2)} GiB (weights included), ${(m.ms / 1000).toFixed(1)} s.`;
}

// Circuit discovery: EAP and ACDC on the same model, small pairs (bench/circuits.ts).
const circuits = opts.circuits
  ? circuitSection(await circuitBench(compiled, { reps, log: (s) => console.error(s) }))
  : [];

const f = (x: number) => x.toFixed(1);
const lines = [
  '# Benchmarks',
  '',
  `Generated by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'CPU'}, Node ${process.version}, onnxruntime-node (${getBackend().device}).`,
  'GPT-2-small-sized model (12 layers, d_model 768, 12 heads, vocab 50257), random weights, batch 1.',
  `Median of ${reps} runs after one warm-up. PyTorch: Debian python3-torch on OpenBLAS, the fastest of intra-op threads {${opts.torchThreads}}, same process tree, same run.`,
  '',
  '- **forward**: logits. **cache**: logits plus every hook point (TransformerLens run_with_cache). **backward**: forward, mean next-token loss, and gradients at every `hook_resid_pre/mid/post` (weights frozen).',
  "- Sonde compiled: the hook-free pass traced once into one ONNX graph (what `run`/`runWithCache`/`gradients` do from the second call on a shape). Sonde eager: one ORT kernel per op (`compile: 'never'`; what runs the first time a hooked forward's structure is seen, and for gradients through hooks).",
  '- ratio = Sonde compiled / PyTorch (below 1.0 = Sonde faster). GFLOP/s counts matmul FLOPs (backward: 2x forward).',
  '',
  '| work | tokens | Sonde compiled (ms) | Sonde eager (ms) | PyTorch (ms) | ratio | Sonde GFLOP/s |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows.map(
    (r) =>
      `| ${r.work} | ${r.seq} | ${f(r.sonde)} | ${f(r.sondeEager)} | ${r.torch === null ? 'n/a' : `${f(r.torch)} (${r.torchThreads}t)`} | ${r.torch === null ? 'n/a' : (r.sonde / r.torch).toFixed(2)} | ${f(r.flops / r.sonde / 1e6)} |`,
  ),
  '',
  '## Memory',
  '',
  memoryLine,
  '',
  '## Hooked forwards, compiled',
  '',
  "Hooks written as tensor expressions at `blocks.6.hook_resid_pre`, the hooked forward recorded lazily and run as one compiled graph, with the hook's tensors fed as inputs: **patch** replaces one position with a cached activation (`where(mask, cached, x)`, another position at every repetition), **steer** adds a vector (another vector at every repetition), **SAE** splices a standard SAE (d_sae 6144). ratio = hooked / hook-free compiled forward, same process, same run (goal: ≤ 1.15).",
  '',
  '| tokens | forward (ms) | patch (ms) | ratio | steer (ms) | ratio | SAE (ms) | ratio |',
  '|---:|---:|---:|---:|---:|---:|---:|---:|',
  ...hooked.map(
    (h) =>
      `| ${h.seq} | ${f(h.forward)} | ${f(h.patch)} | ${(h.patch / h.forward).toFixed(2)} | ${f(h.steer)} | ${(h.steer / h.forward).toFixed(2)} | ${f(h.sae)} | ${(h.sae / h.forward).toFixed(2)} |`,
  ),
  '',
  ...(circuits.length ? [...circuits, ''] : []),
  '## Hook overhead (eager forward, interleaved runs, minimum)',
  '',
  '| tokens | no hook function (ms) | empty hook plan at every point (ms) | ratio |',
  '|---:|---:|---:|---:|',
  ...hookOverhead.map(
    (h) => `| ${h.seq} | ${f(h.none)} | ${f(h.empty)} | ${(h.empty / h.none).toFixed(3)} |`,
  ),
  '',
];
// Keep the sections other benchmarks write (e.g. '## Training throughput' from npm run bench:train).
const ours = new Set(lines.filter((l) => l.startsWith('## ')));
let kept = '';
if (fs.existsSync(opts.out)) {
  const old = fs.readFileSync(opts.out, 'utf8');
  for (const section of old.split(/\n(?=## )/).slice(1)) {
    const heading = section.split('\n')[0]!;
    if (!ours.has(heading)) kept += `\n${section.trimEnd()}\n`;
  }
}
const report = lines.join('\n') + kept;
console.log(report);
const tmp = `${opts.out}.tmp-${process.pid}`;
fs.writeFileSync(tmp, report);
fs.renameSync(tmp, path.resolve(opts.out));
