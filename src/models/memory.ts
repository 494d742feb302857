/**
 * How much memory loading a checkpoint takes, how much there is, and the check between the two that runs
 * before any tensor is read.
 *
 * Sonde holds every weight as float32, so a BF16 checkpoint takes twice its file size once loaded. The
 * estimate adds up what the loader really allocates: each checkpoint tensor as float32, the unembedding
 * that a tied model builds from its embedding, and the short-lived copies made while the largest tensor
 * is converted and transposed.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MemoryError, UsageError } from '../errors.js';
import {
  CONVERT_CHUNK_BYTES,
  MAX_TYPED_ARRAY_LENGTH,
  SafetensorsCheckpoint,
  type SafetensorsDtype,
} from '../io/safetensors.js';
import type { ModelConfig } from './config.js';

/** What loading a checkpoint will cost, in bytes unless named otherwise. */
export interface MemoryEstimate {
  /** Elements over every tensor in the checkpoint. */
  parameters: number;
  /** Tensors in the checkpoint. */
  tensors: number;
  /** Bytes of tensor data on disk. */
  checkpointBytes: number;
  /** Bytes on disk per dtype, e.g. `{ BF16: 2_200_000_000 }`. */
  checkpointDtypes: Partial<Record<SafetensorsDtype, number>>;
  /**
   * Bytes held once loaded: every checkpoint tensor as float32 (4 bytes an element), plus W_U built from
   * the embedding when the checkpoint has no lm_head.weight / embed_out.weight (vocab × d_model × 4),
   * plus GPT-2's zero b_U when it has no lm_head.bias. A tied checkpoint that still stores lm_head costs
   * the same: the stored copy goes unread and the transposed embedding takes its place.
   */
  weightsBytes: number;
  /**
   * Bytes held only while one tensor is loaded, for the worst tensor: its float32 copy before the
   * transpose into Sonde's [in, out] layout, plus the conversion staging buffer (min(source bytes,
   * {@link CONVERT_CHUNK_BYTES}) for F64/F16/BF16, none for F32).
   */
  transientBytes: number;
  /** weightsBytes + transientBytes: the most the load adds to the process at once. */
  totalBytes: number;
  /**
   * Bytes the model's compiled graphs may hold on top of the weights once it runs: a copy of the
   * weights per graph for models small enough to bake ({@link compiledGraphBytes}), none above that.
   */
  compiledBytes: number;
  /** The tensor with the most elements (null for an empty checkpoint). */
  largestTensor: { name: string; dtype: SafetensorsDtype; shape: number[]; elements: number } | null;
}

/** A memory ceiling and where it came from (for messages). */
export interface MemoryLimit {
  bytes: number;
  /** 'memoryLimitBytes' (the load option), 'SONDE_MAX_MEMORY', or how the free memory was measured. */
  source: 'memoryLimitBytes' | 'SONDE_MAX_MEMORY' | MemoryAvailability['source'];
}

/** Free memory and how it was measured. */
export interface MemoryAvailability {
  bytes: number;
  /** 'MemAvailable' (/proc/meminfo), 'cgroup' (the container's limit minus its usage), or 'os.freemem'. */
  source: 'MemAvailable' | 'cgroup' | 'os.freemem';
}

/** Where {@link memoryAvailability} looks; tests point it at a fake tree. */
export interface MemoryProbeOptions {
  /** Prefix for /proc and /sys paths (default '/'). */
  root?: string;
  /** Platform to assume (default process.platform). */
  platform?: NodeJS.Platform;
}

/** Names of a separate unembedding matrix (GPT-NeoX calls it embed_out), possibly under a prefix. */
const UNEMBEDDINGS = ['lm_head.weight', 'embed_out.weight'];

/**
 * The memory loading `src` (a model folder, a .safetensors/index file, or an open checkpoint) will take.
 * Reads headers only. `cfg` gives the vocabulary and width of a unembedding built from the embedding.
 */
export function estimateLoadMemory(
  src: string | SafetensorsCheckpoint,
  cfg: Pick<ModelConfig, 'vocabSize' | 'dModel' | 'family'>,
): MemoryEstimate {
  const ckpt = typeof src === 'string' ? SafetensorsCheckpoint.open(src) : src;
  try {
    let parameters = 0;
    let checkpointBytes = 0;
    let transientBytes = 0;
    const checkpointDtypes: Partial<Record<SafetensorsDtype, number>> = {};
    let largestTensor: MemoryEstimate['largestTensor'] = null;
    const names = ckpt.names();
    for (const name of names) {
      const info = ckpt.info(name);
      const elements = info.shape.reduce((a, b) => a * b, 1);
      parameters += elements;
      checkpointBytes += info.byteLength;
      checkpointDtypes[info.dtype] = (checkpointDtypes[info.dtype] ?? 0) + info.byteLength;
      const staging = info.dtype === 'F32' ? 0 : Math.min(info.byteLength, CONVERT_CHUNK_BYTES);
      transientBytes = Math.max(transientBytes, elements * 4 + staging);
      if (largestTensor === null || elements > largestTensor.elements) {
        largestTensor = { name, dtype: info.dtype, shape: info.shape, elements };
      }
    }
    let weightsBytes = parameters * 4;
    // Every architecture holds W_U [d_model, vocab] as its own array: the checkpoint's unembedding
    // transposed (counted above), or, when there is none, a transposed copy of the embedding.
    if (!names.some((n) => UNEMBEDDINGS.some((u) => n === u || n.endsWith(`.${u}`)))) {
      weightsBytes += cfg.vocabSize * cfg.dModel * 4;
    }
    if (cfg.family === 'gpt2' && !ckpt.has('lm_head.bias')) weightsBytes += cfg.vocabSize * 4;
    return {
      parameters,
      tensors: names.length,
      checkpointBytes,
      checkpointDtypes,
      weightsBytes,
      transientBytes,
      totalBytes: weightsBytes + transientBytes,
      compiledBytes: compiledGraphBytes(weightsBytes),
      largestTensor,
    };
  } finally {
    if (typeof src === 'string') ckpt.close();
  }
}

/** Bytes of memory this process can still take (see {@link memoryAvailability}). */
export function availableMemory(opts: MemoryProbeOptions = {}): number {
  return memoryAvailability(opts).bytes;
}

/**
 * Free memory: on Linux the smaller of /proc/meminfo's MemAvailable and, under a cgroup memory limit
 * (v2 memory.max / memory.high, or v1 memory.limit_in_bytes, on this process's cgroup or any above it),
 * the limit minus the usage that cannot be reclaimed (usage less inactive page cache, as `docker stats`
 * counts it). Elsewhere, os.freemem().
 */
export function memoryAvailability(opts: MemoryProbeOptions = {}): MemoryAvailability {
  const root = opts.root ?? '/';
  const platform = opts.platform ?? process.platform;
  if (platform !== 'linux') return { bytes: os.freemem(), source: 'os.freemem' };
  const meminfo = readText(path.join(root, 'proc/meminfo'));
  const kb = meminfo === null ? null : /^MemAvailable:\s+(\d+)\s*kB/m.exec(meminfo);
  let best: MemoryAvailability =
    kb === null
      ? { bytes: os.freemem(), source: 'os.freemem' }
      : { bytes: Number(kb[1]) * 1024, source: 'MemAvailable' };
  const cg = cgroupHeadroom(root);
  if (cg !== null && cg < best.bytes) best = { bytes: cg, source: 'cgroup' };
  return best;
}

/** Cgroup limits at or above 2^60 mean "no limit" (v1 writes 9223372036854771712). */
const NO_LIMIT = 2 ** 60;

function cgroupHeadroom(root: string): number | null {
  const membership = readText(path.join(root, 'proc/self/cgroup')) ?? '';
  let v2Path = '/';
  let v1Path = '/';
  for (const line of membership.split('\n')) {
    // "hierarchy-id:controllers:path"; v2 is "0::path".
    const m = /^(\d+):([^:]*):(.+)$/.exec(line.trim());
    if (m === null) continue;
    if (m[1] === '0' && m[2] === '') v2Path = m[3]!;
    else if (m[2]!.split(',').includes('memory')) v1Path = m[3]!;
  }
  let best: number | null = null;
  const take = (limit: number | null, usage: number | null, inactive: number | null) => {
    if (limit === null || limit >= NO_LIMIT) return;
    const used = Math.max(0, (usage ?? 0) - (inactive ?? 0));
    const head = Math.max(0, limit - used);
    best = best === null ? head : Math.min(best, head);
  };
  for (const mount of ['sys/fs/cgroup', 'sys/fs/cgroup/unified']) {
    for (const dir of ancestors(path.join(root, mount), v2Path)) {
      const max = readLimit(path.join(dir, 'memory.max'));
      const high = readLimit(path.join(dir, 'memory.high'));
      const limit = max === null ? high : high === null ? max : Math.min(max, high);
      const stat = readText(path.join(dir, 'memory.stat'));
      take(limit, readLimit(path.join(dir, 'memory.current')), statField(stat, 'inactive_file'));
    }
  }
  for (const dir of ancestors(path.join(root, 'sys/fs/cgroup/memory'), v1Path)) {
    const stat = readText(path.join(dir, 'memory.stat'));
    take(
      readLimit(path.join(dir, 'memory.limit_in_bytes')),
      readLimit(path.join(dir, 'memory.usage_in_bytes')),
      statField(stat, 'total_inactive_file') ?? statField(stat, 'inactive_file'),
    );
  }
  return best;
}

/** `mount/rel`, then each folder above it up to `mount`, keeping those that exist. */
function ancestors(mount: string, rel: string): string[] {
  const top = path.resolve(mount);
  const out: string[] = [];
  let dir = path.resolve(top, `.${path.posix.sep}${rel}`);
  while (dir === top || dir.startsWith(top + path.sep)) {
    if (fs.existsSync(dir)) out.push(dir);
    if (dir === top) break;
    dir = path.dirname(dir);
  }
  return out;
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return null;
  }
}

function readLimit(file: string): number | null {
  const text = readText(file)?.trim();
  if (text === undefined || !/^\d+$/.test(text)) return null; // absent, or 'max'
  return Number(text);
}

function statField(stat: string | null, key: string): number | null {
  if (stat === null) return null;
  const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(stat);
  return m === null ? null : Number(m[1]);
}

const UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1e3,
  kb: 1e3,
  m: 1e6,
  mb: 1e6,
  g: 1e9,
  gb: 1e9,
  t: 1e12,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/**
 * Parses a memory size: bytes ('8000000000'), or a number and a unit, case-insensitive, e.g. '8GB',
 * '512 MB', '1.5GiB' (KB/MB/GB/TB are powers of 1000, KiB/MiB/GiB/TiB powers of 1024). 'unlimited' or
 * 'none' gives Infinity (no check). `what` names the setting in the error. Throws UsageError.
 */
export function parseMemorySize(text: string, what = 'SONDE_MAX_MEMORY'): number {
  const t = text.trim().toLowerCase();
  if (t === 'unlimited' || t === 'none') return Infinity;
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/.exec(t);
  const unit = m === null ? undefined : UNITS[m[2]!];
  if (m === null || unit === undefined) {
    throw new UsageError(
      `${what}='${text}' is not a memory size; expected bytes or a number with a unit, e.g. 8GB, 512MB, ` +
        `16GiB (or 'unlimited')`,
    );
  }
  const bytes = Math.floor(Number(m[1]) * unit);
  if (bytes <= 0) throw new UsageError(`${what}='${text}' must be more than 0 bytes`);
  return bytes;
}

/**
 * The ceiling a load is checked against: `memoryLimitBytes` if given, else SONDE_MAX_MEMORY if set, else
 * the memory available now.
 */
export function resolveMemoryLimit(
  memoryLimitBytes?: number,
  env: NodeJS.ProcessEnv = process.env,
): MemoryLimit {
  if (memoryLimitBytes !== undefined) {
    if (typeof memoryLimitBytes !== 'number' || Number.isNaN(memoryLimitBytes) || memoryLimitBytes < 0) {
      throw new UsageError(`memoryLimitBytes is ${String(memoryLimitBytes)}; expected a number of bytes ≥ 0`);
    }
    return { bytes: memoryLimitBytes, source: 'memoryLimitBytes' };
  }
  const fromEnv = env['SONDE_MAX_MEMORY'];
  if (fromEnv !== undefined && fromEnv.trim() !== '') {
    return { bytes: parseMemorySize(fromEnv), source: 'SONDE_MAX_MEMORY' };
  }
  return memoryAvailability();
}

/**
 * Throws MemoryError when loading `dir` as estimated will not fit under `limit`, or when one tensor has
 * more elements than a typed array can hold.
 */
export function checkLoadMemory(dir: string, estimate: MemoryEstimate, limit: MemoryLimit): void {
  const big = estimate.largestTensor;
  if (big !== null && big.elements > MAX_TYPED_ARRAY_LENGTH) {
    throw new MemoryError(
      `model folder '${dir}': tensor '${big.name}' [${big.shape.join(', ')}] has ${big.elements} elements, ` +
        `more than the ${MAX_TYPED_ARRAY_LENGTH} one JavaScript typed array can hold (Node ${process.versions.node}), ` +
        'so Sonde cannot load it as float32',
    );
  }
  if (estimate.totalBytes <= limit.bytes) return;
  const byDtype = Object.entries(estimate.checkpointDtypes).sort((a, b) => b[1] - a[1]);
  const stored =
    byDtype.length === 1
      ? `${formatBytes(estimate.checkpointBytes)} of ${byDtype[0]![0]}`
      : `${formatBytes(estimate.checkpointBytes)} (${byDtype.map(([d, n]) => `${formatBytes(n)} ${d}`).join(' + ')})`;
  // Figures that round alike are written out in bytes.
  const exact = formatBytes(estimate.totalBytes) === formatBytes(limit.bytes);
  const size = (n: number) => (exact ? `${n.toLocaleString('en-US')} bytes` : formatBytes(n));
  const need = size(estimate.totalBytes);
  const have = overLimit(limit, size);
  const raise = raiseLimit(limit, estimate.totalBytes);
  throw new MemoryError(
    `model folder '${dir}' needs ${need} of memory to load, ${have}: ` +
      `${formatCount(estimate.parameters)} parameters, stored as ${stored}, which Sonde holds as float32: ` +
      `${formatBytes(estimate.weightsBytes)} of weights plus ${formatBytes(estimate.transientBytes)} while the ` +
      `largest tensor is converted. Use a smaller model, free some memory, or, if you know it will fit, ${raise}`,
  );
}

/** 'over the limit of 8 GB set by SONDE_MAX_MEMORY' or 'but only 3 GB is available (...)'. */
export function overLimit(limit: MemoryLimit, size: (n: number) => string = formatBytes): string {
  return limit.source === 'memoryLimitBytes' || limit.source === 'SONDE_MAX_MEMORY'
    ? `over the limit of ${size(limit.bytes)} set by ${limit.source}`
    : `but only ${size(limit.bytes)} is available (${AVAILABILITY_SOURCES[limit.source]})`;
}

/** How to let `needed` bytes through `limit`: 'raise memoryLimitBytes' or 'raise the limit with SONDE_MAX_MEMORY=9.3GB'. */
export function raiseLimit(limit: MemoryLimit, needed: number): string {
  return limit.source === 'memoryLimitBytes'
    ? 'raise memoryLimitBytes'
    : `raise the limit with SONDE_MAX_MEMORY=${compactSize(needed)}`;
}

const AVAILABILITY_SOURCES: Record<MemoryAvailability['source'], string> = {
  MemAvailable: 'MemAvailable in /proc/meminfo',
  cgroup: "this container's memory limit less its usage",
  'os.freemem': 'os.freemem()',
};

/** 1234567890 -> '1.23 GB' (powers of 1000, as SONDE_MAX_MEMORY's GB). */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return 'unlimited';
  const units = ['bytes', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0
    ? `${n} bytes`
    : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[i]}`;
}

/** A size at or just above `n`, written for an environment variable: '9.3GB', '170MB', '5000'. */
function compactSize(n: number): string {
  if (n >= 1e9) return `${Math.ceil(n / 1e8) / 10}GB`;
  if (n >= 1e6) return `${Math.ceil(n / 1e6)}MB`;
  return String(Math.ceil(n));
}

/** 1_100_048_384 -> '1.10B'. */
function formatCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

// ---------------------------------------------------------------------------------------------------------
// Compiled graphs

/**
 * A model whose float32 weights total at most this has them baked into each compiled graph
 * (HookedTransformer's `compile`): ORT pre-packs the matmul weights, up to 2x faster on short inputs, but
 * building the graph costs about 40 ms per MB (25 s for GPT-2 small) and 2.5x the weights at its peak,
 * and a graph over 2 GB cannot be built at all. Above it, weights are fed by reference at each run: no
 * copy, compiled in about a second, as fast from ~128 tokens up.
 */
export const BAKE_WEIGHTS_MAX_BYTES = 100e6;
/** Compiled graphs a model keeps (the least recently used is dropped). */
export const MAX_COMPILED_GRAPHS = 4;
/** What one baked graph holds, in copies of the weights (the graph's initializers and ORT's pre-packs). */
const BAKED_COPIES = 2.5;
/** Captured tensors up to this many elements (norm weights, rotary tables) are baked even then. */
const SMALL_CONSTANT_ELEMENTS = 1 << 16;

/** The tracer's inlineLimit for a model with `weightsBytes` of weights (see {@link BAKE_WEIGHTS_MAX_BYTES}). */
export function compiledInlineLimit(weightsBytes: number): number {
  return weightsBytes <= BAKE_WEIGHTS_MAX_BYTES ? Infinity : SMALL_CONSTANT_ELEMENTS;
}

/** The most a model's compiled graphs hold beyond its weights: baked copies, or nothing by reference. */
export function compiledGraphBytes(weightsBytes: number): number {
  return weightsBytes <= BAKE_WEIGHTS_MAX_BYTES ? MAX_COMPILED_GRAPHS * BAKED_COPIES * weightsBytes : 0;
}
