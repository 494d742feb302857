/**
 * Reader and writer for the safetensors format.
 *
 * Layout: an 8-byte little-endian u64 `N`, then `N` bytes of UTF-8 JSON describing every tensor
 * (`dtype`, `shape`, `data_offsets` relative to the first byte after the header) plus an optional
 * `__metadata__` map of strings, then the raw little-endian tensor data.
 *
 * Reading validates the whole header up front and then only ever reads the byte span of the tensor
 * asked for, so multi-gigabyte checkpoints cost no more memory than the tensors actually used.
 */
import * as fs from 'node:fs';
import * as nodePath from 'node:path';
import { constants as bufferConstants } from 'node:buffer';
import { SafetensorsError } from '../errors.js';
import { tempSibling } from './leftovers.js';

/** Element types this module can read. */
export type SafetensorsDtype = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

/** Where one tensor lives on disk and what it holds. */
export interface TensorInfo {
  /** Tensor name as written in the header. */
  name: string;
  /** Element type. */
  dtype: SafetensorsDtype;
  /** Dimensions, outermost first; `[]` is a scalar. */
  shape: number[];
  /** Absolute byte offset of the tensor's first byte in `file`. */
  byteOffset: number;
  /** Number of bytes the tensor occupies. */
  byteLength: number;
  /** Path of the file that holds the tensor. */
  file: string;
}

/** One tensor for {@link writeSafetensors}: F32/F16/BF16 take a Float32Array, I32 an Int32Array, I64 either. */
export interface TensorToWrite {
  dtype: 'F32' | 'F16' | 'BF16' | 'I32' | 'I64';
  shape: number[];
  data: Float32Array | Int32Array | BigInt64Array;
}

/** Bytes per element of each supported dtype. */
const DTYPE_SIZE: Readonly<Record<SafetensorsDtype, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};
const DTYPE_NAMES = Object.keys(DTYPE_SIZE).join(', ');
const FLOAT_DTYPES: ReadonlySet<SafetensorsDtype> = new Set(['F64', 'F32', 'F16', 'BF16']);

/** Largest header accepted; the reference implementation uses the same cap. */
const MAX_HEADER_BYTES = 100_000_000;
/** readSync/writeSync take at most 2^31-1 bytes per call; stay well below. */
const IO_CHUNK = 1 << 30;
const METADATA_KEY = '__metadata__';

/**
 * Bytes read per step when a tensor is converted to float32 (F64, F16, BF16): the staging buffer is at
 * most this big whatever the tensor's size, so converting never holds the source bytes whole.
 */
export const CONVERT_CHUNK_BYTES = 1 << 23;
/** Most elements one typed array can hold in this JavaScript engine (2^32 in Node 20). */
export const MAX_TYPED_ARRAY_LENGTH: number = bufferConstants.MAX_LENGTH;

function isDtype(x: unknown): x is SafetensorsDtype {
  return typeof x === 'string' && Object.prototype.hasOwnProperty.call(DTYPE_SIZE, x);
}

function isPlainObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

function describe(x: unknown): string {
  if (x === undefined) return 'nothing';
  let s: string;
  try {
    s = JSON.stringify(x) ?? String(x);
  } catch {
    s = String(x);
  }
  return s.length > 80 ? `${s.slice(0, 77)}...` : s;
}

function errnoMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function fail(file: string, what: string, tensor?: string): SafetensorsError {
  const where = tensor === undefined ? '' : ` tensor ${JSON.stringify(tensor)}:`;
  return new SafetensorsError(`${file}:${where} ${what}`);
}

/** Reads exactly `target.length` bytes at `position`, in chunks, or throws. */
function readExact(fd: number, file: string, target: Uint8Array, position: number, what: string): void {
  let done = 0;
  while (done < target.length) {
    const want = Math.min(target.length - done, IO_CHUNK);
    let got: number;
    try {
      got = fs.readSync(fd, target, done, want, position + done);
    } catch (err) {
      throw fail(file, `cannot read ${what}: ${errnoMessage(err)}`);
    }
    if (got === 0) {
      throw fail(
        file,
        `unexpected end of file while reading ${what} (wanted ${target.length} bytes at offset ${position}, ` +
          `got ${done}); was the file truncated after it was opened?`,
      );
    }
    done += got;
  }
}

/** Writes all of `data` at the current position, in chunks. */
function writeAll(fd: number, data: Uint8Array): void {
  let done = 0;
  while (done < data.length) {
    done += fs.writeSync(fd, data, done, Math.min(data.length - done, IO_CHUNK));
  }
}

interface ParsedEntry {
  dtype: SafetensorsDtype;
  shape: number[];
  start: number;
  end: number;
}

function parseEntry(file: string, name: string, raw: unknown, dataBytes: number): ParsedEntry {
  if (!isPlainObject(raw)) {
    throw fail(
      file,
      `header entry is ${describe(raw)}; expected an object with dtype, shape, data_offsets`,
      name,
    );
  }
  const dtype = raw['dtype'];
  if (dtype === undefined) throw fail(file, `missing "dtype"; expected one of ${DTYPE_NAMES}`, name);
  if (!isDtype(dtype)) {
    throw fail(file, `unsupported dtype ${describe(dtype)}; expected one of ${DTYPE_NAMES}`, name);
  }
  const shape = raw['shape'];
  if (!Array.isArray(shape))
    throw fail(file, `"shape" is ${describe(shape)}; expected an array of integers`, name);
  for (const d of shape) {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0) {
      throw fail(file, `"shape" ${describe(shape)} has ${describe(d)}; expected non-negative integers`, name);
    }
  }
  const offsets = raw['data_offsets'];
  if (
    !Array.isArray(offsets) ||
    offsets.length !== 2 ||
    !offsets.every((o) => typeof o === 'number' && Number.isSafeInteger(o) && o >= 0)
  ) {
    throw fail(
      file,
      `"data_offsets" is ${describe(offsets)}; expected [start, end] with two non-negative integers`,
      name,
    );
  }
  const [start, end] = offsets as [number, number];
  if (start > end) throw fail(file, `"data_offsets" [${start}, ${end}] has start > end`, name);
  let elements = 1n;
  for (const d of shape as number[]) elements *= BigInt(d);
  const expected = elements * BigInt(DTYPE_SIZE[dtype]);
  if (expected !== BigInt(end - start)) {
    throw fail(
      file,
      `shape [${shape.join(', ')}] of ${dtype} needs ${expected} bytes but "data_offsets" [${start}, ${end}] ` +
        `span ${end - start} bytes`,
      name,
    );
  }
  if (end > dataBytes) {
    throw fail(
      file,
      `"data_offsets" [${start}, ${end}] run past the end of the data section (${dataBytes} bytes); ` +
        'the file is truncated or the header is wrong',
      name,
    );
  }
  return { dtype, shape: (shape as number[]).slice(), start, end };
}

/** A single open safetensors file. Only the header is read on open; tensors are read on demand. */
export class SafetensorsFile {
  /** The path this file was opened with. */
  readonly path: string;
  /** The `__metadata__` map (empty when absent). */
  readonly metadata: Record<string, string>;
  private fd: number | null;
  private readonly entries: Map<string, TensorInfo>;

  private constructor(
    path: string,
    fd: number,
    metadata: Record<string, string>,
    entries: Map<string, TensorInfo>,
  ) {
    this.path = path;
    this.fd = fd;
    this.metadata = metadata;
    this.entries = entries;
  }

  /** Opens `path` and validates its header; throws {@link SafetensorsError} on any problem. */
  static open(path: string): SafetensorsFile {
    let fd: number;
    try {
      fd = fs.openSync(path, 'r');
    } catch (err) {
      throw fail(path, `cannot open safetensors file: ${errnoMessage(err)}`);
    }
    try {
      const { metadata, entries } = readHeader(fd, path);
      return new SafetensorsFile(path, fd, metadata, entries);
    } catch (err) {
      fs.closeSync(fd);
      throw err;
    }
  }

  /** Tensor names, sorted. */
  names(): string[] {
    return [...this.entries.keys()].sort();
  }

  /** Whether the file holds a tensor called `name`. */
  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** Location, dtype and shape of tensor `name`; throws if absent. */
  info(name: string): TensorInfo {
    const e = this.entry(name);
    return { ...e, shape: e.shape.slice() };
  }

  /**
   * Reads tensor `name` (only its byte span) as Float32Array; dtype must be F64, F32, F16 or BF16. F32 is
   * read straight into the result; other dtypes are converted in {@link CONVERT_CHUNK_BYTES} steps, so
   * the only buffer that outlives the call is the returned one.
   */
  readFloat32(name: string): Float32Array {
    const e = this.entry(name);
    if (!FLOAT_DTYPES.has(e.dtype)) {
      throw fail(this.path, `dtype ${e.dtype} is not a float type; use readInt32 for integer tensors`, name);
    }
    if (this.fd === null) throw fail(this.path, 'file is closed', name);
    const size = DTYPE_SIZE[e.dtype];
    const n = e.byteLength / size;
    if (n > MAX_TYPED_ARRAY_LENGTH) {
      throw fail(
        this.path,
        `shape [${e.shape.join(', ')}] has ${n} elements, more than the ${MAX_TYPED_ARRAY_LENGTH} one ` +
          'JavaScript typed array can hold, so it cannot be read as one Float32Array',
        name,
      );
    }
    const out = new Float32Array(n);
    const what = `tensor ${JSON.stringify(name)}`;
    if (e.dtype === 'F32') {
      readExact(this.fd, this.path, new Uint8Array(out.buffer), e.byteOffset, what);
      return out;
    }
    const step = Math.min(e.byteLength, CONVERT_CHUNK_BYTES); // a multiple of every dtype size
    const staging = new ArrayBuffer(step);
    for (let done = 0; done < e.byteLength; done += step) {
      const len = Math.min(step, e.byteLength - done);
      readExact(this.fd, this.path, new Uint8Array(staging, 0, len), e.byteOffset + done, what);
      decodeInto(e.dtype, staging, len / size, out, done / size);
    }
    return out;
  }

  /**
   * Reads tensor `name` as Int32Array; dtype must be I64, I32, I16, I8, U8 or BOOL (BOOL gives 0/1).
   * Throws if an I64 value does not fit in int32.
   */
  readInt32(name: string): Int32Array {
    const e = this.entry(name);
    if (FLOAT_DTYPES.has(e.dtype)) {
      throw fail(this.path, `dtype ${e.dtype} is a float type; use readFloat32`, name);
    }
    const buf = this.readBytes(e);
    switch (e.dtype) {
      case 'I32':
        return new Int32Array(buf);
      case 'I16':
        return new Int32Array(new Int16Array(buf));
      case 'I8':
        return new Int32Array(new Int8Array(buf));
      case 'U8':
        return new Int32Array(new Uint8Array(buf));
      case 'BOOL':
        return Int32Array.from(new Uint8Array(buf), (b) => (b === 0 ? 0 : 1));
      default: {
        // I64, little-endian: pairs of (low, high) 32-bit words; fits iff high is low's sign extension.
        const words = new Int32Array(buf);
        const out = new Int32Array(words.length / 2);
        for (let i = 0; i < out.length; i++) {
          const lo = words[2 * i]!;
          const hi = words[2 * i + 1]!;
          if (hi !== lo >> 31) {
            const v = new BigInt64Array(buf, 8 * i, 1)[0]!;
            throw fail(this.path, `I64 value ${v} at index ${i} does not fit in int32`, name);
          }
          out[i] = lo;
        }
        return out;
      }
    }
  }

  /** Closes the file descriptor; later reads throw. Safe to call twice. */
  close(): void {
    if (this.fd !== null) {
      fs.closeSync(this.fd);
      this.fd = null;
    }
  }

  private entry(name: string): TensorInfo {
    const e = this.entries.get(name);
    if (e === undefined) {
      throw fail(this.path, `no such tensor (the file has ${this.entries.size} tensors)`, name);
    }
    return e;
  }

  /** Reads the tensor's bytes into a fresh (hence aligned) ArrayBuffer. */
  private readBytes(e: TensorInfo): ArrayBuffer {
    if (this.fd === null) throw fail(this.path, 'file is closed', e.name);
    const buf = new ArrayBuffer(e.byteLength);
    readExact(this.fd, this.path, new Uint8Array(buf), e.byteOffset, `tensor ${JSON.stringify(e.name)}`);
    return buf;
  }
}

function readHeader(
  fd: number,
  path: string,
): { metadata: Record<string, string>; entries: Map<string, TensorInfo> } {
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch (err) {
    throw fail(path, `cannot stat: ${errnoMessage(err)}`);
  }
  if (!stat.isFile()) throw fail(path, 'not a regular file; expected a .safetensors file');
  const size = stat.size;
  if (size < 8) {
    throw fail(path, `file is ${size} bytes; a safetensors file needs at least an 8-byte header length`);
  }
  const lenBytes = Buffer.alloc(8);
  readExact(fd, path, lenBytes, 0, 'header length');
  const headerLen = lenBytes.readBigUInt64LE(0);
  if (headerLen === 0n) throw fail(path, 'header length is 0; expected a JSON header of at least 2 bytes');
  if (headerLen > BigInt(size - 8)) {
    throw fail(
      path,
      `header length ${headerLen} exceeds the ${size - 8} bytes after the length field; ` +
        'the file is truncated or not a safetensors file',
    );
  }
  if (headerLen > BigInt(MAX_HEADER_BYTES)) {
    throw fail(path, `header length ${headerLen} exceeds the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const n = Number(headerLen);
  const headerBytes = Buffer.alloc(n);
  readExact(fd, path, headerBytes, 8, 'header');
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(headerBytes);
  } catch {
    throw fail(path, 'header is not valid UTF-8; expected a UTF-8 JSON object');
  }
  let header: unknown;
  try {
    header = JSON.parse(text);
  } catch (err) {
    throw fail(path, `header is not valid JSON (${errnoMessage(err)}); expected a JSON object`);
  }
  if (!isPlainObject(header)) {
    throw fail(path, `header is ${describe(header)}; expected a JSON object of tensor entries`);
  }

  const dataStart = 8 + n;
  const dataBytes = size - dataStart;
  const metadata: Record<string, string> = {};
  const entries = new Map<string, TensorInfo>();
  const spans: { name: string; start: number; end: number }[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === METADATA_KEY) {
      if (!isPlainObject(raw)) throw fail(path, `"${METADATA_KEY}" is ${describe(raw)}; expected an object`);
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string') {
          throw fail(path, `"${METADATA_KEY}" key ${JSON.stringify(k)} is ${describe(v)}; expected a string`);
        }
        Object.defineProperty(metadata, k, {
          value: v,
          enumerable: true,
          writable: true,
          configurable: true,
        });
      }
      continue;
    }
    const p = parseEntry(path, name, raw, dataBytes);
    entries.set(name, {
      name,
      dtype: p.dtype,
      shape: p.shape,
      byteOffset: dataStart + p.start,
      byteLength: p.end - p.start,
      file: path,
    });
    if (p.end > p.start) spans.push({ name, start: p.start, end: p.end });
  }
  spans.sort((a, b) => a.start - b.start || a.end - b.end);
  for (let i = 1; i < spans.length; i++) {
    const prev = spans[i - 1]!;
    const cur = spans[i]!;
    if (cur.start < prev.end) {
      throw fail(
        path,
        `"data_offsets" [${cur.start}, ${cur.end}] overlap tensor ${JSON.stringify(prev.name)} at ` +
          `[${prev.start}, ${prev.end}]; expected disjoint byte spans`,
        cur.name,
      );
    }
  }
  return { metadata, entries };
}

/** Resolves a shard name from an index and refuses names that escape the checkpoint folder. */
function shardPath(indexPath: string, dir: string, shard: string, tensor: string): string {
  if (shard === '' || nodePath.isAbsolute(shard)) {
    throw fail(
      indexPath,
      `weight_map names shard ${JSON.stringify(shard)}; expected a file name in ${dir}`,
      tensor,
    );
  }
  const full = nodePath.resolve(dir, shard);
  const rel = nodePath.relative(nodePath.resolve(dir), full);
  if (rel === '' || rel.startsWith('..') || nodePath.isAbsolute(rel)) {
    throw fail(
      indexPath,
      `weight_map shard ${JSON.stringify(shard)} is outside the checkpoint folder`,
      tensor,
    );
  }
  return full;
}

/**
 * A checkpoint: one model.safetensors, or model.safetensors.index.json + shards, or any *.safetensors in
 * a folder. Every file is opened (header only) and cross-checked up front.
 */
export class SafetensorsCheckpoint {
  /** The folder (or file) the checkpoint was opened from. */
  readonly path: string;
  private readonly files: SafetensorsFile[];
  private readonly where: Map<string, SafetensorsFile>;

  private constructor(path: string, files: SafetensorsFile[], where: Map<string, SafetensorsFile>) {
    this.path = path;
    this.files = files;
    this.where = where;
  }

  /**
   * Opens `dir`: uses model.safetensors.index.json (or the only *.safetensors.index.json) if present,
   * else model.safetensors, else every *.safetensors file. A path to a .safetensors or index .json file
   * is also accepted. Index entries must name existing shards that hold the tensor; a tensor name
   * appearing in more than one file is an error.
   */
  static open(dir: string): SafetensorsCheckpoint {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(dir);
    } catch (err) {
      throw fail(dir, `cannot open checkpoint: ${errnoMessage(err)}`);
    }
    if (stat.isFile()) {
      if (dir.endsWith('.json')) return SafetensorsCheckpoint.fromIndex(dir, dir);
      return SafetensorsCheckpoint.fromFiles(dir, [dir]);
    }
    let listing: string[];
    try {
      listing = fs.readdirSync(dir).sort();
    } catch (err) {
      throw fail(dir, `cannot list checkpoint folder: ${errnoMessage(err)}`);
    }
    const isFile = (f: string): boolean => {
      try {
        return fs.statSync(nodePath.join(dir, f)).isFile();
      } catch {
        return false;
      }
    };
    const indexes = listing.filter((f) => f.endsWith('.safetensors.index.json') && isFile(f));
    if (indexes.includes('model.safetensors.index.json')) {
      return SafetensorsCheckpoint.fromIndex(dir, nodePath.join(dir, 'model.safetensors.index.json'));
    }
    if (indexes.length === 1) return SafetensorsCheckpoint.fromIndex(dir, nodePath.join(dir, indexes[0]!));
    if (indexes.length > 1) {
      throw fail(dir, `several index files (${indexes.join(', ')}); expected model.safetensors.index.json`);
    }
    if (listing.includes('model.safetensors') && isFile('model.safetensors')) {
      return SafetensorsCheckpoint.fromFiles(dir, [nodePath.join(dir, 'model.safetensors')]);
    }
    const shards = listing.filter((f) => f.endsWith('.safetensors') && isFile(f));
    if (shards.length === 0) {
      throw fail(dir, 'no model.safetensors, *.safetensors.index.json or *.safetensors files in this folder');
    }
    return SafetensorsCheckpoint.fromFiles(
      dir,
      shards.map((f) => nodePath.join(dir, f)),
    );
  }

  /** Tensor names across all files, sorted. */
  names(): string[] {
    return [...this.where.keys()].sort();
  }

  /** Whether any file holds tensor `name`. */
  has(name: string): boolean {
    return this.where.has(name);
  }

  /** Location, dtype and shape of tensor `name` (with the shard path in `file`); throws if absent. */
  info(name: string): TensorInfo {
    return this.file(name).info(name);
  }

  /** Reads tensor `name` as Float32Array; see {@link SafetensorsFile.readFloat32}. */
  readFloat32(name: string): Float32Array {
    return this.file(name).readFloat32(name);
  }

  /** Reads tensor `name` as Int32Array; see {@link SafetensorsFile.readInt32}. */
  readInt32(name: string): Int32Array {
    return this.file(name).readInt32(name);
  }

  /** Closes every shard. */
  close(): void {
    for (const f of this.files) f.close();
  }

  private static fromFiles(dir: string, paths: string[]): SafetensorsCheckpoint {
    const files: SafetensorsFile[] = [];
    const where = new Map<string, SafetensorsFile>();
    try {
      for (const p of paths) {
        const f = SafetensorsFile.open(p);
        files.push(f);
        for (const name of f.names()) {
          const other = where.get(name);
          if (other !== undefined) {
            throw fail(
              dir,
              `appears in both ${other.path} and ${f.path}; expected each tensor in one file`,
              name,
            );
          }
          where.set(name, f);
        }
      }
    } catch (err) {
      closeAll(files);
      throw err;
    }
    return new SafetensorsCheckpoint(dir, files, where);
  }

  private static fromIndex(dir: string, indexPath: string): SafetensorsCheckpoint {
    const folder = nodePath.dirname(indexPath);
    let text: string;
    try {
      text = fs.readFileSync(indexPath, 'utf8');
    } catch (err) {
      throw fail(indexPath, `cannot read index: ${errnoMessage(err)}`);
    }
    let index: unknown;
    try {
      index = JSON.parse(text);
    } catch (err) {
      throw fail(indexPath, `index is not valid JSON (${errnoMessage(err)})`);
    }
    if (!isPlainObject(index) || !isPlainObject(index['weight_map'])) {
      throw fail(indexPath, 'expected a JSON object with a "weight_map" object of tensor name -> shard file');
    }
    const weightMap = index['weight_map'];
    const byShard = new Map<string, string[]>();
    for (const [name, shard] of Object.entries(weightMap)) {
      if (typeof shard !== 'string') {
        throw fail(indexPath, `weight_map value is ${describe(shard)}; expected a shard file name`, name);
      }
      const full = shardPath(indexPath, folder, shard, name);
      let list = byShard.get(full);
      if (list === undefined) byShard.set(full, (list = []));
      list.push(name);
    }
    if (byShard.size === 0) throw fail(indexPath, 'weight_map is empty; expected at least one tensor');

    const opened = new Map<string, SafetensorsFile>();
    try {
      for (const [full, names] of byShard) {
        if (!fs.existsSync(full)) {
          throw fail(indexPath, `weight_map names shard ${full}, which does not exist`, names[0]);
        }
        opened.set(full, SafetensorsFile.open(full));
      }
      const where = new Map<string, SafetensorsFile>();
      const seen = new Map<string, SafetensorsFile>();
      for (const f of opened.values()) {
        for (const name of f.names()) {
          const other = seen.get(name);
          if (other !== undefined) {
            throw fail(
              indexPath,
              `appears in both ${other.path} and ${f.path}; expected each tensor in one shard`,
              name,
            );
          }
          seen.set(name, f);
          if (!Object.prototype.hasOwnProperty.call(weightMap, name)) {
            throw fail(indexPath, `is in shard ${f.path} but weight_map does not list it`, name);
          }
        }
      }
      for (const [full, names] of byShard) {
        const f = opened.get(full)!;
        for (const name of names) {
          if (!f.has(name)) {
            throw fail(indexPath, `weight_map says shard ${full} holds it, but that shard does not`, name);
          }
          where.set(name, f);
        }
      }
      return new SafetensorsCheckpoint(dir, [...opened.values()], where);
    } catch (err) {
      closeAll(opened.values());
      throw err;
    }
  }

  private file(name: string): SafetensorsFile {
    const f = this.where.get(name);
    if (f === undefined) {
      throw fail(this.path, `no such tensor in checkpoint (it has ${this.where.size} tensors)`, name);
    }
    return f;
  }
}

function closeAll(files: Iterable<SafetensorsFile>): void {
  for (const f of files) f.close();
}

// ---------------------------------------------------------------------------------------------------------
// Half-precision conversions

let f16Table: Float32Array | null = null;

function buildF16Table(): Float32Array {
  const table = new Float32Array(65536);
  const bits = new Uint32Array(table.buffer);
  for (let h = 0; h < 65536; h++) {
    const sign = (h & 0x8000) << 16;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) {
      table[h] = (sign ? -1 : 1) * mant * 2 ** -24; // zero or subnormal: exact in float32
    } else if (exp === 31) {
      bits[h] = (sign | 0x7f800000 | (mant << 13)) >>> 0; // Inf or NaN (payload kept)
    } else {
      bits[h] = (sign | ((exp + 112) << 23) | (mant << 13)) >>> 0;
    }
  }
  return table;
}

/** Decodes `count` F64/F16/BF16 values at the start of `src` into `out` from element `at` on. */
function decodeInto(
  dtype: SafetensorsDtype,
  src: ArrayBuffer,
  count: number,
  out: Float32Array,
  at: number,
): void {
  if (dtype === 'F64') {
    out.set(new Float64Array(src, 0, count), at);
    return;
  }
  const bits = new Uint16Array(src, 0, count);
  if (dtype === 'F16') {
    const table = (f16Table ??= buildF16Table());
    for (let i = 0; i < count; i++) out[at + i] = table[bits[i]!]!;
    return;
  }
  const dst = new Uint32Array(out.buffer, out.byteOffset + 4 * at, count);
  for (let i = 0; i < count; i++) dst[i] = bits[i]! << 16;
}

/** Decodes IEEE 754 binary16 bit patterns to float32 (exact; NaN payloads kept). */
export function float16ToFloat32(bits: Uint16Array): Float32Array {
  const table = (f16Table ??= buildF16Table());
  const out = new Float32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = table[bits[i]!]!;
  return out;
}

/** Decodes bfloat16 bit patterns to float32 (exact). */
export function bfloat16ToFloat32(bits: Uint16Array): Float32Array {
  const out = new Uint32Array(bits.length);
  for (let i = 0; i < bits.length; i++) out[i] = bits[i]! << 16;
  return new Float32Array(out.buffer);
}

/** Encodes float32 values as binary16 with round-to-nearest-even; overflow gives ±Inf, NaN stays NaN. */
export function float32ToFloat16(x: Float32Array): Uint16Array {
  const src = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < src.length; i++) {
    const f = src[i]!;
    const sign = (f >>> 16) & 0x8000;
    const exp = (f >>> 23) & 0xff;
    const mant = f & 0x7fffff;
    let h: number;
    if (exp === 0xff) {
      h = mant === 0 ? 0x7c00 : 0x7e00 | (mant >>> 13); // Inf, or quiet NaN keeping the high payload bits
    } else if (exp >= 143) {
      h = 0x7c00; // |x| >= 65536: overflow
    } else if (exp >= 113) {
      // Normal half (before rounding): a mantissa carry correctly bumps the exponent, up to Inf.
      h = ((exp - 112) << 10) | (mant >>> 13);
      const rest = mant & 0x1fff;
      if (rest > 0x1000 || (rest === 0x1000 && (h & 1) === 1)) h++;
    } else if (exp >= 101) {
      // Subnormal half: value = full * 2^(exp-150), half units are 2^-24, so shift right by 126-exp.
      const full = 0x800000 | mant;
      const shift = 126 - exp; // 14..25
      h = full >>> shift;
      const rest = full & ((1 << shift) - 1);
      const halfway = 1 << (shift - 1);
      if (rest > halfway || (rest === halfway && (h & 1) === 1)) h++;
    } else {
      h = 0; // below half of the smallest subnormal: rounds to zero
    }
    out[i] = sign | h;
  }
  return out;
}

/** Encodes float32 values as bfloat16 with round-to-nearest-even; NaN stays NaN. */
export function float32ToBfloat16(x: Float32Array): Uint16Array {
  const src = new Uint32Array(x.buffer, x.byteOffset, x.length);
  const out = new Uint16Array(x.length);
  for (let i = 0; i < src.length; i++) {
    const f = src[i]!;
    if ((f & 0x7fffffff) > 0x7f800000) {
      out[i] = (f >>> 16) | 0x0040; // NaN: force quiet so truncation cannot turn it into Inf
    } else {
      out[i] = (f + 0x7fff + ((f >>> 16) & 1)) >>> 16;
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Writing

interface PlannedTensor {
  name: string;
  tensor: TensorToWrite;
  elements: number;
  start: number;
  end: number;
}

const WRITE_DTYPES: ReadonlySet<string> = new Set(['F32', 'F16', 'BF16', 'I32', 'I64']);

function planTensor(path: string, name: string, t: TensorToWrite): Omit<PlannedTensor, 'start' | 'end'> {
  if (name === METADATA_KEY) throw fail(path, `"${METADATA_KEY}" is reserved and cannot name a tensor`, name);
  if (!isPlainObject(t)) throw fail(path, `expected { dtype, shape, data }, got ${describe(t)}`, name);
  if (!WRITE_DTYPES.has(t.dtype)) {
    throw fail(
      path,
      `cannot write dtype ${describe(t.dtype)}; expected one of F32, F16, BF16, I32, I64`,
      name,
    );
  }
  if (!Array.isArray(t.shape) || !t.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw fail(path, `shape ${describe(t.shape)} is not an array of non-negative integers`, name);
  }
  let elements = 1;
  for (const d of t.shape) elements *= d;
  if (!Number.isSafeInteger(elements)) throw fail(path, `shape [${t.shape.join(', ')}] is too large`, name);
  const d = t.data;
  const ok =
    t.dtype === 'I64'
      ? d instanceof BigInt64Array || d instanceof Int32Array
      : t.dtype === 'I32'
        ? d instanceof Int32Array
        : d instanceof Float32Array;
  if (!ok) {
    const want =
      t.dtype === 'I64' ? 'BigInt64Array or Int32Array' : t.dtype === 'I32' ? 'Int32Array' : 'Float32Array';
    const got = (d as object | null)?.constructor?.name ?? describe(d);
    throw fail(path, `${t.dtype} data must be a ${want}, got ${got}`, name);
  }
  return { name, tensor: t, elements };
}

function encodeTensor(path: string, p: PlannedTensor): Uint8Array {
  const { tensor: t, name, elements } = p;
  if (t.data.length !== elements) {
    throw fail(
      path,
      `shape [${t.shape.join(', ')}] has ${elements} elements but data has ${t.data.length}`,
      name,
    );
  }
  let out: ArrayBufferView;
  switch (t.dtype) {
    case 'F16':
      out = float32ToFloat16(t.data as Float32Array);
      break;
    case 'BF16':
      out = float32ToBfloat16(t.data as Float32Array);
      break;
    case 'I64':
      out =
        t.data instanceof BigInt64Array ? t.data : BigInt64Array.from(t.data as Int32Array, (v) => BigInt(v));
      break;
    default:
      out = t.data;
  }
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

/**
 * Writes a safetensors file atomically: to `${path}.tmp-<pid>-<random>`, then fs.renameSync; on any
 * error the temp file is removed and an existing file at `path` is left untouched. Tensors are laid out
 * in sorted name order and the header is padded with spaces to a multiple of 8. F16/BF16 are converted
 * from Float32Array with round-to-nearest-even. Throws {@link SafetensorsError}.
 */
export function writeSafetensors(
  path: string,
  tensors: Record<string, TensorToWrite>,
  metadata?: Record<string, string>,
): void {
  if (!isPlainObject(tensors)) throw fail(path, `tensors must be an object of name -> tensor`);
  if (metadata !== undefined) {
    if (!isPlainObject(metadata)) throw fail(path, `metadata must be an object of strings`);
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string')
        throw fail(path, `metadata key ${JSON.stringify(k)} is ${describe(v)}; expected a string`);
    }
  }
  const names = Object.keys(tensors).sort();
  const plan: PlannedTensor[] = [];
  let offset = 0;
  for (const name of names) {
    const p = planTensor(path, name, tensors[name]!);
    const size = p.elements * DTYPE_SIZE[p.tensor.dtype];
    if (!Number.isSafeInteger(offset + size)) throw fail(path, 'total tensor size is too large', name);
    plan.push({ ...p, start: offset, end: offset + size });
    offset += size;
  }

  const parts: string[] = [];
  if (metadata !== undefined && Object.keys(metadata).length > 0) {
    parts.push(`${JSON.stringify(METADATA_KEY)}:${JSON.stringify(metadata)}`);
  }
  for (const p of plan) {
    const entry = { dtype: p.tensor.dtype, shape: p.tensor.shape, data_offsets: [p.start, p.end] };
    parts.push(`${JSON.stringify(p.name)}:${JSON.stringify(entry)}`);
  }
  let header = `{${parts.join(',')}}`;
  let headerBytes = Buffer.from(header, 'utf8');
  const padded = Math.ceil(headerBytes.length / 8) * 8;
  if (padded !== headerBytes.length) {
    header += ' '.repeat(padded - headerBytes.length);
    headerBytes = Buffer.from(header, 'utf8');
  }
  if (headerBytes.length > MAX_HEADER_BYTES) {
    throw fail(path, `header would be ${headerBytes.length} bytes, over the ${MAX_HEADER_BYTES}-byte limit`);
  }
  const lenField = Buffer.alloc(8);
  lenField.writeBigUInt64LE(BigInt(headerBytes.length));

  const tmp = tempSibling(path);
  let fd: number | null = null;
  try {
    try {
      fd = fs.openSync(tmp, 'wx');
      writeAll(fd, lenField);
      writeAll(fd, headerBytes);
    } catch (err) {
      throw fail(path, `cannot write: ${errnoMessage(err)}`);
    }
    for (const p of plan) {
      const bytes = encodeTensor(path, p);
      try {
        writeAll(fd, bytes);
      } catch (err) {
        throw fail(path, `cannot write: ${errnoMessage(err)}`, p.name);
      }
    }
    try {
      fs.fsyncSync(fd);
      fs.closeSync(fd);
      fd = null;
      fs.renameSync(tmp, path);
    } catch (err) {
      throw fail(path, `cannot write: ${errnoMessage(err)}`);
    }
  } catch (err) {
    if (fd !== null) {
      try {
        fs.closeSync(fd);
      } catch {
        // already failing; the original error is the useful one
      }
    }
    try {
      fs.unlinkSync(tmp);
    } catch {
      // never created, or already gone
    }
    throw err;
  }
}
