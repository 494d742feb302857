// Streaming readers for a matrix of activations [rows, dim] on disk (.npy or .safetensors): each read
// fetches only the byte range of the rows asked for, so a file of any size costs one read's memory.
import fs from 'node:fs';
import { SondeError } from '../errors.js';
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToFloat16,
  SafetensorsFile,
  type TensorInfo,
} from '../io/safetensors.js';
import { tempSibling } from '../io/leftovers.js';

/** An activation file or store that cannot be read or written: missing, malformed, truncated, mismatched. */
export class ActivationDataError extends SondeError {}

export type RowDtype = 'float32' | 'float16' | 'bfloat16';

/** A matrix of activations [rows, dim], read row range by row range. */
export interface RowSource {
  readonly rows: number;
  readonly dim: number;
  /** How the values are stored on disk; reads always return float32. */
  readonly dtype: RowDtype;
  readonly path: string;
  /** Rows [start, start + count) as a row-major Float32Array [count, dim]. */
  read(start: number, count: number): Float32Array;
  close(): void;
}

const ITEM_SIZE: Record<RowDtype, number> = { float32: 4, float16: 2, bfloat16: 2 };
/** readSync takes at most 2^31-1 bytes per call. */
const IO_CHUNK = 1 << 30;

function errno(e: unknown): string {
  return (e as NodeJS.ErrnoException).code ?? (e instanceof Error ? e.message : String(e));
}

/** Byte-range reader shared by both formats. */
class FileRows implements RowSource {
  private fd: number | null;

  constructor(
    readonly path: string,
    fd: number,
    readonly rows: number,
    readonly dim: number,
    readonly dtype: RowDtype,
    /** Absolute offset of row 0. */
    private readonly dataOffset: number,
  ) {
    this.fd = fd;
  }

  read(start: number, count: number): Float32Array {
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(count) || start < 0 || count < 0) {
      throw new ActivationDataError(
        `${this.path}: read(${start}, ${count}) needs a non-negative integer start and count`,
      );
    }
    if (start + count > this.rows) {
      throw new ActivationDataError(
        `${this.path}: rows [${start}, ${start + count}) are out of range (the file has ${this.rows} rows)`,
      );
    }
    if (this.fd === null) throw new ActivationDataError(`${this.path}: read after close()`);
    const item = ITEM_SIZE[this.dtype];
    const bytes = new Uint8Array(count * this.dim * item);
    const position = this.dataOffset + start * this.dim * item;
    let done = 0;
    while (done < bytes.length) {
      let got: number;
      try {
        got = fs.readSync(this.fd, bytes, done, Math.min(bytes.length - done, IO_CHUNK), position + done);
      } catch (e) {
        throw new ActivationDataError(`${this.path}: cannot read rows: ${errno(e)}`);
      }
      if (got === 0) {
        throw new ActivationDataError(
          `${this.path}: unexpected end of file at byte ${position + done} (was it truncated after opening?)`,
        );
      }
      done += got;
    }
    switch (this.dtype) {
      case 'float32':
        return new Float32Array(bytes.buffer);
      case 'float16':
        return float16ToFloat32(new Uint16Array(bytes.buffer));
      default:
        return bfloat16ToFloat32(new Uint16Array(bytes.buffer));
    }
  }

  close(): void {
    if (this.fd !== null) fs.closeSync(this.fd);
    this.fd = null;
  }
}

/**
 * Opens `file` (.npy, or .safetensors with one 2-D tensor or one named `activations`) for row reads.
 * Only the header is read here. Throws ActivationDataError on a missing, malformed or truncated file.
 */
export function openRowSource(file: string): RowSource {
  if (file.endsWith('.npy')) return openNpy(file);
  if (file.endsWith('.safetensors')) return openSafetensors(file);
  throw new ActivationDataError(`${file}: unknown activation file type (expected .npy or .safetensors)`);
}

// ---------------------------------------------------------------------------------------------------------
// .npy

const NPY_MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

function openFd(file: string): number {
  try {
    const st = fs.statSync(file);
    if (!st.isFile()) throw new ActivationDataError(`${file}: not a regular file`);
    return fs.openSync(file, 'r');
  } catch (e) {
    if (e instanceof ActivationDataError) throw e;
    throw new ActivationDataError(`cannot open activation file '${file}': ${errno(e)}`);
  }
}

function readAt(fd: number, file: string, length: number, position: number): Uint8Array {
  const buf = new Uint8Array(length);
  const got = fs.readSync(fd, buf, 0, length, position);
  if (got !== length) throw new ActivationDataError(`${file}: file ends inside the header (truncated?)`);
  return buf;
}

function openNpy(file: string): RowSource {
  const fd = openFd(file);
  try {
    const size = fs.fstatSync(fd).size;
    if (size < 10) throw new ActivationDataError(`${file}: ${size} bytes is too short for a .npy file`);
    const pre = readAt(fd, file, 12 <= size ? 12 : 10, 0);
    if (!NPY_MAGIC.every((b, i) => pre[i] === b)) {
      throw new ActivationDataError(`${file}: not a .npy file (bad magic; expected \\x93NUMPY)`);
    }
    const major = pre[6]!;
    if (major < 1 || major > 3) {
      throw new ActivationDataError(`${file}: unsupported .npy format version ${major}.${pre[7]}`);
    }
    const view = new DataView(pre.buffer);
    const headerLen = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
    const headerStart = major === 1 ? 10 : 12;
    const dataOffset = headerStart + headerLen;
    if (dataOffset > size) {
      throw new ActivationDataError(
        `${file}: header claims ${headerLen} bytes but the file has ${size - headerStart} after the prelude ` +
          '(truncated?)',
      );
    }
    const headerText = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(
      readAt(fd, file, headerLen, headerStart),
    );
    const header = parseNpyHeader(file, headerText);
    const rows = header.shape[0]!;
    const dim = header.shape[1]!;
    const needed = rows * dim * ITEM_SIZE[header.dtype];
    if (dataOffset + needed > size) {
      throw new ActivationDataError(
        `${file}: shape (${rows}, ${dim}) of ${header.dtype} needs ${needed} data bytes but the file has ` +
          `${size - dataOffset} (truncated)`,
      );
    }
    if (dataOffset + needed < size) {
      throw new ActivationDataError(
        `${file}: ${size - dataOffset - needed} bytes after the (${rows}, ${dim}) ${header.dtype} data; ` +
          'expected the file to end there',
      );
    }
    return new FileRows(file, fd, rows, dim, header.dtype, dataOffset);
  } catch (e) {
    fs.closeSync(fd);
    throw e;
  }
}

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** Parses the Python dict literal of a .npy header: strings, ints, True/False/None, tuples, lists. */
function parsePyLiteral(file: string, text: string): PyValue {
  let i = 0;
  const bad = (what: string): never => {
    throw new ActivationDataError(`${file}: malformed .npy header (${what} at ${i}): ${text.trim()}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i]!)) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === '{' || c === '(' || c === '[') {
      const close = c === '{' ? '}' : c === '(' ? ')' : ']';
      i++;
      const items: PyValue[] = [];
      const dict: Record<string, PyValue> = {};
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          break;
        }
        const v = value();
        if (c === '{') {
          ws();
          if (text[i] !== ':') bad("expected ':'");
          i++;
          if (typeof v !== 'string') bad('non-string key');
          dict[v as string] = value();
        } else items.push(v);
        ws();
        if (text[i] === ',') i++;
        else if (text[i] !== close) bad(`expected ',' or '${close}'`);
      }
      return c === '{' ? dict : items;
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) bad('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const m = /^(-?\d+|True|False|None)/.exec(text.slice(i));
    if (!m) return bad('unexpected token');
    i += m[0].length;
    if (m[0] === 'True') return true;
    if (m[0] === 'False') return false;
    if (m[0] === 'None') return null;
    return Number(m[0]);
  };
  const v = value();
  ws();
  if (i !== text.length) bad('trailing text');
  return v;
}

function parseNpyHeader(file: string, text: string): { dtype: RowDtype; shape: number[] } {
  const h = parsePyLiteral(file, text);
  if (h === null || typeof h !== 'object' || Array.isArray(h)) {
    throw new ActivationDataError(`${file}: .npy header is not a dict: ${text.trim()}`);
  }
  const descr = h['descr'];
  if (descr === '<f4' || descr === '<f2') {
    // supported
  } else {
    const hint =
      typeof descr === 'string' && descr.startsWith('>')
        ? ' (big-endian data: convert with arr.astype("<f4"))'
        : ' (convert with arr.astype(np.float32))';
    throw new ActivationDataError(
      `${file}: unsupported dtype ${JSON.stringify(descr)}; expected little-endian '<f4' or '<f2'${hint}`,
    );
  }
  if (h['fortran_order'] !== false) {
    throw new ActivationDataError(
      `${file}: fortran_order is ${JSON.stringify(h['fortran_order'])}; only C-order arrays are supported ` +
        '(save np.ascontiguousarray(arr))',
    );
  }
  const shape = h['shape'];
  if (
    !Array.isArray(shape) ||
    !shape.every((d) => typeof d === 'number' && Number.isSafeInteger(d) && d >= 0)
  )
    throw new ActivationDataError(`${file}: .npy shape ${JSON.stringify(shape)} is not a tuple of sizes`);
  if (shape.length !== 2) {
    throw new ActivationDataError(
      `${file}: activations must be 2-D [rows, d_in], got shape (${(shape as number[]).join(', ')})`,
    );
  }
  return { dtype: descr === '<f4' ? 'float32' : 'float16', shape: shape as number[] };
}

/**
 * Writes a [rows, dim] matrix as .npy (format 1.0, or 2.0 if the header needs it) atomically: to a temp
 * file, then renamed over `path`. float16 is rounded to nearest even.
 */
export function writeNpy(
  path: string,
  data: Float32Array,
  rows: number,
  dim: number,
  dtype: 'float32' | 'float16' = 'float32',
): void {
  if (!Number.isSafeInteger(rows) || !Number.isSafeInteger(dim) || rows < 0 || dim < 0) {
    throw new ActivationDataError(`${path}: rows and dim must be non-negative integers, got ${rows}, ${dim}`);
  }
  if (data.length !== rows * dim) {
    throw new ActivationDataError(
      `${path}: data has ${data.length} values, [${rows}, ${dim}] needs ${rows * dim}`,
    );
  }
  if (dtype !== 'float32' && dtype !== 'float16') {
    throw new ActivationDataError(`${path}: cannot write dtype ${JSON.stringify(dtype)} to .npy`);
  }
  const dict = `{'descr': '${dtype === 'float32' ? '<f4' : '<f2'}', 'fortran_order': False, 'shape': (${rows}, ${dim}), }`;
  // NumPy pads the header with spaces and a final newline so the data starts at a multiple of 64.
  let major = 1;
  let prelude = 10;
  let padded = Math.ceil((prelude + dict.length + 1) / 64) * 64 - prelude;
  if (padded > 0xffff) {
    major = 2;
    prelude = 12;
    padded = Math.ceil((prelude + dict.length + 1) / 64) * 64 - prelude;
  }
  const header = new Uint8Array(prelude + padded);
  header.set(NPY_MAGIC, 0);
  header[6] = major;
  header[7] = 0;
  const dv = new DataView(header.buffer);
  if (major === 1) dv.setUint16(8, padded, true);
  else dv.setUint32(8, padded, true);
  const text = dict + ' '.repeat(padded - dict.length - 1) + '\n';
  for (let i = 0; i < text.length; i++) header[prelude + i] = text.charCodeAt(i);

  const tmp = tempSibling(path);
  let fd: number | null = null;
  try {
    fd = fs.openSync(tmp, 'wx');
    writeAll(fd, header);
    const step = 1 << 20; // values per write, so float16 conversion holds at most 2 MiB extra
    for (let at = 0; at < data.length; at += step) {
      const part = data.subarray(at, Math.min(data.length, at + step));
      const enc = dtype === 'float32' ? part : float32ToFloat16(part);
      writeAll(fd, new Uint8Array(enc.buffer, enc.byteOffset, enc.byteLength));
    }
    fs.fsyncSync(fd);
    fs.closeSync(fd);
    fd = null;
    fs.renameSync(tmp, path);
  } catch (e) {
    if (fd !== null) fs.closeSync(fd);
    fs.rmSync(tmp, { force: true });
    if (e instanceof SondeError) throw e;
    throw new ActivationDataError(`cannot write '${path}': ${errno(e)}`);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, IO_CHUNK));
}

// ---------------------------------------------------------------------------------------------------------
// .safetensors

const SAFETENSORS_DTYPES: Record<string, RowDtype> = { F32: 'float32', F16: 'float16', BF16: 'bfloat16' };

function openSafetensors(file: string): RowSource {
  if (!fs.existsSync(file)) throw new ActivationDataError(`cannot open activation file '${file}': ENOENT`);
  let st: SafetensorsFile;
  try {
    st = SafetensorsFile.open(file); // validates the header and that every span lies inside the file
  } catch (e) {
    throw new ActivationDataError((e as Error).message);
  }
  let info: TensorInfo;
  try {
    const names = st.names();
    if (names.length === 1) info = st.info(names[0]!);
    else if (st.has('activations')) info = st.info('activations');
    else {
      throw new ActivationDataError(
        `${file}: ${names.length === 0 ? 'no tensors' : `several tensors (${names.join(', ')})`}; ` +
          "expected one 2-D tensor, or one named 'activations'",
      );
    }
  } finally {
    st.close();
  }
  const dtype = SAFETENSORS_DTYPES[info.dtype];
  if (dtype === undefined) {
    throw new ActivationDataError(
      `${file}: tensor '${info.name}' has dtype ${info.dtype}; expected F32, F16 or BF16`,
    );
  }
  if (info.shape.length !== 2) {
    throw new ActivationDataError(
      `${file}: tensor '${info.name}' must be 2-D [rows, d_in], got shape [${info.shape.join(', ')}]`,
    );
  }
  return new FileRows(file, openFd(file), info.shape[0]!, info.shape[1]!, dtype, info.byteOffset);
}
