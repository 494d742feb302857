// Compiled-graph memory check: builds a random Llama of about --gb GB of float32 weights in memory
// (Llama-3.2-1B's widths, as many layers as reach the size), then runs `run` three times, `runWithCache`
// and `gradients` on a few tokens (default compile mode, so the second `run` compiles) and prints one JSON
// line: the weights' bytes, this process's peak RSS (VmHWM) and their ratio, and the seconds each step took.
// test/hooks/compiled-memory.test.ts runs it in a child process so that the peak is this work's alone.
//   npx tsx scripts/compiled-memory.ts [--gb 3] [--layers N] [--tokens 4]
import fs from 'node:fs';
import '../src/engine/node.js';
import { Tensor } from '../src/engine/tensor.js';
import { HookedTransformer } from '../src/hooks/hooked-transformer.js';
import { llamaConfig } from '../src/models/llama.js';
import type { Weights } from '../src/models/weights.js';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i < 0 ? fallback : Number(process.argv[i + 1]);
}

function vmHwm(): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  return m === null ? process.resourceUsage().maxRSS * 1024 : Number(m[1]) * 1024;
}

const D = 2048;
const F = 8192;
const H = 32;
const KV = 8;
const DH = 64;
const V = 32000;
const perLayer = (2 * D * H * DH + 2 * D * KV * DH + 3 * D * F + 2 * D) * 4;
const fixed = (2 * V * D + D) * 4;
const gb = arg('--gb', 3);
const layers = arg('--layers', Math.max(1, Math.ceil((gb * 1e9 - fixed) / perLayer)));
const P = arg('--tokens', 4);

const cfg = llamaConfig({
  hidden_size: D,
  intermediate_size: F,
  num_hidden_layers: layers,
  num_attention_heads: H,
  num_key_value_heads: KV,
  head_dim: DH,
  vocab_size: V,
  max_position_embeddings: 2048,
  rope_theta: 500000,
});

// Filled (not left as calloc'd zeros) so that every page is resident before the work starts: a weight
// read for the first time inside the work would count against it. Small, varied values keep it finite.
let seed = 1;
const filled = (shape: number[], offset = 0) => {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  // A pattern of a prime length, tiled: fast to write, and no two rows alike.
  const s = seed++;
  const pattern = Float32Array.from({ length: Math.min(n, 65521) }, (_, i) => {
    return offset + (((i * 2654435761 + s * 40503) >>> 0) % 2001) * 1e-5 - 0.01;
  });
  for (let i = 0; i < n; i += pattern.length)
    data.set(pattern.subarray(0, Math.min(pattern.length, n - i)), i);
  return new Tensor(data, shape);
};
const w: Weights = new Map();
w.set('embed.W_E', filled([V, D]));
for (let l = 0; l < layers; l++) {
  const b = `blocks.${l}.`;
  w.set(`${b}ln1.w`, filled([D], 1));
  w.set(`${b}attn.W_Q`, filled([D, H * DH]));
  w.set(`${b}attn.W_K`, filled([D, KV * DH]));
  w.set(`${b}attn.W_V`, filled([D, KV * DH]));
  w.set(`${b}attn.W_O`, filled([H * DH, D]));
  w.set(`${b}ln2.w`, filled([D], 1));
  w.set(`${b}mlp.W_gate`, filled([D, F]));
  w.set(`${b}mlp.W_in`, filled([D, F]));
  w.set(`${b}mlp.W_out`, filled([F, D]));
}
w.set('ln_final.w', filled([D], 1));
w.set('unembed.W_U', filled([D, V]));
let weightsBytes = 0;
for (const t of w.values()) weightsBytes += t.size * 4;

const model = new HookedTransformer(cfg, w, null, `random llama ${layers} layers`);
const tokens = Array.from({ length: P }, (_, i) => (i * 7919 + 1) % V);
const seconds: Record<string, number> = {};
const peakAfter: Record<string, number> = {};
const step = (name: string, fn: () => Tensor) => {
  const t0 = performance.now();
  const out = fn();
  if (!out.f32Sync().every(Number.isFinite)) throw new Error(`${name}: logits not finite`);
  seconds[name] = Math.round(performance.now() - t0) / 1000;
  peakAfter[name] = Math.round(vmHwm() / 1e6);
};
const before = vmHwm();
step('run1', () => model.run([tokens]));
step('run2', () => model.run([tokens]));
step('run3', () => model.run([tokens]));
step('runWithCache', () => model.runWithCache([tokens], { names: ['blocks.0.hook_resid_post'] }).logits);
step('gradients', () => model.gradients([tokens], { names: ['blocks.0.hook_resid_post'] }).logits);
const peak = vmHwm();
console.log(
  JSON.stringify({
    layers,
    weightsBytes,
    rssBeforeBytes: before,
    peakRssBytes: peak,
    peakOverWeights: Math.round((peak / weightsBytes) * 1000) / 1000,
    seconds,
    peakMBAfter: peakAfter,
  }),
);
