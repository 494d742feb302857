import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TokenizerError } from '../../src/errors.js';
import { loadTokenizer, type Tokenizer } from '../../src/io/tokenizer.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const gpt2Dir = resolve(root, '../shared/models/gpt2-tokenizer');
const haveGpt2 = existsSync(join(gpt2Dir, 'vocab.json')) && existsSync(join(gpt2Dir, 'merges.txt'));
const llamaTiny = join(root, 'test/fixtures/tokenizers/llama-tiny');

const tmp = mkdtempSync(join(tmpdir(), 'sonde-tokjson-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function writeDir(name: string, files: Record<string, unknown>): string {
  const dir = join(tmp, name);
  mkdirSync(dir, { recursive: true });
  for (const [f, content] of Object.entries(files)) writeFileSync(join(dir, f), JSON.stringify(content));
  return dir;
}

/** GPT-2's tokenizer.json, as published on the HF hub, rebuilt from vocab.json + merges.txt. */
function gpt2TokenizerJson(): Record<string, unknown> {
  const vocab = JSON.parse(readFileSync(join(gpt2Dir, 'vocab.json'), 'utf8')) as Record<string, number>;
  const merges = readFileSync(join(gpt2Dir, 'merges.txt'), 'utf8')
    .split('\n')
    .slice(1)
    .filter((l) => l.length > 0)
    .map((l) => l.split(' '));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      {
        id: 50256,
        content: '<|endoftext|>',
        single_word: false,
        lstrip: false,
        rstrip: false,
        normalized: true,
        special: true,
      },
    ],
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
      vocab,
      merges,
    },
  };
}

const SAMPLES = [
  'Hello world',
  ' Hello world',
  'Hello, world!',
  'The quick brown fox jumps over the lazy dog.\n\nNew paragraph.',
  "It's a dog's life; they'll say we've 'quoted' it.",
  'café 😀 👩‍👩‍👧‍👦 日本語',
  '  spaces   everywhere  ',
  'a<|endoftext|>b',
  '',
];

describe.skipIf(!haveGpt2)('tokenizer.json: GPT-2', () => {
  let viaJson: Tokenizer;
  let viaMerges: Tokenizer;
  let json: Record<string, unknown>;
  beforeAll(() => {
    json = gpt2TokenizerJson();
    const dir = writeDir('gpt2-json', {
      'tokenizer.json': json,
      'tokenizer_config.json': { model_max_length: 1024 },
      'config.json': { bos_token_id: 50256, eos_token_id: 50256 },
    });
    viaJson = loadTokenizer(dir);
    viaMerges = loadTokenizer(gpt2Dir);
  });

  it('loads as hf-json with GPT-2 metadata', () => {
    expect(viaJson.kind).toBe('hf-json');
    expect(viaJson.vocabSize).toBe(50257);
    expect(viaJson.bosId).toBe(50256);
    expect(viaJson.eosId).toBe(50256);
    expect(viaJson.prependBosDefault).toBe(false);
  });

  it('gives the same ids, decodes and display strings as the vocab.json + merges.txt path', () => {
    for (const s of SAMPLES) {
      const ids = viaMerges.encode(s);
      expect(viaJson.encode(s)).toEqual(ids);
      expect(viaJson.encode(s, { prependBos: true })).toEqual([50256, ...ids]);
      expect(viaJson.decode(ids)).toBe(s);
      for (const id of ids) expect(viaJson.tokenString(id)).toBe(viaMerges.tokenString(id));
    }
    expect(viaJson.encode('Hello world')).toEqual([15496, 995]);
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme' }), (s) => {
        expect(viaJson.encode(s)).toEqual(viaMerges.encode(s));
      }),
      { numRuns: 100 },
    );
  });

  it('finds BOS from a Llama-3-style Sequence[ByteLevel, TemplateProcessing] post-processor', () => {
    const bot = '<|begin_of_text|>';
    const special = { single_word: false, lstrip: false, rstrip: false, normalized: false, special: true };
    const llama3ish = {
      ...json,
      added_tokens: [...(json.added_tokens as object[]), { id: 50257, content: bot, ...special }],
      post_processor: {
        type: 'Sequence',
        processors: [
          { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
          {
            type: 'TemplateProcessing',
            single: [{ SpecialToken: { id: bot, type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
            pair: [
              { SpecialToken: { id: bot, type_id: 0 } },
              { Sequence: { id: 'A', type_id: 0 } },
              { SpecialToken: { id: bot, type_id: 1 } },
              { Sequence: { id: 'B', type_id: 1 } },
            ],
            special_tokens: { [bot]: { id: bot, ids: [50257], tokens: [bot] } },
          },
        ],
      },
    };
    // No config.json and no bos_token: BOS comes from the template.
    const t = loadTokenizer(writeDir('llama3ish', { 'tokenizer.json': llama3ish }));
    expect(t.vocabSize).toBe(50258);
    expect(t.bosId).toBe(50257);
    expect(t.prependBosDefault).toBe(true);
    expect(t.encode('Hello world')).toEqual([50257, 15496, 995]);
    expect(t.encode('Hello world', { prependBos: false })).toEqual([15496, 995]);
    expect(t.decode([50257, 15496, 995])).toBe('Hello world');
    expect(t.tokenString(50257)).toBe(bot);
  });
});

describe('tokenizer.json: tiny Llama-style fixture', () => {
  let tok: Tokenizer;
  beforeAll(() => {
    tok = loadTokenizer(llamaTiny);
  });

  it('loads with BOS added by default', () => {
    expect(tok.kind).toBe('hf-json');
    expect(tok.vocabSize).toBe(279);
    expect(tok.bosId).toBe(1);
    expect(tok.eosId).toBe(2);
    expect(tok.prependBosDefault).toBe(true);
  });

  it('encodes with the sentencepiece-style normalizer, merges and byte fallback', () => {
    // ▁the ▁cat ▁is ▁ on
    expect(tok.encode('the cat is on')).toEqual([1, 272, 275, 277, 259, 278]);
    // é has no piece: <0xC3> <0xA9>
    expect(tok.encode('café', { prependBos: false })).toEqual([273, 263, 105, 0xc3 + 3, 0xa9 + 3]);
  });

  it('honours prependBos both ways', () => {
    expect(tok.encode('the cat')).toEqual([1, 272, 275]);
    expect(tok.encode('the cat', { prependBos: true })).toEqual([1, 272, 275]);
    expect(tok.encode('the cat', { prependBos: false })).toEqual([272, 275]);
    expect(tok.encode('')).toEqual([1]);
    expect(tok.encode('', { prependBos: false })).toEqual([]);
  });

  it('decodes, skipping BOS/EOS and the dummy-prefix space', () => {
    expect(tok.decode([1, 272, 275, 2])).toBe('the cat');
    expect(tok.decode([272, 275])).toBe('the cat');
    expect(tok.decode([])).toBe('');
    for (const s of ['the cat is on', ' the', 'the  cat\n', 'café 😀', 'zebra. THE END', '']) {
      expect(tok.decode(tok.encode(s))).toBe(s);
    }
  });

  it('gives display strings', () => {
    expect(tok.tokenString(272)).toBe(' the');
    expect(tok.tokenString(259)).toBe(' ');
    expect(tok.tokenString(13)).toBe('\n');
    expect(tok.tokenString(0xc3 + 3)).toBe('<0xC3>');
    expect(tok.tokenString(1)).toBe('<s>');
  });

  // A padded model vocabulary (Pythia 50304 over 50277 tokens) predicts ids the tokenizer lacks.
  it('shows an id past its vocabulary as <id N>, in display strings and in decoded text', () => {
    expect(tok.tokenString(279)).toBe('<id 279>');
    expect(tok.tokenString(1021)).toBe('<id 1021>');
    expect(tok.decode([1, 272, 1021, 275, 2])).toBe('the<id 1021> cat');
    expect(tok.decode([300, 272])).toBe('<id 300>the');
  });

  it('lets tokenizer_config.json add_bos_token: false override the post-processor', () => {
    const dir = join(tmp, 'llama-nobos');
    mkdirSync(dir);
    copyFileSync(join(llamaTiny, 'tokenizer.json'), join(dir, 'tokenizer.json'));
    writeFileSync(
      join(dir, 'tokenizer_config.json'),
      JSON.stringify({ add_bos_token: false, bos_token: '<s>' }),
    );
    const t = loadTokenizer(dir);
    expect(t.prependBosDefault).toBe(false);
    expect(t.bosId).toBe(1);
    expect(t.encode('the cat')).toEqual([272, 275]);
    expect(t.encode('the cat', { prependBos: true })).toEqual([1, 272, 275]);
  });

  it('prepends BOS itself when asked and the post-processor does not add it', () => {
    const json = JSON.parse(readFileSync(join(llamaTiny, 'tokenizer.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const dir = writeDir('llama-nopost', {
      'tokenizer.json': { ...json, post_processor: null },
      'config.json': { bos_token_id: 1, eos_token_id: 2 },
    });
    const t = loadTokenizer(dir);
    expect(t.prependBosDefault).toBe(false);
    expect(t.bosId).toBe(1);
    expect(t.encode('the cat')).toEqual([272, 275]);
    expect(t.encode('the cat', { prependBos: true })).toEqual([1, 272, 275]);
  });

  it('throws when BOS is asked for but the tokenizer has none', () => {
    const json = JSON.parse(readFileSync(join(llamaTiny, 'tokenizer.json'), 'utf8')) as Record<
      string,
      unknown
    >;
    const t = loadTokenizer(
      writeDir('llama-nobos-at-all', { 'tokenizer.json': { ...json, post_processor: null } }),
    );
    expect(t.bosId).toBeNull();
    expect(() => t.encode('the', { prependBos: true })).toThrow(TokenizerError);
  });
});
