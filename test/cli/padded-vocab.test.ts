// Padded vocabularies (Pythia 50304 over a 50277-token tokenizer, Qwen 151936 over 151665): the model
// predicts ids the tokenizer lacks. Every command that shows tokens runs on the padded fixtures
// (scripts/reference/make_padded_vocab_fixtures.py: vocab_size 96 over a 75-token tokenizer).
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT, sonde } from '../helpers/cli.js';

const TOKENIZER_SIZE = 75;
const FIXTURES = ['pythia-padded-tiny', 'qwen3-padded-tiny'].map((n) => path.join(ROOT, 'test/fixtures', n));

interface Tok {
  id: number;
  token: string;
}

/** The shown string of each padding id is its placeholder; returns how many padding ids were seen. */
function checkPlaceholders(toks: Tok[]): number {
  let padded = 0;
  for (const t of toks) {
    if (t.id < TOKENIZER_SIZE) expect(t.token).not.toMatch(/^<id \d+>$/);
    else {
      expect(t.token).toBe(`<id ${t.id}>`);
      padded++;
    }
  }
  return padded;
}

function ok(r: { code: number; stderr: string }): void {
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
}

describe.each(FIXTURES)('padded vocabulary: %s', (model) => {
  const cli = (...args: string[]) => sonde('--model', model, '-q', ...args);

  it('run: top-k predictions in the padding show as <id N> (table) and keep their id (JSON)', async () => {
    const [table, json] = await Promise.all([
      cli('run', '--prompt', 'the cat', '--top-k', '10'),
      cli('run', '--prompt', 'the cat', '--top-k', '10', '--json'),
    ]);
    ok(table);
    ok(json);
    const r = JSON.parse(json.stdout) as { predictions: Tok[][] };
    const padded = r.predictions.flat().filter((p) => p.id >= TOKENIZER_SIZE);
    expect(padded.length).toBeGreaterThan(0);
    expect(checkPlaceholders(r.predictions.flat())).toBe(padded.length);
    expect(table.stdout).toContain(`"<id ${padded[0]!.id}>"`);
  });

  it('generate: a sampled padding id is <id N> in the text and the strings', async () => {
    const r = await cli('generate', '--prompt', 'the', '--max-tokens', '24', '--seed', '1', '--json');
    ok(r);
    const g = JSON.parse(r.stdout) as { text: string; generated: number[]; generatedStrings: string[] };
    const padded = g.generated.filter((id) => id >= TOKENIZER_SIZE);
    expect(padded.length).toBeGreaterThan(0);
    g.generated.forEach((id, i) => {
      if (id >= TOKENIZER_SIZE) expect(g.generatedStrings[i]).toBe(`<id ${id}>`);
    });
    expect(g.text).toBe('the' + g.generatedStrings.join(''));
  });

  it('lens and dla name padding ids by placeholder', async () => {
    const [lens, dla, dlaTable] = await Promise.all([
      cli('lens', '--prompt', 'the cat', '--top-k', '10', '--json'),
      cli('dla', '--prompt', 'the cat', '--answer-id', '90', '--wrong-id', '80', '--json'),
      cli('dla', '--prompt', 'the cat', '--answer-id', '90', '--wrong-id', '80'),
    ]);
    ok(lens);
    ok(dla);
    ok(dlaTable);
    const l = JSON.parse(lens.stdout) as { top: Tok[][][] };
    expect(checkPlaceholders(l.top.flat(2))).toBeGreaterThan(0);
    const d = JSON.parse(dla.stdout) as { answer: Tok; wrong: Tok };
    expect(d.answer).toEqual({ id: 90, token: '<id 90>' });
    expect(d.wrong).toEqual({ id: 80, token: '<id 80>' });
    expect(dlaTable.stdout).toContain('<id 90>');
  });

  it('demo, patch and attribute run', async () => {
    const pair = ['--clean', 'the cat', '--corrupt', 'the hat', '--answer', 'a', '--wrong', 'b'];
    const rs = await Promise.all([cli('demo'), cli('patch', ...pair), cli('attribute', ...pair)]);
    for (const r of rs) ok(r);
  });
});
