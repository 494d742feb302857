import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfJsTokenizer } from '@huggingface/tokenizers';
import { TokenizerError } from '../../errors.js';
import type { EncodeOptions, Tokenizer } from './types.js';
import {
  byteHex,
  bytesToDisplay,
  idFromConfig,
  isRecord,
  readJson,
  tokenContent,
  unknownTokenString,
} from './util.js';

/** GPT-2's bytes_to_unicode, inverted: byte-level alphabet char -> byte. */
const UNICODE_TO_BYTE: Map<string, number> = (() => {
  const bs: number[] = [];
  for (let b = 33; b <= 126; b++) bs.push(b);
  for (let b = 161; b <= 172; b++) bs.push(b);
  for (let b = 174; b <= 255; b++) bs.push(b);
  const cs = [...bs];
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  return new Map(bs.map((b, i) => [String.fromCodePoint(cs[i]), b]));
})();

const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;
const PROBE_TEXT = 'a';

export interface HfTokenizerOptions {
  kind: 'gpt2-bpe' | 'hf-json';
  /** tokenizer_config.json contents, or {}. */
  tokenizerConfig?: Record<string, unknown>;
  /** config.json contents (bos_token_id, eos_token_id), or {}. */
  modelConfig?: Record<string, unknown>;
  /** Where it came from, for error messages. */
  source?: string;
}

/**
 * A Hugging Face fast tokenizer (tokenizer.json), run by @huggingface/tokenizers. Also used for GPT-2
 * vocab.json + merges.txt folders, which are converted to the equivalent tokenizer.json in memory.
 */
export class HfTokenizer implements Tokenizer {
  readonly kind: 'gpt2-bpe' | 'hf-json';
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  readonly prependBosDefault: boolean;
  /** Whether the tokenizer.json post-processor itself adds BOS (e.g. Llama's TemplateProcessing). */
  readonly postProcessorAddsBos: boolean;

  private readonly hf: HfJsTokenizer;
  private readonly byteLevel: boolean;
  private readonly metaspace: boolean;
  private readonly addedIds: Set<number>;
  private readonly source: string;

  constructor(tokenizerJson: Record<string, unknown>, opts: HfTokenizerOptions) {
    this.kind = opts.kind;
    this.source = opts.source ?? 'tokenizer.json';
    const tc = opts.tokenizerConfig ?? {};
    const mc = opts.modelConfig ?? {};
    const json: Record<string, unknown> = {
      normalizer: null,
      pre_tokenizer: null,
      post_processor: null,
      decoder: null,
      added_tokens: [],
      ...tokenizerJson,
    };
    if (!isRecord(json.model)) throw new TokenizerError(`${this.source} has no "model" object`);
    try {
      this.hf = new HfJsTokenizer(json, tc);
    } catch (e) {
      throw new TokenizerError(`Cannot build a tokenizer from ${this.source}: ${(e as Error).message}`);
    }

    const vocab = this.hf.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    this.addedIds = new Set(this.hf.get_added_tokens_decoder().keys());

    const components = JSON.stringify([json.pre_tokenizer, json.decoder]);
    this.byteLevel = components.includes('"ByteLevel"');
    this.metaspace = components.includes('\u2581');

    const idOf = (x: unknown): number | null => {
      const s = tokenContent(x);
      if (s === null) return null;
      return this.hf.token_to_id(s) ?? null;
    };
    const withSpecial = this.hf.encode(PROBE_TEXT, { add_special_tokens: true }).ids;
    const without = this.hf.encode(PROBE_TEXT, { add_special_tokens: false }).ids;
    const templateFirst =
      withSpecial.length > without.length && withSpecial[0] !== without[0] ? withSpecial[0] : null;

    const endoftext = opts.kind === 'gpt2-bpe' ? (this.hf.token_to_id('<|endoftext|>') ?? null) : null;
    this.bosId = idFromConfig(mc.bos_token_id) ?? idOf(tc.bos_token) ?? templateFirst ?? endoftext;
    this.eosId = idFromConfig(mc.eos_token_id) ?? idOf(tc.eos_token) ?? endoftext;
    this.postProcessorAddsBos = this.bosId !== null && templateFirst === this.bosId;
    // An explicit add_bos_token in tokenizer_config.json wins (transformers rewrites the post-processor to match).
    this.prependBosDefault =
      typeof tc.add_bos_token === 'boolean' ? tc.add_bos_token : this.postProcessorAddsBos;
  }

  /** Reads a tokenizer.json (plus optional tokenizer_config.json / config.json contents). */
  static fromTokenizerJson(
    path: string,
    tokenizerConfig: Record<string, unknown> = {},
    modelConfig: Record<string, unknown> = {},
  ): HfTokenizer {
    const json = readJson(path);
    if (!isRecord(json)) throw new TokenizerError(`${path} is not a JSON object`);
    return new HfTokenizer(json, { kind: 'hf-json', tokenizerConfig, modelConfig, source: path });
  }

  /**
   * GPT-2 style vocab.json + merges.txt, as the tokenizer.json that HF's GPT2TokenizerFast would build: BPE
   * with byte-level pre-tokenizer (no prefix space) and decoder, no normalizer. `<|endoftext|>` and the
   * special tokens named in tokenizer_config.json are registered as special added tokens, so their text
   * encodes to their id, as with HF's GPT-2 tokenizer.
   */
  static fromVocabMerges(
    dir: string,
    tokenizerConfig: Record<string, unknown> = {},
    modelConfig: Record<string, unknown> = {},
  ): HfTokenizer {
    const vocabPath = join(dir, 'vocab.json');
    const mergesPath = join(dir, 'merges.txt');
    const vocab = readJson(vocabPath);
    if (!isRecord(vocab) || !Object.values(vocab).every((v) => typeof v === 'number')) {
      throw new TokenizerError(`${vocabPath} must map token strings to ids`);
    }
    const vocabMap = vocab as Record<string, number>;
    let mergesText: string;
    try {
      mergesText = readFileSync(mergesPath, 'utf8');
    } catch (e) {
      throw new TokenizerError(`Cannot read ${mergesPath}: ${(e as Error).message}`);
    }
    const merges = parseMerges(mergesText, mergesPath);

    const added = new Map<string, number>();
    const addedTokensPath = join(dir, 'added_tokens.json');
    if (existsSync(addedTokensPath)) {
      const at = readJson(addedTokensPath);
      if (isRecord(at)) for (const [k, v] of Object.entries(at)) if (typeof v === 'number') added.set(k, v);
    }
    const specials = new Set<string>(['<|endoftext|>']);
    for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token']) {
      const s = tokenContent(tokenizerConfig[key]);
      if (s !== null) specials.add(s);
    }
    const addedTokens: Record<string, unknown>[] = [];
    for (const s of specials) {
      const id = Object.hasOwn(vocabMap, s) ? vocabMap[s] : added.get(s);
      if (id !== undefined) addedTokens.push(addedToken(id, s, true));
    }
    for (const [s, id] of added) if (!specials.has(s)) addedTokens.push(addedToken(id, s, false));
    const json = {
      version: '1.0',
      added_tokens: addedTokens,
      normalizer: null,
      pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
      post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
      model: {
        type: 'BPE',
        dropout: null,
        unk_token: null,
        continuing_subword_prefix: '',
        end_of_word_suffix: '',
        fuse_unk: false,
        byte_fallback: false,
        vocab: vocabMap,
        merges,
      },
    };
    return new HfTokenizer(json, {
      kind: 'gpt2-bpe',
      tokenizerConfig,
      modelConfig,
      source: `${vocabPath} + merges.txt`,
    });
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    // Always encode without the post-processor's special tokens, then add BOS ourselves, so that
    // prependBos works both ways whatever the template does. Other template tokens (EOS, [SEP]) are not added.
    const ids = text.length === 0 ? [] : this.hf.encode(text, { add_special_tokens: false }).ids;
    if (opts.prependBos ?? this.prependBosDefault) {
      if (this.bosId === null) throw new TokenizerError(`${this.source}: this tokenizer has no BOS token`);
      ids.unshift(this.bosId);
    }
    return ids;
  }

  /** Whether the tokenizer has this id: a model's padded vocabulary goes past the tokenizer's. */
  private has(id: number): boolean {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize && this.hf.id_to_token(id) !== undefined;
  }

  /**
   * The tokenizers library's decode, without transformers' clean_up_tokenization_spaces (so it inverts
   * encode). BOS/EOS are skipped for tokenizers that add BOS themselves (Llama-style control tokens); for
   * GPT-2-style tokenizers `<|endoftext|>` is text that encode produces, so it is kept. An id the tokenizer
   * lacks becomes `<id N>`, the text around it as the whole known sequence decodes (so a Metaspace
   * decoder does not strip the space after it).
   */
  decode(ids: number[]): string {
    const kept = this.prependBosDefault ? ids.filter((id) => id !== this.bosId && id !== this.eosId) : ids;
    const known: number[] = [];
    let done = ''; // the decode of `known` so far, already in `out`
    let out = '';
    const flush = (): void => {
      const all =
        known.length === 0
          ? ''
          : this.hf.decode(known, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
      out += all.startsWith(done) ? all.slice(done.length) : all;
      done = all;
    };
    for (const id of kept) {
      if (this.has(id)) known.push(id);
      else {
        flush();
        out += unknownTokenString(id);
      }
    }
    flush();
    return out;
  }

  tokenString(id: number): string {
    if (!this.has(id)) return unknownTokenString(id);
    const raw = this.hf.id_to_token(id)!;
    if (this.addedIds.has(id)) return raw;
    if (this.byteLevel) {
      const bytes: number[] = [];
      for (const ch of raw) {
        const b = UNICODE_TO_BYTE.get(ch);
        if (b === undefined) return raw;
        bytes.push(b);
      }
      return bytesToDisplay(Uint8Array.from(bytes));
    }
    const m = BYTE_PIECE.exec(raw);
    if (m) {
      const b = parseInt(m[1], 16);
      return b < 0x80 ? String.fromCharCode(b) : byteHex(b);
    }
    return this.metaspace ? raw.replaceAll('\u2581', ' ') : raw;
  }

  /** The raw vocabulary string of a token (byte-level alphabet, ▁ etc.). */
  rawToken(id: number): string {
    if (!this.has(id)) throw new TokenizerError(`Token id ${id} is not in the vocabulary of ${this.source}`);
    return this.hf.id_to_token(id)!;
  }
}

function addedToken(id: number, content: string, special: boolean): Record<string, unknown> {
  return { id, content, single_word: false, lstrip: false, rstrip: false, normalized: !special, special };
}

/** merges.txt: an optional `#version` first line, then one `left right` pair per line. */
export function parseMerges(text: string, path = 'merges.txt'): [string, string][] {
  const lines = text.split('\n');
  const merges: [string, string][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].replace(/\r$/, '');
    if (i === 0 && line.startsWith('#version')) continue;
    if (line.length === 0) continue;
    const parts = line.split(' ');
    if (parts.length !== 2 || parts[0].length === 0 || parts[1].length === 0) {
      throw new TokenizerError(`Malformed merge on line ${i + 1} of ${path}: ${JSON.stringify(line)}`);
    }
    merges.push([parts[0], parts[1]]);
  }
  return merges;
}
