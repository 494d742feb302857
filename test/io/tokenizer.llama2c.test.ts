import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.js';
import { Llama2cTokenizer, loadTokenizer } from '../../src/io/tokenizer.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const modelDir = join(root, 'assets/stories260K');

interface Tok512Json {
  max_token_length: number;
  vocab: { id: number; piece: string; score: number }[];
}
const tok512 = JSON.parse(readFileSync(join(modelDir, 'tok512.json'), 'utf8')) as Tok512Json;
const pieces = tok512.vocab.map((v) => v.piece);
const scores = tok512.vocab.map((v) => v.score);
const idOf = new Map(pieces.map((p, i) => [p, i]));

/** Straightforward O(n^2) transcription of llama2.c run.c `encode`, working from tok512.json. */
function referenceEncode(text: string, bos: boolean): number[] {
  const tokens: number[] = [];
  if (bos) tokens.push(1);
  if (text.length > 0) tokens.push(idOf.get(' ')!);
  for (const ch of text) {
    const id = idOf.get(ch);
    if (id !== undefined) tokens.push(id);
    else for (const b of Buffer.from(ch, 'utf8')) tokens.push(b + 3);
  }
  for (;;) {
    let bestScore = -1e10;
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i + 1 < tokens.length; i++) {
      const id = idOf.get(pieces[tokens[i]] + pieces[tokens[i + 1]]);
      if (id !== undefined && scores[id] > bestScore) {
        bestScore = scores[id];
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx === -1) break;
    tokens.splice(bestIdx, 2, bestId);
  }
  return tokens;
}

const tok = loadTokenizer(modelDir);

const samples = [
  'Once upon a time',
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'Hello, World! "Quotes" and (parens); 3.14 - 42%?',
  'line one\nline two\n\n\ttabbed\r\n',
  'café 😀',
  'naïve façade — “smart quotes” … 日本語 한국어 Ελληνικά',
  '  leading and trailing spaces  ',
  ' ',
  'a',
  '',
];

describe('llama2.c tokenizer (stories260K tok512.bin)', () => {
  it('loads with the expected metadata', () => {
    expect(tok.kind).toBe('llama2c');
    expect(tok.vocabSize).toBe(512);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.prependBosDefault).toBe(true);
    expect((tok as Llama2cTokenizer).maxTokenLength).toBe(tok512.max_token_length);
  });

  it('reads the same pieces and scores as tok512.json', () => {
    const t = tok as Llama2cTokenizer;
    for (let id = 0; id < 512; id++) {
      expect(t.piece(id)).toBe(pieces[id]);
      expect(t.score(id)).toBe(scores[id]);
    }
  });

  it('encodes "Once upon a time" like the brute-force run.c reference', () => {
    const ids = tok.encode('Once upon a time');
    expect(ids).toEqual(referenceEncode('Once upon a time', true));
    expect(ids).toEqual([1, 403, 407, 261, 378]);
    // by hand, against tok512.json
    expect(pieces[403]).toBe(' Once');
    expect(pieces[407]).toBe(' upon');
    expect(pieces[261]).toBe(' a');
    expect(pieces[378]).toBe(' time');
    expect(tok.encode('Once upon a time', { prependBos: false })).toEqual([403, 407, 261, 378]);
  });

  it('matches the reference on varied text, with and without BOS', () => {
    for (const s of samples) {
      expect(tok.encode(s)).toEqual(referenceEncode(s, true));
      expect(tok.encode(s, { prependBos: false })).toEqual(referenceEncode(s, false));
    }
  });

  it('matches the reference on random text (property)', () => {
    const words = fc.constantFrom(
      ' the',
      ' Once',
      'upon',
      ' a',
      ' time',
      'Lily',
      '.',
      ',',
      '\n',
      ' ',
      'ed',
      'ing',
    );
    const piece = fc.oneof(
      words,
      fc.string({ unit: 'grapheme', maxLength: 3 }),
      fc.string({ unit: 'binary', maxLength: 5 }),
    );
    const text = fc.array(piece, { maxLength: 20 }).map((a) => a.join(''));
    fc.assert(
      fc.property(text, (s) => {
        expect(tok.encode(s, { prependBos: false })).toEqual(referenceEncode(s, false));
      }),
      { numRuns: 300 },
    );
  });

  it('round-trips encode -> decode', () => {
    for (const s of samples) {
      expect(tok.decode(tok.encode(s))).toBe(s);
      expect(tok.decode(tok.encode(s, { prependBos: false }))).toBe(s);
    }
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => tok.decode(tok.encode(s)) === s),
      { numRuns: 200 },
    );
  });

  it('handles empty text', () => {
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { prependBos: false })).toEqual([]);
    expect(tok.decode([])).toBe('');
    expect(tok.decode([1])).toBe('');
  });

  it('uses byte fallback for characters not in the vocabulary', () => {
    // "\n" has no piece: byte token <0x0A> = 10 + 3
    expect(pieces[13]).toBe('<0x0A>');
    expect(tok.encode('a\nb', { prependBos: false })).toContain(13);
    // 😀 = F0 9F 98 80
    const ids = tok.encode('😀', { prependBos: false });
    expect(ids.slice(-4)).toEqual([0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
    expect(tok.decode(ids)).toBe('😀');
  });

  it('decodes like run.c: byte pieces become raw bytes, space stripped after BOS, BOS/EOS skipped', () => {
    expect(tok.decode([13])).toBe('\n');
    expect(tok.decode([1, 403])).toBe('Once');
    expect(tok.decode([1, 403, 407, 2])).toBe('Once upon');
    expect(tok.decode([403, 407])).toBe('Once upon'); // leading space of the first piece is the dummy prefix
    expect(tok.decode([407, 1, 403])).toBe('upon' + 'Once');
    // multi-byte character split over byte tokens
    expect(tok.decode([0xc3 + 3, 0xa9 + 3])).toBe('é');
  });

  it('gives display strings', () => {
    expect(tok.tokenString(1)).toBe('<s>');
    expect(tok.tokenString(2)).toBe('</s>');
    expect(tok.tokenString(0)).toBe('<unk>');
    expect(tok.tokenString(13)).toBe('\n');
    expect(tok.tokenString(0x41 + 3)).toBe('A');
    expect(tok.tokenString(0xf0 + 3)).toBe('<0xF0>');
    expect(tok.tokenString(403)).toBe(' Once');
    expect(tok.tokenString(512)).toBe('<id 512>');
    expect(tok.decode([-1])).toBe('<id -1>');
  });

  it('is fast enough on long text', () => {
    const text = 'Once upon a time, there was a little girl named Lily. She loved to play outside. '.repeat(
      500,
    );
    const t0 = performance.now();
    const ids = tok.encode(text);
    expect(performance.now() - t0).toBeLessThan(2000);
    expect(tok.decode(ids)).toBe(text);
  });
});

describe('llama2.c tokenizer loading', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'sonde-tok-'));
  afterAll(() => rmSync(tmp, { recursive: true, force: true }));

  it('reads to EOF without config.json, and finds tokenizer.bin', () => {
    const dir = join(tmp, 'noconfig');
    mkdirSync(dir);
    copyFileSync(join(modelDir, 'tok512.bin'), join(dir, 'tokenizer.bin'));
    const t = loadTokenizer(dir);
    expect(t.kind).toBe('llama2c');
    expect(t.vocabSize).toBe(512);
    expect(t.bosId).toBe(1);
    expect(t.encode('Once upon a time')).toEqual([1, 403, 407, 261, 378]);
  });

  it('takes bos/eos from config.json', () => {
    const dir = join(tmp, 'cfg');
    mkdirSync(dir);
    copyFileSync(join(modelDir, 'tok512.bin'), join(dir, 'tok512.bin'));
    writeFileSync(
      join(dir, 'config.json'),
      JSON.stringify({ vocab_size: 512, bos_token_id: 2, eos_token_id: 1 }),
    );
    const t = loadTokenizer(dir);
    expect(t.bosId).toBe(2);
    expect(t.eosId).toBe(1);
    expect(t.encode('a')[0]).toBe(2);
  });

  it('loads under a padded config vocab_size, showing the padding ids as <id N>', () => {
    const dir = join(tmp, 'padded');
    mkdirSync(dir);
    copyFileSync(join(modelDir, 'tok512.bin'), join(dir, 'tok512.bin'));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocab_size: 520 }));
    const t = loadTokenizer(dir);
    expect(t.vocabSize).toBe(512);
    expect(t.tokenString(515)).toBe('<id 515>');
    expect(t.decode([1, 403, 515, 407])).toBe('Once<id 515> upon');
  });

  it('rejects a truncated file', () => {
    const dir = join(tmp, 'trunc');
    mkdirSync(dir);
    writeFileSync(join(dir, 'tok512.bin'), readFileSync(join(modelDir, 'tok512.bin')).subarray(0, 1000));
    writeFileSync(join(dir, 'config.json'), JSON.stringify({ vocab_size: 512 }));
    expect(() => loadTokenizer(dir)).toThrow(TokenizerError);
    expect(() => loadTokenizer(dir)).toThrow(/tok512\.bin/);
  });
});
