// End-to-end tests of the `sonde` CLI: each test spawns `node --import tsx src/cli/index.ts ...`.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRY = path.join(ROOT, 'src/cli/index.ts');
const GPT2_TINY = path.join(ROOT, 'test/fixtures/gpt2-tiny');

const PUBLISHED_SAMPLE =
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park. One day, ' +
  'she saw a big, red ball. She wanted to play with it, but it was too high.';

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function sonde(...args: string[]): Promise<Result> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', ENTRY, ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, timeout: 120_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolve({ code, stdout, stderr, ms: performance.now() - t0 });
      },
    );
  });
}

/** A failure: exit 1, nothing on stdout, one line on stderr starting "sonde: ", no stack trace. */
function expectOneLineError(r: Result): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(/^sonde: \S/);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  return lines[0]!;
}

// Each spawn pays for starting Node, tsx and onnxruntime: run them side by side.
describe.concurrent('sonde CLI', () => {
  it('generate --max-tokens 64 --temperature 0 prints the published sample', async () => {
    const r = await sonde('generate', '--max-tokens', '64', '--temperature', '0');
    expect(r.code).toBe(0);
    expect(r.stdout.startsWith(PUBLISHED_SAMPLE)).toBe(true);
  });

  it('generate --json is one document that agrees with the streamed text', async () => {
    const args = ['generate', '--prompt', 'Once upon a time', '--max-tokens', '20', '--temperature', '0.9'];
    const [human, json] = await Promise.all([
      sonde(...args, '--seed', '5'),
      sonde(...args, '--seed', '5', '--json'),
    ]);
    expect(json.code).toBe(0);
    const doc = JSON.parse(json.stdout);
    expect(doc.text.startsWith('Once upon a time')).toBe(true);
    expect(doc.generated).toHaveLength(20);
    expect(doc.tokens).toEqual([...doc.promptTokens, ...doc.generated]);
    expect(doc.tokens[0]).toBe(1);
    expect(human.stdout).toBe(doc.text + '\n');
  });

  it('run --json: tokens from BOS, top-k arrays and a finite loss', async () => {
    const r = await sonde('run', '--prompt', 'Once upon a time', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.tokens[0]).toBe(1);
    expect(doc.strings).toHaveLength(doc.tokens.length);
    expect(typeof doc.loss).toBe('number');
    expect(Number.isFinite(doc.loss) && doc.loss > 0).toBe(true);
    expect(doc.predictions).toHaveLength(doc.tokens.length);
    for (const preds of doc.predictions) {
      expect(preds).toHaveLength(5);
      for (const p of preds) expect(Object.keys(p).sort()).toEqual(['id', 'logit', 'prob', 'token']);
      expect(preds[0].prob).toBeGreaterThanOrEqual(preds[4].prob);
    }
    expect(doc.predictions[3][0].token).toBe(' time'); // "Once upon a" → " time"
    expect(doc.losses.at(-1)).toBeNull();
  });

  it('run: --no-prepend-bos, --top-k and a single token (loss null)', async () => {
    const [noBos, one] = await Promise.all([
      sonde('run', '--prompt', 'Once upon a time', '--no-prepend-bos', '--top-k', '2', '--json'),
      sonde('run', '--tokens', '1', '--json'),
    ]);
    const doc = JSON.parse(noBos.stdout);
    expect(doc.tokens[0]).not.toBe(1);
    expect(doc.predictions[0]).toHaveLength(2);
    expect(JSON.parse(one.stdout).loss).toBeNull();
  });

  it('run prints a table', async () => {
    const r = await sonde('run', '--prompt', 'Once upon a time');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/loss \d/);
    expect(r.stdout).toContain('" time"');
  });

  it('cache --hook blocks.0.hook_resid_pre --json: shape [1, n, 64] and statistics', async () => {
    const r = await sonde('cache', '--hook', 'blocks.0.hook_resid_pre', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    const [h] = doc.hooks;
    expect(h.name).toBe('blocks.0.hook_resid_pre');
    expect(h.shape).toEqual([1, doc.tokens.length, 64]);
    expect(h.dtype).toBe('float32');
    expect(h.norms).toHaveLength(doc.tokens.length);
    for (const k of ['mean', 'std', 'min', 'max', 'absMax']) expect(Number.isFinite(h[k])).toBe(true);
    expect(h.values).toBeUndefined();
  });

  it('cache: repeated --hook and --values', async () => {
    const r = await sonde(
      'cache',
      '--prompt',
      'Hi',
      '--hook',
      'blocks.1.attn.hook_pattern',
      '--hook',
      'ln_final.hook_scale',
      '--values',
      '--json',
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    const n = doc.tokens.length;
    expect(doc.hooks.map((h: { name: string }) => h.name)).toEqual([
      'blocks.1.attn.hook_pattern',
      'ln_final.hook_scale',
    ]);
    expect(doc.hooks[0].shape).toEqual([1, 8, n, n]);
    expect(doc.hooks[0].values[0]).toHaveLength(8);
    expect(doc.hooks[1].values).toHaveLength(1);
    expect(doc.hooks[1].values[0]).toHaveLength(n);
  });

  it('info --json', async () => {
    const r = await sonde('info', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.nLayers).toBe(5);
    expect(doc.dModel).toBe(64);
    expect(doc.params).toBeGreaterThan(250_000);
    expect(doc.tokenizer.kind).toBe('llama2c');
    expect(doc.hookPoints).toBeGreaterThan(100);
  });

  it('hooks --json, --filter and --shapes', async () => {
    const [all, some] = await Promise.all([
      sonde('hooks', '--json'),
      sonde('hooks', '--filter', 'blocks.4.attn.hook_', '--shapes', '--json'),
    ]);
    const names = JSON.parse(all.stdout);
    expect(names).toContain('blocks.4.attn.hook_pattern');
    expect(names[0]).toBe('hook_embed');
    const shapes = JSON.parse(some.stdout);
    const pattern = shapes.find((s: { name: string }) => s.name === 'blocks.4.attn.hook_pattern');
    expect(pattern.shape).toEqual(['batch', 8, 'pos', 'pos']);
    expect(shapes.find((s: { name: string }) => s.name === 'blocks.4.attn.hook_q').shape).toEqual([
      'batch',
      'pos',
      8,
      8,
    ]);
  });

  // Its speed is measured by hand (about 6 s); here, under the full suite's load, only that it ends.
  it('demo runs the tour and exits 0', async () => {
    const r = await sonde('demo');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Once upon a time, there was a little girl named Lily.');
    expect(r.stdout).toContain('blocks.2.hook_resid_post');
    expect(r.stdout).toContain('" Lily"');
  });

  it('demo --json', async () => {
    const r = await sonde('demo', '--json');
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.model.nLayers).toBe(5);
    expect(doc.predictions.top).toHaveLength(5);
    expect(doc.activation.shape[2]).toBe(64);
  });

  it('--tokens runs a model without a tokenizer; --prompt there is a clear error', async () => {
    const [ok, bad] = await Promise.all([
      sonde('--model', GPT2_TINY, 'run', '--tokens', '1,2,3', '--json'),
      sonde('--model', GPT2_TINY, 'run', '--prompt', 'hello'),
    ]);
    expect(ok.code).toBe(0);
    const doc = JSON.parse(ok.stdout);
    expect(doc.tokens).toEqual([1, 2, 3]);
    expect(doc.predictions).toHaveLength(3);
    expect(Number.isFinite(doc.loss)).toBe(true);
    expect(expectOneLineError(bad)).toMatch(/no tokenizer.*--tokens/);
  });

  it('errors: one line on stderr, exit 1, no stack trace', async () => {
    const [noModel, negative, notNumber, badTopP, hook, command, option] = await Promise.all([
      sonde('--model', '/nonexistent', 'info'),
      sonde('generate', '--max-tokens', '-3'),
      sonde('generate', '--temperature', 'abc'),
      sonde('generate', '--top-p', '0'),
      sonde('cache', '--hook', 'blocks.9.hook_resid_pre'),
      sonde('frobnicate'),
      sonde('run', '--bogus'),
    ]);
    expect(expectOneLineError(noModel)).toContain('/nonexistent');
    expect(expectOneLineError(negative)).toContain('--max-tokens');
    expect(expectOneLineError(notNumber)).toContain('--temperature');
    expectOneLineError(badTopP);
    expect(expectOneLineError(hook)).toMatch(
      /blocks\.9\.hook_resid_pre.*did you mean 'blocks\.4\.hook_resid_pre'/,
    );
    expect(expectOneLineError(command)).toContain('frobnicate');
    expect(expectOneLineError(option)).toContain('--bogus');
  });

  it('--debug adds the stack trace', async () => {
    const r = await sonde('--debug', '--model', '/nonexistent', 'info');
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')[0]).toMatch(/^sonde: /);
    expect(r.stderr).toMatch(/^\s+at /m);
  });

  it('--version and --help', async () => {
    const [version, help] = await Promise.all([sonde('--version'), sonde('--help')]);
    expect(version.code).toBe(0);
    expect(version.stdout.trim()).toMatch(/^\d+\.\d+\.\d+/);
    expect(help.code).toBe(0);
    for (const c of ['demo', 'run', 'generate', 'cache', 'info', 'hooks']) expect(help.stdout).toContain(c);
  });
});
