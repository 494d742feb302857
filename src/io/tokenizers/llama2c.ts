import { readFileSync } from 'node:fs';
import { TokenizerError } from '../../errors.js';
import type { EncodeOptions, Tokenizer } from './types.js';
import { bytesToDisplay, unknownTokenString } from './util.js';

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
/** run.c starts its best-score search at -1e10, so a merge scoring at or below it never applies. */
const MIN_SCORE = -1e10;

export interface Llama2cOptions {
  /** At most this many entries are read (config vocab_size); default: read to the end of the file. */
  vocabSize?: number;
  bosId?: number | null;
  eosId?: number | null;
}

interface Candidate {
  score: number;
  left: number;
  right: number;
  leftVersion: number;
  rightVersion: number;
  merged: number;
}

/** Max-heap on score; ties go to the leftmost pair, as run.c's linear scan with a strict `>` does. */
function better(a: Candidate, b: Candidate): boolean {
  return a.score > b.score || (a.score === b.score && a.left < b.left);
}

class CandidateHeap {
  private items: Candidate[] = [];
  get size(): number {
    return this.items.length;
  }
  push(c: Candidate): void {
    const h = this.items;
    h.push(c);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!better(h[i], h[p])) break;
      [h[i], h[p]] = [h[p], h[i]];
      i = p;
    }
  }
  pop(): Candidate {
    const h = this.items;
    const top = h[0];
    const last = h.pop()!;
    if (h.length > 0) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < h.length && better(h[l], h[m])) m = l;
        if (r < h.length && better(h[r], h[m])) m = r;
        if (m === i) break;
        [h[i], h[m]] = [h[m], h[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * The llama2.c tokenizer (tokenizer.bin / tok512.bin): sentencepiece BPE pieces with scores, encoded with
 * the semantics of llama2.c's run.c `encode` and decoded like its `decode`.
 */
export class Llama2cTokenizer implements Tokenizer {
  readonly kind = 'llama2c' as const;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly prependBosDefault = true;
  readonly maxTokenLength: number;

  /** Piece bytes, as a latin1 string (one char per byte) so lookups are byte-exact like run.c's strcmp. */
  private readonly keys: string[];
  private readonly pieces: Uint8Array[];
  private readonly scores: Float32Array;
  private readonly lookup = new Map<string, number>();
  private readonly byteIds: number[] = [];
  /** Byte value for `<0xXX>` pieces, -1 otherwise. */
  private readonly rawByte: Int16Array;
  private readonly mergeCache = new Map<number, number>();
  private readonly dummyPrefix: number | undefined;

  constructor(
    pieces: Uint8Array[],
    scores: ArrayLike<number>,
    maxTokenLength: number,
    opts: { bosId?: number | null; eosId?: number | null } = {},
  ) {
    if (pieces.length !== scores.length)
      throw new TokenizerError('llama2.c tokenizer: pieces/scores mismatch');
    this.vocabSize = pieces.length;
    this.pieces = pieces;
    this.scores = Float32Array.from(scores);
    this.maxTokenLength = maxTokenLength;
    this.keys = pieces.map((p) => Buffer.from(p).toString('latin1'));
    this.rawByte = new Int16Array(pieces.length).fill(-1);
    for (let id = 0; id < this.keys.length; id++) {
      // First occurrence wins for duplicate pieces (sentencepiece vocabularies have none).
      if (!this.lookup.has(this.keys[id])) this.lookup.set(this.keys[id], id);
      const m = BYTE_PIECE.exec(this.keys[id]);
      if (m) this.rawByte[id] = parseInt(m[1], 16);
    }
    for (let b = 0; b < 256; b++) {
      // run.c hard-codes byte + 3; use the actual `<0xXX>` piece when the vocab has it.
      const hex = b.toString(16).toUpperCase().padStart(2, '0');
      this.byteIds.push(this.lookup.get(`<0x${hex}>`) ?? b + 3);
    }
    this.dummyPrefix = this.lookup.get(' ');
    const clamp = (id: number | null | undefined, dflt: number): number | null => {
      const v = id === undefined ? dflt : id;
      return v !== null && v >= 0 && v < this.vocabSize ? v : null;
    };
    this.bosId = clamp(opts.bosId, 1);
    this.eosId = clamp(opts.eosId, 2);
  }

  /** Parses tokenizer.bin: int32 max_token_length, then per entry float32 score, int32 len, len bytes. */
  static fromFile(path: string, opts: Llama2cOptions = {}): Llama2cTokenizer {
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new TokenizerError(`Cannot read llama2.c tokenizer ${path}: ${(e as Error).message}`);
    }
    const bad = (what: string) => new TokenizerError(`Malformed llama2.c tokenizer ${path}: ${what}`);
    if (buf.length < 4) throw bad('file shorter than its 4-byte header');
    const maxTokenLength = buf.readInt32LE(0);
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let off = 4;
    // A config vocab_size past the file's last whole entry is a padded embedding, not a truncated file.
    while (off < buf.length && (opts.vocabSize === undefined || pieces.length < opts.vocabSize)) {
      if (off + 8 > buf.length) {
        throw bad(`entry ${pieces.length} truncated (expected ${opts.vocabSize ?? '?'} entries)`);
      }
      const score = buf.readFloatLE(off);
      const len = buf.readInt32LE(off + 4);
      off += 8;
      if (len < 0 || off + len > buf.length) throw bad(`entry ${pieces.length} has bad length ${len}`);
      pieces.push(new Uint8Array(buf.subarray(off, off + len)));
      scores.push(score);
      off += len;
    }
    if (pieces.length === 0) throw bad('no entries');
    return new Llama2cTokenizer(pieces, scores, maxTokenLength, opts);
  }

  private id(key: string): number | undefined {
    return this.lookup.get(key);
  }

  private mergeOf(a: number, b: number): number {
    const k = a * this.vocabSize + b;
    let m = this.mergeCache.get(k);
    if (m === undefined) {
      m = this.id(this.keys[a] + this.keys[b]) ?? -1;
      this.mergeCache.set(k, m);
    }
    return m;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const out: number[] = [];
    if (opts.prependBos ?? this.prependBosDefault) {
      if (this.bosId === null) throw new TokenizerError('This llama2.c tokenizer has no BOS token');
      out.push(this.bosId);
    }
    if (text.length === 0) return out;

    const tokens: number[] = [];
    // run.c: a dummy-prefix " " token for non-empty text (sentencepiece add_dummy_prefix).
    if (this.dummyPrefix !== undefined) tokens.push(this.dummyPrefix);
    const bytes = Buffer.from(text, 'utf8');
    for (let i = 0; i < bytes.length;) {
      const b = bytes[i];
      const len = b < 0x80 ? 1 : b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : 2;
      const id = this.id(bytes.toString('latin1', i, i + len));
      if (id !== undefined) tokens.push(id);
      else for (let j = i; j < i + len; j++) tokens.push(this.byteIds[bytes[j]]);
      i += len;
    }

    // Greedy merges, best score first, leftmost on ties: run.c's O(n^2) loop done with a heap over a linked list.
    const n = tokens.length;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const version = new Int32Array(n);
    const alive = new Uint8Array(n).fill(1);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new CandidateHeap();
    const consider = (left: number) => {
      const right = next[left];
      if (left < 0 || right < 0) return;
      const merged = this.mergeOf(tokens[left], tokens[right]);
      if (merged < 0) return;
      const score = this.scores[merged];
      if (!(score > MIN_SCORE)) return;
      heap.push({ score, left, right, leftVersion: version[left], rightVersion: version[right], merged });
    };
    for (let i = 0; i + 1 < n; i++) consider(i);
    while (heap.size > 0) {
      const c = heap.pop();
      const { left, right } = c;
      if (!alive[left] || !alive[right] || next[left] !== right) continue;
      if (version[left] !== c.leftVersion || version[right] !== c.rightVersion) continue;
      tokens[left] = c.merged;
      version[left]++;
      alive[right] = 0;
      next[left] = next[right];
      if (next[right] >= 0) prev[next[right]] = left;
      if (prev[left] >= 0) consider(prev[left]);
      consider(left);
    }
    for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) out.push(tokens[i]);
    return out;
  }

  /** Whether the tokenizer has this id: a model's padded vocabulary goes past the tokenizer's. */
  private has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize;
  }

  private checkId(id: number): void {
    if (!this.has(id)) {
      throw new TokenizerError(`Token id ${id} is out of range for a vocabulary of ${this.vocabSize}`);
    }
  }

  /**
   * run.c `decode`, over a whole sequence: `<0xXX>` pieces become raw bytes, and the leading space of the
   * first piece after BOS (or at the start, as sentencepiece does) is stripped. BOS/EOS are skipped; an
   * id the tokenizer lacks becomes `<id N>`.
   */
  decode(ids: number[]): string {
    const bytes: number[] = [];
    let atStart = true;
    for (const id of ids) {
      if (!this.has(id)) {
        bytes.push(...new TextEncoder().encode(unknownTokenString(id)));
        atStart = false;
        continue;
      }
      if (id === this.bosId) {
        atStart = true;
        continue;
      }
      if (id === this.eosId) continue;
      const raw = this.rawByte[id];
      if (raw >= 0) bytes.push(raw);
      else {
        const piece = this.pieces[id];
        const start = atStart && piece[0] === 0x20 ? 1 : 0;
        for (let i = start; i < piece.length; i++) bytes.push(piece[i]);
      }
      atStart = false;
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(Uint8Array.from(bytes));
  }

  tokenString(id: number): string {
    if (!this.has(id)) return unknownTokenString(id);
    // llama2.c stores BOS/EOS as "\n<s>\n" and "\n</s>\n".
    if (id === this.bosId || id === this.eosId) return this.keys[id].trim();
    const raw = this.rawByte[id];
    if (raw >= 0) return bytesToDisplay(Uint8Array.of(raw));
    return bytesToDisplay(this.pieces[id]);
  }

  /** The raw piece string (byte pieces as `<0xXX>`), for debugging. */
  piece(id: number): string {
    this.checkId(id);
    return bytesToDisplay(this.pieces[id]);
  }

  score(id: number): number {
    this.checkId(id);
    return this.scores[id];
  }
}
