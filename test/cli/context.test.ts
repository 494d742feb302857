// Input past the model's context: refused in one line, or cut by --truncate with a note on stderr.
// stories260K (the default model) is rotary with n_ctx 512; before, 2,801 tokens ran with exit 0 and no
// word, and 10,501 tokens killed the process (exit 128, no message).
import { describe, expect, it } from 'vitest';
import { sonde } from '../helpers/cli.js';

const ids = (n: number) =>
  Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 2 + ((i * 37) % 500))).join(',');

describe('input longer than the context', () => {
  it('is refused in one line naming --truncate', async () => {
    for (const n of [2801, 10501]) {
      const r = await sonde('run', '--tokens', ids(n));
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        `sonde: the input has ${n} tokens, more than the model's context of 512: shorten it, or pass ` +
          '--truncate to keep its last 512 tokens (--truncate first keeps the first 512)\n',
      );
    }
  });

  it('--truncate keeps BOS and the last tokens, --truncate first the first, and says so', async () => {
    const last = await sonde('--json', 'run', '--tokens', ids(2801), '--truncate', '--top-k', '1');
    expect(last.code).toBe(0);
    const doc = JSON.parse(last.stdout) as { tokens: number[] };
    const all = ids(2801).split(',').map(Number);
    expect(doc.tokens).toEqual([1, ...all.slice(2801 - 511)]);
    expect(last.stderr).toBe(''); // --json: no notes

    const first = await sonde('run', '--tokens', ids(2801), '--truncate', 'first', '--top-k', '1');
    expect(first.code).toBe(0);
    expect(first.stderr).toBe(
      "note: the input has 2801 tokens, more than the model's context of 512; --truncate kept the first 512 " +
        '(dropped 2289 from the end)\n',
    );
    const bad = await sonde('run', '--tokens', ids(10), '--truncate', 'middle');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("argument 'middle' is invalid. expected 'last' or 'first', got 'middle'");
  });

  it('generate --truncate leaves room for the tokens it generates', async () => {
    const r = await sonde(
      'generate',
      '--tokens',
      ids(600),
      '--truncate',
      '--max-tokens',
      '8',
      '--temperature',
      '0',
    );
    expect(r.code).toBe(0);
    expect(r.stderr).toContain(
      "note: the input has 600 tokens, more than the model's context of 512; --truncate kept the BOS token and " +
        'the last 503 (dropped 96 after BOS)\n',
    );
    expect(r.stderr).toMatch(/\[8 tokens in .*; stopped: max_tokens\]/);
    const refused = await sonde('generate', '--tokens', ids(600), '--max-tokens', '8');
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(
      "sonde: the input has 600 tokens, more than the model's context of 512: shorten it, or pass --truncate " +
        'to keep its last 504 tokens and leave 8 to generate (--truncate first keeps the first 504)\n',
    );
  });
});
