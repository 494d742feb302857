import crypto from 'node:crypto';
import fs from 'node:fs';
import { SondeError } from '../errors.js';
import type { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import type { Tokenizer } from '../io/tokenizer.js';
import { tempSibling } from '../io/leftovers.js';

/** A corpus or token file that cannot be used. */
export class DatasetError extends SondeError {}

interface TokenFileMeta {
  format: 'sonde-tokens';
  dtype: 'uint16' | 'int32';
  count: number;
  vocabSize: number;
  source: string;
  sourceSha256: string;
  tokenizer: string;
}

/**
 * Tokenizes a text file once into a flat binary token file (`out`, uint16 when the vocabulary fits,
 * else int32) with a JSON sidecar (`out.json`). Documents are separated by blank lines and each starts
 * with BOS when the tokenizer prepends it. Reuses an existing token file made from the same text.
 */
export function tokenizeFile(textPath: string, tokenizer: Tokenizer, out: string): TokenDataset {
  let text: string;
  try {
    text = fs.readFileSync(textPath, 'utf8');
  } catch (e) {
    throw new DatasetError(
      `cannot read corpus '${textPath}': ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`,
    );
  }
  const sha = crypto.createHash('sha256').update(text).digest('hex');
  const metaPath = `${out}.json`;
  if (fs.existsSync(out) && fs.existsSync(metaPath)) {
    const meta = JSON.parse(fs.readFileSync(metaPath, 'utf8')) as TokenFileMeta;
    if (meta.sourceSha256 === sha && meta.tokenizer === tokenizer.kind) return TokenDataset.open(out);
  }
  const docs = text.split(/\n\s*\n/).filter((d) => d.trim().length > 0);
  if (docs.length === 0) throw new DatasetError(`corpus '${textPath}' has no text`);
  const ids: number[] = [];
  for (const d of docs) for (const id of tokenizer.encode(d.trim())) ids.push(id);
  const dtype = tokenizer.vocabSize <= 65536 ? 'uint16' : 'int32';
  const data = dtype === 'uint16' ? Uint16Array.from(ids) : Int32Array.from(ids);
  const meta: TokenFileMeta = {
    format: 'sonde-tokens',
    dtype,
    count: ids.length,
    vocabSize: tokenizer.vocabSize,
    source: textPath,
    sourceSha256: sha,
    tokenizer: tokenizer.kind,
  };
  writeAtomic(out, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
  writeAtomic(metaPath, new TextEncoder().encode(JSON.stringify(meta, null, 2)));
  return TokenDataset.open(out);
}

function writeAtomic(file: string, bytes: Uint8Array): void {
  const tmp = tempSibling(file);
  try {
    fs.writeFileSync(tmp, bytes);
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });
    throw e;
  }
}

/** A token file read window by window (never loaded whole). */
export class TokenDataset {
  private constructor(
    readonly path: string,
    private readonly fd: number,
    readonly meta: TokenFileMeta,
  ) {}

  static open(file: string): TokenDataset {
    let meta: TokenFileMeta;
    try {
      meta = JSON.parse(fs.readFileSync(`${file}.json`, 'utf8')) as TokenFileMeta;
    } catch {
      throw new DatasetError(
        `token file '${file}' has no readable '${file}.json' (make it with tokenizeFile)`,
      );
    }
    const width = meta.dtype === 'uint16' ? 2 : 4;
    const size = fs.statSync(file).size;
    if (meta.format !== 'sonde-tokens' || size !== meta.count * width) {
      throw new DatasetError(
        `token file '${file}' is ${size} bytes, its metadata says ${meta.count} ${meta.dtype} tokens`,
      );
    }
    return new TokenDataset(file, fs.openSync(file, 'r'), meta);
  }

  get length(): number {
    return this.meta.count;
  }

  /** Tokens [start, start + len). */
  window(start: number, len: number): Int32Array {
    if (start < 0 || start + len > this.length)
      throw new DatasetError(`window ${start}+${len} is outside ${this.length} tokens`);
    const width = this.meta.dtype === 'uint16' ? 2 : 4;
    const buf = Buffer.alloc(len * width);
    fs.readSync(this.fd, buf, 0, buf.length, start * width);
    const aligned = new Uint8Array(buf).buffer;
    return this.meta.dtype === 'uint16' ? Int32Array.from(new Uint16Array(aligned)) : new Int32Array(aligned);
  }

  /**
   * `batch` random windows of `ctx` tokens from [from, to) (a split), as int64 [batch, ctx].
   * Deterministic given the generator's state.
   */
  sampleBatch(
    rng: Rng,
    batch: number,
    ctx: number,
    split: { from: number; to: number } = { from: 0, to: this.length },
  ): Tensor {
    const span = split.to - split.from - ctx;
    if (span <= 0)
      throw new DatasetError(`split of ${split.to - split.from} tokens is too short for windows of ${ctx}`);
    const out = new BigInt64Array(batch * ctx);
    for (let b = 0; b < batch; b++) {
      const w = this.window(split.from + rng.int(span + 1), ctx);
      for (let i = 0; i < ctx; i++) out[b * ctx + i] = BigInt(w[i]!);
    }
    return new Tensor(out, [batch, ctx]);
  }

  /** Train / eval split: the last `evalFraction` of the tokens are held out. */
  splits(evalFraction = 0.05): { train: { from: number; to: number }; eval: { from: number; to: number } } {
    const cut = Math.floor(this.length * (1 - evalFraction));
    return { train: { from: 0, to: cut }, eval: { from: cut, to: this.length } };
  }

  close(): void {
    fs.closeSync(this.fd);
  }
}
