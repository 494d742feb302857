// The data side of SAE training: harvesting a hook's activations into an on-disk store of shards, and
// reading any store (or single activation file) back as shuffled batches with exact resume. Memory is
// bounded by one shard buffer (harvest) or one shuffle buffer (stream), whatever the data size.
import { hookSpec, trailingShape } from '../models/hook-table.js';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { layerOf } from '../hooks/hooks.js';
import { writeSafetensors } from '../io/safetensors.js';
import { ActivationDataError, openRowSource, type RowDtype, type RowSource } from './row-source.js';
import { tempSibling } from '../io/leftovers.js';

export const MANIFEST_FILE = 'manifest.json';
const FORMAT = 'sonde-activations';
const TENSOR = 'activations';

/** Where a harvest stands in its context stream: contexts [0, contexts) are done, plus the first
 * `rowsInContext` stored rows of context `contexts`. `tokensSha256` hashes the tokens of the done contexts
 * so that a resume over different texts is caught. */
export interface HarvestPosition {
  contexts: number;
  rowsInContext: number;
  tokensSha256: string;
}

export interface ShardEntry {
  file: string;
  rows: number;
  /** The harvest position just after this shard's last row. */
  end: HarvestPosition;
}

/** manifest.json of a harvested folder. Shards are listed only once fully written. */
export interface StoreManifest {
  format: typeof FORMAT;
  version: 1;
  hook: string;
  /** The model's folder (provenance) and a fingerprint of its config and weights (checked on resume). */
  model: string;
  modelFingerprint: string;
  d: number;
  dtype: 'float32' | 'float16';
  ctx: number;
  excludeBos: boolean;
  bosTokenId: number | null;
  shardRows: number;
  shards: ShardEntry[];
  /** Total rows over the listed shards. */
  rows: number;
  /** Resume point: the end of the last listed shard. */
  position: HarvestPosition;
  /** True once the texts were used up (the last, partial context is dropped). */
  complete: boolean;
}

export interface HarvestOptions {
  hook: string;
  /** Documents; a function is called again on resume to replay the stream from the start. */
  texts: string[] | (() => Iterable<string>);
  outDir: string;
  /** Tokens per context, BOS included (default 128). */
  ctx?: number;
  /** Contexts per forward pass (default 8). */
  batchSize?: number;
  dtype?: 'float32' | 'float16';
  /** Rows per shard file (default 65536); the shard buffer is shardRows × d float32. */
  shardRows?: number;
  /** Stop once the store holds this many rows (the run can be continued later with a larger value). */
  maxRows?: number;
  /** Skip positions whose token is BOS: each context's first token and the separators (default true). */
  excludeBos?: boolean;
  onProgress?: (rowsDone: number, rowsTotal: number | null) => void;
}

const EMPTY_SHA = crypto.createHash('sha256').digest('hex');

function atomicWrite(file: string, bytes: string | Uint8Array): void {
  const tmp = tempSibling(file);
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw new ActivationDataError(`cannot write '${file}': ${(e as Error).message}`);
  }
}

/** Config and the first bytes of every weight: catches another model, or the same one processed. */
async function modelFingerprint(model: HookedTransformer): Promise<string> {
  const h = crypto.createHash('sha256').update(JSON.stringify(model.cfg));
  for (const name of [...model.weights.keys()].sort()) {
    const t = model.weights.get(name)!;
    const d = await t.data();
    h.update(`${name}:${t.dtype}:${t.shape.join(',')};`);
    h.update(new Uint8Array(d.buffer, d.byteOffset, Math.min(d.byteLength, 256)));
  }
  return h.digest('hex').slice(0, 32);
}

/**
 * Contexts of exactly `ctx` tokens, as SAELens's concat-and-chunk with BOS at each context start and BOS
 * between documents: every text is tokenized without BOS, each context starts with BOS, the documents'
 * tokens follow one another with a BOS separator where a new document begins inside a context (none where
 * it begins a context: no double BOS). Equivalently: concatenate the documents each with a leading BOS (as
 * a Llama tokenizer encodes them) and cut; a context that would not start at a BOS gets one prepended.
 * The last, incomplete context is dropped. Without a BOS token the documents are simply concatenated.
 */
function* contextStream(
  texts: Iterable<string>,
  encode: (text: string) => number[],
  bos: number | null,
  ctx: number,
): Generator<Int32Array> {
  const start = bos === null ? 0 : 1;
  let cur = new Int32Array(ctx);
  let n = 0;
  for (const text of texts) {
    const ids = encode(text);
    if (ids.length === 0) continue;
    const toks = bos !== null && n > start ? [bos, ...ids] : ids;
    for (const tok of toks) {
      if (n === 0 && bos !== null) cur[n++] = bos;
      cur[n++] = tok;
      if (n === ctx) {
        yield cur;
        cur = new Int32Array(ctx);
        n = 0;
      }
    }
  }
}

/** Captures `hook` for a [batch, ctx] token tensor, stopping after the hook's block when it has one. */
function capture(model: HookedTransformer, hook: string, tokens: Tensor, useAttnResult: boolean): Tensor {
  const layer = layerOf(hook);
  if (layer === null) return model.runWithCache(tokens, { names: [hook], useAttnResult }).cache.get(hook);
  let out: Tensor | null = null;
  model.runWithHooks(tokens, {
    fwd: [{ name: hook, fn: (x) => void (out = x) }],
    stopAtLayer: layer,
    useAttnResult,
  });
  if (!out) throw new ActivationDataError(`hook ${hook} was not reached in the forward pass`);
  return out;
}

function shardName(i: number): string {
  return `shard-${String(i).padStart(5, '0')}.safetensors`;
}

function readManifest(dir: string): StoreManifest | null {
  const file = path.join(dir, MANIFEST_FILE);
  if (!fs.existsSync(file)) return null;
  let m: StoreManifest;
  try {
    m = JSON.parse(fs.readFileSync(file, 'utf8')) as StoreManifest;
  } catch (e) {
    throw new ActivationDataError(`${file}: not a readable manifest (${(e as Error).message})`);
  }
  if (m === null || typeof m !== 'object' || m.format !== FORMAT || !Array.isArray(m.shards)) {
    throw new ActivationDataError(`${file}: not a Sonde activation-store manifest`);
  }
  return m;
}

function posInt(v: unknown, name: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 1)
    throw new ActivationDataError(`harvest: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return v as number;
}

/**
 * Runs the model over `texts` and stores `hook`'s activation at every (non-BOS) position as rows in
 * `outDir`/shard-NNNNN.safetensors (tensor `activations` [rows, d], F32 or F16) plus manifest.json.
 * Hooks with heads ([batch, pos, head, d_head]) are flattened to head*d_head.
 *
 * Resumable: if `outDir` already holds a manifest with the same hook, model and settings, the harvest
 * continues from the end of its last listed shard (a trailing shard cut short by `maxRows` is reopened and
 * filled), replaying the texts up to that point without running the model, so an interrupted run plus its
 * continuation write the same shards as one run. A different hook or settings is an error.
 * Shards and the manifest are written atomically (temp file + rename); only one shard buffer is held.
 */
export async function harvestActivations(
  model: HookedTransformer,
  opts: HarvestOptions,
): Promise<StoreManifest> {
  const hook = opts.hook;
  const ctx = posInt(opts.ctx ?? 128, 'ctx');
  const batchSize = posInt(opts.batchSize ?? 8, 'batchSize');
  const shardRows = posInt(opts.shardRows ?? 65536, 'shardRows');
  const maxRows = opts.maxRows === undefined ? null : posInt(opts.maxRows, 'maxRows');
  const dtype = opts.dtype ?? 'float32';
  const excludeBos = opts.excludeBos ?? true;
  if (dtype !== 'float32' && dtype !== 'float16')
    throw new ActivationDataError(`harvest: dtype must be float32 or float16, got ${JSON.stringify(dtype)}`);
  const useAttnResult = hook.endsWith('attn.hook_result');
  const known = model.hookNames({ useAttnResult });
  if (!known.includes(hook)) {
    throw new ActivationDataError(`harvest: unknown hook ${JSON.stringify(hook)} (see model.hookNames())`);
  }
  const spec = hookSpec(model.cfg, hook);
  if (spec && trailingShape(model.cfg, spec) === null) {
    throw new ActivationDataError(
      `harvest: ${hook} is [batch, head, query, key], not one vector per position; pick a [batch, pos, ...] hook`,
    );
  }
  if (ctx < 2) throw new ActivationDataError('harvest: ctx must be at least 2 (BOS plus one token)');
  if (ctx > model.cfg.nCtx) {
    throw new ActivationDataError(`harvest: ctx ${ctx} exceeds the model's context of ${model.cfg.nCtx}`);
  }
  const bos = model.tokenizer?.bosId ?? model.cfg.bosTokenId ?? null;
  const fingerprint = await modelFingerprint(model);

  const outDir = opts.outDir;
  fs.mkdirSync(outDir, { recursive: true });
  for (const f of fs.readdirSync(outDir)) {
    // Temp files left by a run that was killed mid-write.
    if (/^(shard-\d+\.safetensors|manifest\.json)\.tmp-/.test(f))
      fs.rmSync(path.join(outDir, f), { force: true });
  }
  const settings = {
    hook,
    modelFingerprint: fingerprint,
    ctx,
    dtype,
    excludeBos,
    bosTokenId: bos,
    shardRows,
  } as const;
  let manifest = readManifest(outDir);
  if (manifest) {
    const diff = (Object.keys(settings) as (keyof typeof settings)[]).filter(
      (k) => manifest![k] !== settings[k],
    );
    if (diff.length > 0) {
      const show = (k: keyof typeof settings, v: unknown) =>
        k === 'modelFingerprint' ? 'another model' : JSON.stringify(v);
      throw new ActivationDataError(
        `${outDir} already holds activations harvested with other settings (` +
          diff.map((k) => `${k}: ${show(k, manifest![k])} there, ${show(k, settings[k])} now`).join('; ') +
          `; model there: ${manifest.model}); use another folder or delete it`,
      );
    }
    if (manifest.complete || (maxRows !== null && manifest.rows >= maxRows)) return manifest;
  } else {
    manifest = {
      format: FORMAT,
      version: 1,
      ...settings,
      model: model.source,
      d: 0,
      shards: [],
      rows: 0,
      position: { contexts: 0, rowsInContext: 0, tokensSha256: EMPTY_SHA },
      complete: false,
    };
  }
  const m = manifest;
  const writeManifest = () =>
    atomicWrite(path.join(outDir, MANIFEST_FILE), JSON.stringify(m, null, 2) + '\n');

  let buf: Float32Array | null = null;
  let fill = 0;
  // A trailing shard cut short by maxRows: take it out of the manifest and refill it in memory.
  const last = m.shards[m.shards.length - 1];
  if (last && last.rows < shardRows) {
    const src = openRowSource(path.join(outDir, last.file));
    try {
      if (src.rows !== last.rows || src.dim !== m.d)
        throw new ActivationDataError(
          `${src.path}: holds [${src.rows}, ${src.dim}], manifest says [${last.rows}, ${m.d}]`,
        );
      buf = new Float32Array(shardRows * m.d);
      buf.set(src.read(0, src.rows));
      fill = src.rows;
    } finally {
      src.close();
    }
    m.shards.pop();
    m.rows -= last.rows;
    m.position = m.shards.length
      ? m.shards[m.shards.length - 1]!.end
      : { contexts: 0, rowsInContext: 0, tokensSha256: EMPTY_SHA };
    writeManifest();
  }
  const resume = fill > 0 ? last!.end : m.position;

  const texts = typeof opts.texts === 'function' ? opts.texts() : opts.texts;
  const encode = (t: string) => model.encode(t, { prependBos: false });
  const stream = contextStream(texts, encode, bos, ctx);
  const hash = crypto.createHash('sha256');
  const hashContext = (c: Int32Array) => hash.update(new Uint8Array(c.buffer, c.byteOffset, c.byteLength));
  for (let i = 0; i < resume.contexts; i++) {
    const r = stream.next();
    if (r.done) {
      throw new ActivationDataError(
        `${outDir}: the texts give ${i} contexts, fewer than the ${resume.contexts} already harvested (other texts?)`,
      );
    }
    hashContext(r.value);
  }
  if (hash.copy().digest('hex') !== resume.tokensSha256) {
    throw new ActivationDataError(
      `${outDir}: the texts differ from those the store was harvested from (token hash mismatch); use another folder`,
    );
  }

  let contextIndex = resume.contexts;
  let skipRows = resume.rowsInContext;
  let d = m.d || 0;
  const total = () => m.rows + fill;

  const flush = (end: HarvestPosition) => {
    const file = shardName(m.shards.length);
    writeSafetensors(
      path.join(outDir, file),
      {
        [TENSOR]: {
          dtype: dtype === 'float32' ? 'F32' : 'F16',
          shape: [fill, d],
          data: buf!.subarray(0, fill * d),
        },
      },
      { format: FORMAT, hook, model: m.model },
    );
    m.shards.push({ file, rows: fill, end });
    m.rows += fill;
    m.position = end;
    fill = 0;
    writeManifest();
  };

  for (;;) {
    const batch: Int32Array[] = [];
    while (batch.length < batchSize) {
      const r = stream.next();
      if (r.done) break;
      batch.push(r.value);
    }
    if (batch.length === 0) break;
    const ids = new BigInt64Array(batch.length * ctx);
    batch.forEach((c, b) => c.forEach((t, p) => (ids[b * ctx + p] = BigInt(t))));
    const act = capture(model, hook, new Tensor(ids, [batch.length, ctx]), useAttnResult);
    if (act.shape[0] !== batch.length || act.shape[1] !== ctx || act.dtype !== 'float32') {
      throw new ActivationDataError(
        `harvest: ${hook} gave [${act.shape.join(', ')}] ${act.dtype}; expected float32 [${batch.length}, ${ctx}, ...]`,
      );
    }
    const width = act.shape.slice(2).reduce((a, b) => a * b, 1);
    if (d === 0) d = m.d = width;
    if (width !== d) throw new ActivationDataError(`${outDir}: ${hook} has width ${width}, the store ${d}`);
    buf ??= new Float32Array(shardRows * d);
    const data = await act.f32(); // rows written to the store
    for (let b = 0; b < batch.length; b++) {
      const c = batch[b]!;
      const kept: number[] = [];
      for (let p = 0; p < ctx; p++) if (!(excludeBos && c[p] === bos)) kept.push(p);
      let hashed = false;
      for (let j = skipRows; j < kept.length; j++) {
        const p = kept[j]!;
        buf.set(data.subarray((b * ctx + p) * d, (b * ctx + p + 1) * d), fill * d);
        fill++;
        if (j === kept.length - 1) {
          hashContext(c);
          hashed = true;
        }
        const atMax = maxRows !== null && total() >= maxRows;
        if (fill === shardRows || atMax) {
          const end = hashed
            ? { contexts: contextIndex + 1, rowsInContext: 0, tokensSha256: hash.copy().digest('hex') }
            : { contexts: contextIndex, rowsInContext: j + 1, tokensSha256: hash.copy().digest('hex') };
          flush(end);
          if (atMax) {
            opts.onProgress?.(total(), maxRows);
            return m;
          }
        }
      }
      if (!hashed) hashContext(c);
      skipRows = 0;
      contextIndex++;
    }
    opts.onProgress?.(total(), maxRows);
  }
  if (d === 0) {
    throw new ActivationDataError(`harvest: the texts do not fill a single context of ${ctx} tokens`);
  }
  if (fill > 0) {
    flush({ contexts: contextIndex, rowsInContext: 0, tokensSha256: hash.copy().digest('hex') });
  }
  m.complete = true;
  writeManifest();
  return m;
}

// ---------------------------------------------------------------------------------------------------------
// Reading: a store of shards (or one file) as one matrix, and a shuffled batch stream.

export interface StreamOptions {
  batchSize: number;
  seed: number;
  /** Rows held in the shuffle buffer (default 2^18). */
  bufferRows?: number;
  /** Rows read contiguously from disk per chunk (default 4096; at most bufferRows). */
  chunkRows?: number;
  /** Stream only the first `rows` rows (default: all), e.g. to keep the rest out of training. */
  rows?: number;
}

/** A stream's position; JSON-serializable. */
export interface StreamState {
  version: 1;
  rows: number;
  seed: number;
  bufferRows: number;
  chunkRows: number;
  epoch: number;
  group: number;
  offset: number;
}

export interface BatchStream {
  /** The next [batchSize, dim] batch; epochs follow one another forever. */
  next(): Float32Array;
  /** Where the stream stands: `store.stream(opts, state)` continues with exactly the next batch. */
  state(): StreamState;
  readonly batchSize: number;
  readonly dim: number;
  /** Current epoch (0-based): how many full passes over the rows were handed out. */
  readonly epoch: number;
  /** Rows the shuffle buffer is allocated for (at most bufferRows). */
  readonly bufferCapacityRows: number;
}

/** Mixes up to three 32-bit integers into a seed (murmur3 finalizer over a running combine). */
function mixSeed(...xs: number[]): number {
  let h = 0x9e3779b9;
  for (const x of xs) {
    let k = Math.imul(x | 0, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    h ^= Math.imul(k, 0x1b873593);
    h = Math.imul((h << 13) | (h >>> 19), 5) + 0xe6546b64;
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function permutation(n: number, rng: Rng): Uint32Array {
  const p = new Uint32Array(n);
  for (let i = 0; i < n; i++) p[i] = i;
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    const t = p[i]!;
    p[i] = p[j]!;
    p[j] = t;
  }
  return p;
}

const MAX_OPEN_SHARDS = 8;

/**
 * Activations on disk as one [rows, dim] matrix: a harvested folder (manifest.json + shards) or a single
 * .npy / .safetensors file. Reads are streamed; at most a few shard files are open at once.
 */
export class ActivationStore {
  private readonly starts: number[];
  private readonly open = new Map<number, RowSource>();

  private constructor(
    readonly path: string,
    readonly manifest: StoreManifest | null,
    private readonly files: string[],
    private readonly counts: number[],
    readonly dim: number,
    readonly dtype: RowDtype,
    first: RowSource | null,
  ) {
    this.starts = [0];
    for (const c of counts) this.starts.push(this.starts[this.starts.length - 1]! + c);
    if (first) this.open.set(0, first);
  }

  /** Opens a harvested folder or an activation file; validates every shard's header against the manifest. */
  static open(dirOrFile: string): ActivationStore {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dirOrFile);
    } catch {
      throw new ActivationDataError(`activations '${dirOrFile}' do not exist`);
    }
    if (!stat.isDirectory()) {
      const src = openRowSource(dirOrFile);
      return new ActivationStore(dirOrFile, null, [dirOrFile], [src.rows], src.dim, src.dtype, src);
    }
    const m = readManifest(dirOrFile);
    if (!m) {
      throw new ActivationDataError(
        `${dirOrFile} has no ${MANIFEST_FILE} (harvest activations into it first)`,
      );
    }
    if (m.shards.length === 0) throw new ActivationDataError(`${dirOrFile}: the store has no shards yet`);
    const files = m.shards.map((s) => path.join(dirOrFile, s.file));
    m.shards.forEach((s, i) => {
      const src = openRowSource(files[i]!);
      src.close();
      if (src.rows !== s.rows || src.dim !== m.d || src.dtype !== m.dtype) {
        throw new ActivationDataError(
          `${src.path}: holds [${src.rows}, ${src.dim}] ${src.dtype}, the manifest says [${s.rows}, ${m.d}] ${m.dtype}`,
        );
      }
    });
    return new ActivationStore(
      dirOrFile,
      m,
      files,
      m.shards.map((s) => s.rows),
      m.d,
      m.dtype,
      null,
    );
  }

  /** A store over one already opened source (e.g. `--activations FILE`). */
  static fromSource(src: RowSource): ActivationStore {
    return new ActivationStore(src.path, null, [src.path], [src.rows], src.dim, src.dtype, src);
  }

  get rows(): number {
    return this.starts[this.starts.length - 1]!;
  }

  /** The hook the rows come from, when the store says. */
  get hook(): string | null {
    return this.manifest?.hook ?? null;
  }

  private source(i: number): RowSource {
    let s = this.open.get(i);
    if (s) {
      this.open.delete(i);
      this.open.set(i, s); // most recently used last
      return s;
    }
    s = openRowSource(this.files[i]!);
    this.open.set(i, s);
    if (this.open.size > MAX_OPEN_SHARDS) {
      const [k, old] = this.open.entries().next().value as [number, RowSource];
      old.close();
      this.open.delete(k);
    }
    return s;
  }

  /** Rows [start, start + count) as [count, dim], across shard boundaries. */
  read(start: number, count: number, out?: Float32Array): Float32Array {
    if (
      !Number.isSafeInteger(start) ||
      !Number.isSafeInteger(count) ||
      start < 0 ||
      count < 0 ||
      start + count > this.rows
    ) {
      throw new ActivationDataError(
        `${this.path}: rows [${start}, ${start + count}) are out of range (the store has ${this.rows} rows)`,
      );
    }
    const res = out ?? new Float32Array(count * this.dim);
    let i = this.shardOf(start);
    let at = start;
    while (at < start + count) {
      const local = at - this.starts[i]!;
      const n = Math.min(this.counts[i]! - local, start + count - at);
      if (n > 0) res.set(this.source(i).read(local, n), (at - start) * this.dim);
      at += n;
      i++;
    }
    return res;
  }

  private shardOf(row: number): number {
    let lo = 0;
    let hi = this.counts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.starts[mid]! <= row) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** The first min(maxRows, rows) rows, for small evaluation sets. */
  readAll(maxRows = this.rows): Float32Array {
    return this.read(0, Math.min(Math.max(0, Math.floor(maxRows)), this.rows));
  }

  /**
   * Calls `fn` on contiguous blocks that sample about `sampleRows` rows evenly across the store (every row
   * when sampleRows >= rows), at most 4096 rows per block.
   */
  private forSample(sampleRows: number, fn: (block: Float32Array, rows: number) => void): number {
    const want = Math.min(this.rows, Math.max(1, Math.floor(sampleRows)));
    if (this.rows === 0) throw new ActivationDataError(`${this.path}: the store has no rows`);
    const step = 4096;
    if (want === this.rows) {
      for (let at = 0; at < this.rows; at += step) {
        const n = Math.min(step, this.rows - at);
        fn(this.read(at, n), n);
      }
      return want;
    }
    const blocks = Math.min(want, 256);
    let done = 0;
    for (let b = 0; b < blocks; b++) {
      const n = Math.floor((want * (b + 1)) / blocks) - Math.floor((want * b) / blocks);
      const at = Math.floor(((this.rows - n) * b) / Math.max(1, blocks - 1));
      for (let k = 0; k < n; k += step) {
        const m = Math.min(step, n - k);
        fn(this.read(at + k, m), m);
      }
      done += n;
    }
    return done;
  }

  /** Mean row (float64 accumulation), over every row or an even sample of `sampleRows`. */
  mean(sampleRows = Infinity): Float32Array {
    const acc = new Float64Array(this.dim);
    const n = this.forSample(sampleRows, (block, rows) => {
      for (let r = 0; r < rows; r++) for (let j = 0; j < this.dim; j++) acc[j]! += block[r * this.dim + j]!;
    });
    return Float32Array.from(acc, (v) => v / n);
  }

  /** Mean L2 norm of the rows over an even sample (SAELens's norm scaling factor is sqrt(d) / this). */
  meanNorm(sampleRows = 65536): number {
    let sum = 0;
    const n = this.forSample(sampleRows, (block, rows) => {
      for (let r = 0; r < rows; r++) {
        let s = 0;
        for (let j = 0; j < this.dim; j++) s += block[r * this.dim + j]! ** 2;
        sum += Math.sqrt(s);
      }
    });
    return sum / n;
  }

  /**
   * Shuffled batches with exact resume. Each epoch the rows are cut into chunks of chunkRows, the chunk
   * order is permuted (seeded by seed and epoch), consecutive runs of bufferRows/chunkRows chunks form a
   * group that is loaded into the buffer and permuted row by row (seeded by seed, epoch and group), and
   * batches are handed out in order, spanning group and epoch boundaries. Every row appears exactly once
   * per epoch. Memory: one group buffer plus one batch.
   */
  stream(opts: StreamOptions, state?: StreamState): BatchStream {
    return new ShuffledStream(this, opts, state);
  }

  close(): void {
    for (const s of this.open.values()) s.close();
    this.open.clear();
  }
}

class ShuffledStream implements BatchStream {
  readonly batchSize: number;
  readonly dim: number;
  private readonly seed: number;
  private readonly bufferRows: number;
  private readonly chunkRows: number;
  private readonly chunksPerGroup: number;
  private readonly nChunks: number;
  private readonly nGroups: number;
  private readonly rows: number;
  private epochNo = 0;
  private group = 0;
  private offset = 0;
  private chunkOrder: { epoch: number; order: Uint32Array } | null = null;
  private loaded: { epoch: number; group: number; rows: number; perm: Uint32Array } | null = null;
  private buffer: Float32Array | null = null;

  constructor(
    private readonly store: ActivationStore,
    opts: StreamOptions,
    state?: StreamState,
  ) {
    const pos = (v: unknown, name: string) => {
      if (!Number.isSafeInteger(v) || (v as number) < 1)
        throw new ActivationDataError(`stream: ${name} must be a positive integer, got ${JSON.stringify(v)}`);
      return v as number;
    };
    this.batchSize = pos(opts.batchSize, 'batchSize');
    if (!Number.isSafeInteger(opts.seed)) throw new ActivationDataError(`stream: seed must be an integer`);
    this.seed = opts.seed;
    this.bufferRows = pos(opts.bufferRows ?? 1 << 18, 'bufferRows');
    this.chunkRows = pos(opts.chunkRows ?? 4096, 'chunkRows');
    if (store.rows === 0) throw new ActivationDataError(`${store.path}: the store has no rows to stream`);
    this.rows = Math.min(pos(opts.rows ?? store.rows, 'rows'), store.rows);
    this.dim = store.dim;
    const chunk = Math.min(this.chunkRows, this.bufferRows);
    this.chunksPerGroup = Math.floor(this.bufferRows / chunk);
    this.nChunks = Math.ceil(this.rows / chunk);
    this.nGroups = Math.ceil(this.nChunks / this.chunksPerGroup);
    if (state) this.restore(state);
  }

  private get chunk(): number {
    return Math.min(this.chunkRows, this.bufferRows);
  }

  get epoch(): number {
    return this.epochNo;
  }

  get bufferCapacityRows(): number {
    return this.buffer ? this.buffer.length / this.dim : 0;
  }

  private restore(s: StreamState): void {
    const bad = (what: string) => {
      throw new ActivationDataError(`stream: cannot restore this state: ${what}`);
    };
    if (s === null || typeof s !== 'object' || s.version !== 1) bad('not a stream state');
    if (s.rows !== this.rows) bad(`it is for ${s.rows} rows, this stream has ${this.rows}`);
    for (const k of ['seed', 'bufferRows', 'chunkRows'] as const) {
      if (s[k] !== this[k]) bad(`${k} was ${s[k]}, now ${this[k]}`);
    }
    if (!Number.isSafeInteger(s.epoch) || s.epoch < 0) bad(`epoch ${s.epoch}`);
    if (!Number.isSafeInteger(s.group) || s.group < 0 || s.group >= this.nGroups) bad(`group ${s.group}`);
    if (!Number.isSafeInteger(s.offset) || s.offset < 0) bad(`offset ${s.offset}`);
    this.epochNo = s.epoch;
    this.group = s.group;
    this.offset = s.offset;
  }

  state(): StreamState {
    return {
      version: 1,
      rows: this.rows,
      seed: this.seed,
      bufferRows: this.bufferRows,
      chunkRows: this.chunkRows,
      epoch: this.epochNo,
      group: this.group,
      offset: this.offset,
    };
  }

  private order(epoch: number): Uint32Array {
    if (this.chunkOrder?.epoch !== epoch) {
      this.chunkOrder = { epoch, order: permutation(this.nChunks, new Rng(mixSeed(this.seed, epoch, -1))) };
    }
    return this.chunkOrder.order;
  }

  /** Loads group (epoch, group) into the buffer and draws its row permutation. */
  private load(): NonNullable<ShuffledStream['loaded']> {
    const l = this.loaded;
    if (l && l.epoch === this.epochNo && l.group === this.group) return l;
    const rows = this.rows;
    const chunk = this.chunk;
    const cap = Math.min(this.chunksPerGroup * chunk, rows);
    this.buffer ??= new Float32Array(cap * this.dim);
    const order = this.order(this.epochNo);
    let n = 0;
    const end = Math.min(this.nChunks, (this.group + 1) * this.chunksPerGroup);
    for (let g = this.group * this.chunksPerGroup; g < end; g++) {
      const c = order[g]!;
      const count = Math.min(chunk, rows - c * chunk);
      this.store.read(c * chunk, count, this.buffer.subarray(n * this.dim, (n + count) * this.dim));
      n += count;
    }
    const perm = permutation(n, new Rng(mixSeed(this.seed, this.epochNo, this.group)));
    this.loaded = { epoch: this.epochNo, group: this.group, rows: n, perm };
    return this.loaded;
  }

  next(): Float32Array {
    const out = new Float32Array(this.batchSize * this.dim);
    let filled = 0;
    while (filled < this.batchSize) {
      const l = this.load();
      if (this.offset >= l.rows)
        throw new ActivationDataError(`stream: offset ${this.offset} is past the group`);
      const n = Math.min(this.batchSize - filled, l.rows - this.offset);
      const buf = this.buffer!;
      for (let i = 0; i < n; i++) {
        const r = l.perm[this.offset + i]!;
        out.set(buf.subarray(r * this.dim, (r + 1) * this.dim), (filled + i) * this.dim);
      }
      filled += n;
      this.offset += n;
      if (this.offset === l.rows) {
        this.offset = 0;
        this.group++;
        if (this.group === this.nGroups) {
          this.group = 0;
          this.epochNo++;
        }
      }
    }
    return out;
  }
}
