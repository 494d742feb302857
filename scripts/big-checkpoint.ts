// Big-checkpoint check: writes a synthetic sharded BF16 checkpoint in the Llama layout (hidden 2048,
// intermediate 5632, 32 heads / 4 KV heads, vocab 32000 — TinyLlama's shapes — with as many layers as
// reach the size asked for, ~1 GB shards, model.safetensors.index.json), then, in a fresh process so
// that its peak RSS is the load's alone, loads it with progress, compares the estimate with the measured
// peak RSS, runs one forward, checks loaded weights against the BF16 bits on disk, and checks that a
// memory limit just below the estimate is refused before any tensor is read.
//   npx tsx scripts/big-checkpoint.ts [--gb 2] [--keep DIR] [--tied] [--malloc tuned|default|both]
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { SONDE_GLIBC_TUNABLES } from '../src/engine/backend/malloc.js';
import type { TensorToWrite } from '../src/io/safetensors.js';
import {
  HookedTransformer,
  MemoryError,
  SafetensorsCheckpoint,
  estimateLoadMemory,
  formatBytes,
  writeSafetensors,
  type LoadProgress,
  type MemoryEstimate,
} from '../src/index.js';

const D = 2048;
const F = 5632;
const V = 32000;
const H = 32;
const KV = 4;
const DH = D / H;
const SHARD_BYTES = 1e9;

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i < 0 ? undefined : process.argv[i + 1];
}

const mb = (n: number) => `${(n / 1e6).toFixed(0)} MB`;

// ---------------------------------------------------------------------------------------------------------
// Writing

/** xorshift32 uniform noise in [-scale, scale] (deterministic per tensor). */
function noise(n: number, seed: number, scale: number, offset = 0): Float32Array {
  const out = new Float32Array(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = offset + ((x >>> 0) / 4294967296 - 0.5) * 2 * scale;
  }
  return out;
}

interface Planned {
  name: string;
  shape: number[];
}

function plan(targetBytes: number, tied: boolean): { layers: number; tensors: Planned[] } {
  const perLayer = (2 * D * D + 2 * KV * DH * D + 3 * F * D + 2 * D) * 2;
  const fixed = (V * D * (tied ? 1 : 2) + D) * 2;
  const layers = Math.max(1, Math.ceil((targetBytes - fixed) / perLayer));
  const tensors: Planned[] = [{ name: 'model.embed_tokens.weight', shape: [V, D] }];
  for (let l = 0; l < layers; l++) {
    const p = `model.layers.${l}.`;
    tensors.push(
      { name: `${p}input_layernorm.weight`, shape: [D] },
      { name: `${p}self_attn.q_proj.weight`, shape: [H * DH, D] },
      { name: `${p}self_attn.k_proj.weight`, shape: [KV * DH, D] },
      { name: `${p}self_attn.v_proj.weight`, shape: [KV * DH, D] },
      { name: `${p}self_attn.o_proj.weight`, shape: [D, H * DH] },
      { name: `${p}post_attention_layernorm.weight`, shape: [D] },
      { name: `${p}mlp.gate_proj.weight`, shape: [F, D] },
      { name: `${p}mlp.up_proj.weight`, shape: [F, D] },
      { name: `${p}mlp.down_proj.weight`, shape: [D, F] },
    );
  }
  tensors.push({ name: 'model.norm.weight', shape: [D] });
  if (!tied) tensors.push({ name: 'lm_head.weight', shape: [V, D] });
  return { layers, tensors };
}

function writeCheckpoint(dir: string, targetBytes: number, tied: boolean): { layers: number; bytes: number } {
  const { layers, tensors } = plan(targetBytes, tied);
  const shards: Planned[][] = [[]];
  let inShard = 0;
  for (const t of tensors) {
    const bytes = t.shape.reduce((a, b) => a * b, 1) * 2;
    if (inShard > 0 && inShard + bytes > SHARD_BYTES) {
      shards.push([]);
      inShard = 0;
    }
    shards.at(-1)!.push(t);
    inShard += bytes;
  }
  const n = shards.length;
  const weightMap: Record<string, string> = {};
  let total = 0;
  let seed = 1;
  shards.forEach((list, i) => {
    const file = `model-${String(i + 1).padStart(5, '0')}-of-${String(n).padStart(5, '0')}.safetensors`;
    const out: Record<string, TensorToWrite> = {};
    for (const t of list) {
      const count = t.shape.reduce((a, b) => a * b, 1);
      // Norm weights near 1, matrices ~U(-0.02, 0.02) like a freshly initialised model.
      const data = t.shape.length === 1 ? noise(count, seed++, 0.1, 1) : noise(count, seed++, 0.02);
      out[t.name] = { dtype: 'BF16', shape: t.shape, data };
      weightMap[t.name] = file;
      total += count * 2;
    }
    writeSafetensors(path.join(dir, file), out);
    console.log(`  wrote ${file}: ${list.length} tensors, ${mb(fs.statSync(path.join(dir, file)).size)}`);
  });
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: total }, weight_map: weightMap }, null, 2),
  );
  const config = {
    architectures: ['LlamaForCausalLM'],
    model_type: 'llama',
    hidden_size: D,
    intermediate_size: F,
    num_hidden_layers: layers,
    num_attention_heads: H,
    num_key_value_heads: KV,
    head_dim: DH,
    vocab_size: V,
    max_position_embeddings: 2048,
    rms_norm_eps: 1e-5,
    rope_theta: 10000.0,
    hidden_act: 'silu',
    tie_word_embeddings: tied,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: 'bfloat16',
  };
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(config, null, 2));
  return { layers, bytes: total };
}

// ---------------------------------------------------------------------------------------------------------
// Measuring (in a child process)

function progressPrinter(): {
  onEstimate: (e: MemoryEstimate) => void;
  onProgress: (p: LoadProgress) => void;
} {
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: 'loading [{bar}] {percentage}% {done}/{total_mb} {tensors} {tensor}',
        barsize: 30,
        clearOnComplete: true,
      },
      cliProgress.Presets.shades_classic,
    );
    return {
      onEstimate: (e) =>
        bar.start(e.checkpointBytes, 0, {
          done: '',
          total_mb: mb(e.checkpointBytes),
          tensors: '',
          tensor: '',
        }),
      onProgress: (p) => {
        bar.update(p.bytesDone, {
          done: mb(p.bytesDone),
          tensors: `${p.tensorsDone}/${p.tensorsTotal} tensors`,
          tensor: p.name ?? '',
        });
        if (p.tensorsDone === p.tensorsTotal) bar.stop();
      },
    };
  }
  // Not a terminal: a line every 10%.
  let next = 0;
  const t0 = performance.now();
  return {
    onEstimate: () => {},
    onProgress: (p) => {
      if (p.bytesDone / p.bytesTotal < next && p.tensorsDone < p.tensorsTotal) return;
      next = Math.floor((p.bytesDone / p.bytesTotal) * 10 + 1) / 10;
      const s = ((performance.now() - t0) / 1000).toFixed(1);
      console.log(
        `  [${s}s] ${p.tensorsDone}/${p.tensorsTotal} tensors, ${mb(p.bytesDone)} / ${mb(p.bytesTotal)}` +
          `  rss ${mb(process.memoryUsage().rss)}  (${p.name ?? 'done'})`,
      );
    },
  };
}

/**
 * Peak RSS of this process: process.resourceUsage().maxRSS, and on Linux also /proc/self/status VmHWM
 * (the address space's high-water mark, which unlike maxRSS does not inherit the spawning parent's peak).
 */
function rssMax(): number {
  return process.resourceUsage().maxRSS * 1024; // kilobytes on Linux and macOS
}

function vmHwm(): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
    return m === null ? null : Number(m[1]) * 1024;
  } catch {
    return null;
  }
}

function measure(dir: string): void {
  const baseRss = process.memoryUsage().rss;
  const baseMax = rssMax();
  const baseHwm = vmHwm();
  const printer = progressPrinter();
  let estimate: MemoryEstimate | null = null;
  const t0 = performance.now();
  const model = HookedTransformer.load(dir, {
    compile: 'never',
    onEstimate: (e, limit) => {
      estimate = e;
      console.log(
        `  estimate: ${(e.parameters / 1e9).toFixed(3)}B parameters, checkpoint ${formatBytes(e.checkpointBytes)} ` +
          `${Object.keys(e.checkpointDtypes).join('+')}; needs ${formatBytes(e.totalBytes)} ` +
          `(${formatBytes(e.weightsBytes)} float32 weights + ${formatBytes(e.transientBytes)} transient); ` +
          `limit ${formatBytes(limit.bytes)} (${limit.source})`,
      );
      printer.onEstimate(e);
    },
    onProgress: printer.onProgress,
  });
  const loadS = (performance.now() - t0) / 1000;
  const afterLoadMax = rssMax();
  const afterLoadHwm = vmHwm();
  const heldRss = process.memoryUsage().rss;
  const est = estimate as MemoryEstimate | null;
  if (est === null) throw new Error('onEstimate was not called');
  let held = 0;
  for (const t of model.weights.values()) held += t.f32Sync().byteLength;
  console.log(
    `  loaded in ${loadS.toFixed(1)} s (${formatBytes(est.checkpointBytes / loadS)}/s of checkpoint)`,
  );
  console.log(
    `  weights held: ${formatBytes(held)} (estimate ${formatBytes(est.weightsBytes)}, ` +
      `${held === est.weightsBytes ? 'exact' : 'MISMATCH'})`,
  );
  const ratio = (peak: number) =>
    `+${mb(peak - baseRss)} over the RSS before load, ${((peak - baseRss) / est.totalBytes).toFixed(3)}x the estimate`;
  console.log(
    `  RSS before load ${mb(baseRss)}; estimate ${mb(est.totalBytes)}; RSS after load ${mb(heldRss)}`,
  );
  console.log(
    `  peak RSS (resourceUsage().maxRSS): ${mb(baseMax)} before load, ${mb(afterLoadMax)} after (${ratio(afterLoadMax)})`,
  );
  if (baseHwm !== null && afterLoadHwm !== null) {
    console.log(
      `  peak RSS (VmHWM): ${mb(baseHwm)} before load, ${mb(afterLoadHwm)} after (${ratio(afterLoadHwm)})`,
    );
  }

  // Loaded weights against the BF16 bits on disk (transposed: W_Q is [in, out], q_proj [out, in]).
  const ck = SafetensorsCheckpoint.open(dir);
  const check = (hfName: string, sondeName: string, transposed: boolean): number => {
    const info = ck.info(hfName);
    const [rows, cols] = info.shape as [number, number];
    const fd = fs.openSync(info.file, 'r');
    const w = model.weights.get(sondeName)!.f32Sync();
    let bad = 0;
    const bytes = Buffer.alloc(2);
    const bits = new Uint32Array(1);
    const asFloat = new Float32Array(bits.buffer);
    for (let k = 0; k < 200; k++) {
      const r = (k * 7919) % rows;
      const c = (k * 104729) % cols;
      fs.readSync(fd, bytes, 0, 2, info.byteOffset + 2 * (r * cols + c));
      bits[0] = bytes.readUInt16LE(0) << 16;
      const got = transposed ? w[c * rows + r]! : w[r * cols + c]!;
      if (!Object.is(got, asFloat[0]!)) bad++;
    }
    fs.closeSync(fd);
    return bad;
  };
  const last = model.cfg.nLayers - 1;
  const bad =
    check(`model.layers.${last}.self_attn.q_proj.weight`, `blocks.${last}.attn.W_Q`, true) +
    check('model.layers.0.mlp.down_proj.weight', 'blocks.0.mlp.W_out', true) +
    check('model.embed_tokens.weight', 'embed.W_E', false);
  ck.close();
  console.log(`  bf16 bits check: 600 sampled weights, ${bad === 0 ? 'all exact' : `${bad} WRONG`}`);

  const t1 = performance.now();
  const logits = model.run([[1, 15043, 29892, 3186]]).f32Sync();
  const fwdS = (performance.now() - t1) / 1000;
  let finite = true;
  for (const x of logits) if (!Number.isFinite(x)) finite = false;
  console.log(
    `  forward of 4 tokens: ${fwdS.toFixed(2)} s, logits [1, 4, ${V}] ${finite ? 'finite' : 'NOT FINITE'}; ` +
      `peak RSS after forward ${mb(Math.max(rssMax(), vmHwm() ?? 0))}`,
  );
  if (bad !== 0 || !finite || held !== est.weightsBytes) process.exitCode = 1;
}

// ---------------------------------------------------------------------------------------------------------

function refuse(dir: string): boolean {
  const est = estimateLoadMemory(dir, { vocabSize: V, dModel: D, family: 'llama' });
  let reads = 0;
  try {
    HookedTransformer.load(dir, {
      compile: 'never',
      memoryLimitBytes: est.totalBytes - 1,
      onProgress: () => reads++,
    });
    console.log('  NOT refused with memoryLimitBytes = estimate - 1');
    return false;
  } catch (e) {
    const ok = e instanceof MemoryError && reads === 0;
    console.log(`  memoryLimitBytes = estimate - 1: ${(e as Error).name}, ${reads} tensors read`);
    console.log(`  message: ${(e as Error).message}`);
    return ok;
  }
}

function main(): void {
  const measureDir = arg('--measure');
  if (measureDir !== undefined) {
    measure(measureDir);
    return;
  }
  const gb = Number(arg('--gb') ?? '2');
  if (!(gb > 0)) throw new Error('--gb needs a positive number');
  const tied = process.argv.includes('--tied');
  const writeDir = arg('--write');
  if (writeDir !== undefined) {
    const t0 = performance.now();
    const { layers, bytes } = writeCheckpoint(writeDir, gb * 1e9, tied);
    console.log(
      `  ${layers} layers, ${formatBytes(bytes)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`,
    );
    return;
  }
  const keep = arg('--keep');
  const self = fileURLToPath(import.meta.url);
  // Writing and each load run in their own processes, so this one stays small and each load's peak is its own.
  const child = (args: string[], env: NodeJS.ProcessEnv = process.env) =>
    spawnSync(process.execPath, [...process.execArgv, self, ...args], { stdio: 'inherit', env }).status === 0;
  const mallocMode = arg('--malloc') ?? 'both';
  const dir = keep !== undefined ? path.resolve(keep) : fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-big-'));
  fs.mkdirSync(dir, { recursive: true });
  console.log(
    `machine: ${os.cpus().length} cores, ${formatBytes(os.totalmem())} RAM, Node ${process.version}`,
  );
  try {
    if (fs.existsSync(path.join(dir, 'model.safetensors.index.json'))) {
      console.log(`reusing the checkpoint in ${dir}`);
    } else {
      console.log(`writing a ${gb} GB BF16 checkpoint to ${dir}`);
      if (!child(['--write', dir, '--gb', String(gb), ...(tied ? ['--tied'] : [])])) {
        throw new Error('writing the checkpoint failed');
      }
    }
    const modes = mallocMode === 'both' ? ['tuned', 'default'] : [mallocMode];
    let ok = true;
    for (const mode of modes) {
      console.log(
        `loading in a fresh process, ${mode === 'tuned' ? `Sonde's malloc settings (as the CLI)` : 'default glibc malloc'}:`,
      );
      const env = { ...process.env };
      if (mode === 'tuned') env.GLIBC_TUNABLES = SONDE_GLIBC_TUNABLES;
      else delete env.GLIBC_TUNABLES;
      if (!child(['--measure', dir], env)) ok = false;
    }
    console.log('refusal:');
    if (!refuse(dir)) ok = false;
    console.log(ok ? 'OK' : 'FAILED');
    if (!ok) process.exitCode = 1;
  } finally {
    if (keep === undefined) fs.rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

main();
