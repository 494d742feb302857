// Input past the model's context: refused in one line, or cut by --truncate with a note on stderr.
// stories260K (the default model) is rotary with n_ctx 512; before, 2,801 tokens ran with exit 0 and no
// word, and 10,501 tokens killed the process (exit 128, no message).
import '../../src/engine/node.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { collectActivations, readLabelledJsonl, saveProbe, trainProbe } from '../../src/methods/probes.js';
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

// The commands that take prompts or texts other than --prompt/--tokens (steer, monitor, patch, attribute,
// compare) fit each one by the same rule (cli/common.ts fitText), naming the text that is too long.
/** A probe file (girl/boy at blocks.2, read at the last token) for sonde monitor. */
async function probeFile(model: HookedTransformer, dir: string): Promise<string> {
  const { texts, labels } = readLabelledJsonl('examples/gender-probe.jsonl');
  const hook = 'blocks.2.hook_resid_post';
  const p = trainProbe(await collectActivations(model, texts, hook), labels, { seed: 0 });
  const file = path.join(dir, 'probe.json');
  saveProbe(file, { ...p, hook, position: 'last', labels: ['girl', 'boy'] });
  return file;
}

describe('prompts past the context in steer, monitor, patch, attribute and compare', () => {
  const line = 'Once upon a time there was a girl named Lily. ';
  const clean = line.repeat(60);
  const corrupt = line.repeat(59) + 'Once upon a time there was a girl named Tim. ';
  const pair = ['--clean', clean, '--corrupt', corrupt, '--answer', 'Lily', '--wrong', 'Tim'];
  const steer = ['--positive', 'examples/boy-prompts.txt', '--negative', 'examples/girl-prompts.txt'];
  const refusal = (what: string, n: number, keep = 512, room = 0) =>
    `sonde: ${what} has ${n} tokens, more than the model's context of 512: shorten it, or pass --truncate to ` +
    `keep its last ${keep} tokens${room ? ` and leave ${room} to generate` : ''} (--truncate first keeps the first ${keep})\n`;

  it('are refused in one line naming the text and --truncate', async () => {
    const model = await HookedTransformer.load(path.resolve('assets/stories260K'));
    const n = model.encode(clean).length;
    expect(n).toBeGreaterThan(512);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-context-'));
    const paragraphs = path.join(dir, 'paragraphs.txt');
    fs.writeFileSync(paragraphs, `A short one.\n\n${clean}\n`);
    const probe = await probeFile(model, dir);
    const [patch, attribute, steered, compare, monitor] = await Promise.all([
      sonde('patch', ...pair),
      sonde('attribute', ...pair),
      sonde('steer', '--prompt', clean, ...steer, '--hook', 'blocks.3.hook_resid_post', '--max-tokens', '4'),
      sonde('compare', '--data', paragraphs),
      sonde('monitor', '--probe', probe, '--data', paragraphs),
    ]);
    expect([patch.code, patch.stdout, patch.stderr]).toEqual([1, '', refusal('--clean', n)]);
    expect([attribute.code, attribute.stderr]).toEqual([1, refusal('--clean', n)]);
    expect([steered.code, steered.stderr]).toEqual([1, refusal('--prompt', n, 508, 4)]);
    const p2 = model.encode(clean.trim()).length;
    expect([compare.code, compare.stderr]).toEqual([1, refusal(`paragraph 2 of --data '${paragraphs}'`, p2)]);
    // monitor --data reads one text per line, untrimmed (the blank line is skipped).
    expect([monitor.code, monitor.stderr]).toEqual([1, refusal(`text 2 of --data '${paragraphs}'`, n)]);
    fs.rmSync(dir, { recursive: true });
  });

  it('run with --truncate: BOS and the last tokens of each prompt, with a note', async () => {
    const model = await HookedTransformer.load(path.resolve('assets/stories260K'));
    const ids = model.encode(clean);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-context-'));
    const probe = await probeFile(model, dir);
    const [attribute, steered, monitor] = await Promise.all([
      sonde('--json', 'attribute', ...pair, '--truncate'),
      sonde(
        'steer',
        '--prompt',
        clean,
        ...steer,
        '--hook',
        'blocks.3.hook_resid_post',
        '--max-tokens',
        '4',
        '--truncate',
      ),
      sonde('--json', 'monitor', '--probe', probe, '--prompt', clean, '--generate', '3', '--truncate'),
    ]);
    expect(attribute.code).toBe(0);
    const doc = JSON.parse(attribute.stdout) as { cleanTokens: number[]; corruptTokens: number[] };
    expect(doc.cleanTokens).toEqual([ids[0], ...ids.slice(ids.length - 511)]);
    expect(doc.corruptTokens).toEqual([ids[0], ...model.encode(corrupt).slice(ids.length - 511)]);
    expect(steered.code).toBe(0);
    expect(steered.stderr).toBe(
      `note: --prompt has ${ids.length} tokens, more than the model's context of 512; --truncate kept the BOS ` +
        `token and the last 507 (dropped ${ids.length - 508} after BOS)\n`,
    );
    expect(steered.stdout).toMatch(/^Steering at blocks\.3\.hook_resid_post/);
    // 512 - 3 prompt tokens kept; every position but the last sampled one is read.
    expect(monitor.code).toBe(0);
    const scan = JSON.parse(monitor.stdout) as { scores: (number | null)[][] };
    expect(scan.scores[0]).toHaveLength(509 + 3 - 1);
    fs.rmSync(dir, { recursive: true });
  });
});
