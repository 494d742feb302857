import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.js';
import { loadTokenizer, parseMerges, type Tokenizer } from '../../src/io/tokenizer.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** GPT-2 vocab.json + merges.txt live outside the repo (shared/models); skip when absent. */
const gpt2Dir = resolve(root, '../shared/models/gpt2-tokenizer');
const haveGpt2 = existsSync(join(gpt2Dir, 'vocab.json')) && existsSync(join(gpt2Dir, 'merges.txt'));

// Published GPT-2 encodings (tiktoken / HF GPT2TokenizerFast).
const KNOWN: [string, number[]][] = [
  ['Hello world', [15496, 995]],
  [' Hello world', [18435, 995]],
  ['Hello, world!', [15496, 11, 995, 0]],
  ['\n\n', [628]],
  [' the', [262]],
  ['The', [464]],
  ['<|endoftext|>', [50256]],
];

const SAMPLES = [
  'Hello world',
  'The quick brown fox jumps over the lazy dog.',
  "It's a dog's life; they'll say we've 'quoted' it.",
  'line one\nline two\n\n\ttabbed\r\n   indented',
  'café 😀 👩‍👩‍👧‍👦 naïve 日本語 한국어 Ελληνικά',
  '  leading and trailing spaces  ',
  '12345 3.14159 -42',
  'a<|endoftext|>b',
  '',
];

describe.skipIf(!haveGpt2)('GPT-2 byte-level BPE (vocab.json + merges.txt)', () => {
  let tok: Tokenizer;
  beforeAll(() => {
    tok = loadTokenizer(gpt2Dir);
  });

  it('loads with the expected metadata', () => {
    expect(tok.kind).toBe('gpt2-bpe');
    expect(tok.vocabSize).toBe(50257);
    expect(tok.bosId).toBe(50256);
    expect(tok.eosId).toBe(50256);
    expect(tok.prependBosDefault).toBe(false);
  });

  it('gives the published GPT-2 ids', () => {
    for (const [text, ids] of KNOWN) expect(tok.encode(text)).toEqual(ids);
  });

  it('encodes <|endoftext|> in text as the registered special token, as HF GPT-2 does', () => {
    expect(tok.encode('a<|endoftext|>b')).toEqual([64, 50256, 65]);
    expect(tok.decode([64, 50256, 65])).toBe('a<|endoftext|>b');
  });

  it('honours prependBos', () => {
    expect(tok.encode('Hello world', { prependBos: true })).toEqual([50256, 15496, 995]);
    expect(tok.encode('Hello world', { prependBos: false })).toEqual([15496, 995]);
    expect(tok.encode('', { prependBos: true })).toEqual([50256]);
    expect(tok.encode('')).toEqual([]);
  });

  it('round-trips varied text', () => {
    for (const s of SAMPLES) expect(tok.decode(tok.encode(s))).toBe(s);
    expect(tok.decode([])).toBe('');
  });

  it('round-trips arbitrary unicode (property)', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => tok.decode(tok.encode(s)) === s),
      { numRuns: 200 },
    );
    fc.assert(
      fc.property(fc.string({ unit: 'binary' }), (s) => tok.decode(tok.encode(s)) === s),
      { numRuns: 200 },
    );
  });

  it('gives display strings', () => {
    expect(tok.tokenString(262)).toBe(' the');
    expect(tok.tokenString(628)).toBe('\n\n');
    expect(tok.tokenString(198)).toBe('\n');
    expect(tok.tokenString(50256)).toBe('<|endoftext|>');
    // a lone continuation byte is not a character: shown as a byte
    const ids = tok.encode('😀');
    expect(ids.map((id) => tok.tokenString(id)).join('')).toMatch(/<0x/);
    expect(tok.tokenString(50257)).toBe('<id 50257>'); // past the vocabulary: a placeholder, never a throw
  });
});

describe('parseMerges', () => {
  it('skips the #version header and blank lines', () => {
    expect(parseMerges('#version: 0.2\nĠ t\nh e\n\n')).toEqual([
      ['Ġ', 't'],
      ['h', 'e'],
    ]);
  });
  it('rejects malformed lines', () => {
    expect(() => parseMerges('a b c\n')).toThrow(TokenizerError);
  });
});

describe('loadTokenizer errors', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sonde-tok-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('names the folder and the files looked for', () => {
    const dir = join(tmp, 'empty');
    mkdirSync(dir);
    expect(() => loadTokenizer(dir)).toThrow(TokenizerError);
    try {
      loadTokenizer(dir);
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toContain(dir);
      for (const f of ['tokenizer.json', 'vocab.json', 'merges.txt', 'tok512.bin', 'tokenizer.bin']) {
        expect(msg).toContain(f);
      }
    }
  });

  it('rejects a missing folder', () => {
    expect(() => loadTokenizer(join(tmp, 'nope'))).toThrow(/nope.*does not exist/);
  });

  it('says when merges.txt is missing', () => {
    const dir = join(tmp, 'vocabonly');
    mkdirSync(dir);
    writeFileSync(join(dir, 'vocab.json'), '{"a": 0}');
    expect(() => loadTokenizer(dir)).toThrow(/without merges\.txt/);
  });

  it('rejects malformed JSON, naming the file', () => {
    const dir = join(tmp, 'badjson');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tokenizer.json'), '{not json');
    expect(() => loadTokenizer(dir)).toThrow(TokenizerError);
    expect(() => loadTokenizer(dir)).toThrow(/tokenizer\.json/);
  });

  it.skipIf(!haveGpt2)('prefers tokenizer.json over vocab.json + merges.txt', () => {
    const dir = join(tmp, 'both');
    mkdirSync(dir);
    writeFileSync(join(dir, 'vocab.json'), readFileSync(join(gpt2Dir, 'vocab.json')));
    writeFileSync(join(dir, 'merges.txt'), readFileSync(join(gpt2Dir, 'merges.txt')));
    expect(loadTokenizer(dir).kind).toBe('gpt2-bpe');
    writeFileSync(
      join(dir, 'tokenizer.json'),
      readFileSync(join(root, 'test/fixtures/tokenizers/llama-tiny/tokenizer.json')),
    );
    expect(loadTokenizer(dir).kind).toBe('hf-json');
  });
});
