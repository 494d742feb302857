import '../../src/engine/node.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ShapeError, UsageError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { residualDecomposition } from '../../src/methods/decompose.js';
import { directLogitAttribution, directLogitAttributionMany, rankComponents } from '../../src/methods/dla.js';
import { repeatedTokens } from '../../src/methods/heads.js';

const ROOT = path.resolve('.');
const FIXTURES = path.join(ROOT, 'test/fixtures');
const PROMPT = 'Once upon a time there was a little girl named Lily. One day, Lily';
const IDS = [95, 3, 14, 15, 92, 65, 35, 89, 79, 32];

const stories = HookedTransformer.load();
const gpt2 = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny'));
const induction = HookedTransformer.load(path.join(FIXTURES, 'induction-2l'));

/** The model's own logit(answer) - logit(wrong) at (0, pos), independently of the method. */
function logitDiff(model: HookedTransformer, input: string | number[], pos: number, a: number, w?: number) {
  const logits = model.run(input);
  const V = model.cfg.vocabSize;
  const row = logits.f32Sync().subarray(pos * V, (pos + 1) * V);
  return row[a]! - (w === undefined ? 0 : row[w]!);
}

describe('residualDecomposition', () => {
  it.each([
    ['gpt2-tiny', gpt2, IDS, 14],
    ['stories260K', stories, PROMPT, 46],
    ['induction-2l', induction, [1, 300, 301, 302, 300, 301], 12],
  ] as const)('%s: the components sum to the final resid_post', async (_name, model, input, count) => {
    for (const pos of [0, 3, -1]) {
      const r = await residualDecomposition(model, input as string | number[], { pos });
      expect(r.components).toHaveLength(count);
      expect(r.maxError).toBeLessThan(1e-4);
      // Independently of the method's own check: against a plain cache of the last resid_post.
      const L = model.cfg.nLayers;
      const { cache } = model.runWithCache(input as string | number[], {
        names: [`blocks.${L - 1}.hook_resid_post`],
      });
      const d = model.cfg.dModel;
      const resid = cache
        .get(`blocks.${L - 1}.hook_resid_post`)
        .f32Sync()
        .subarray(r.pos * d, (r.pos + 1) * d);
      for (let i = 0; i < d; i++) {
        const s = r.components.reduce((acc, c) => acc + c.vector[i]!, 0);
        expect(Math.abs(s - resid[i]!)).toBeLessThan(1e-4);
      }
    }
  });

  it('names: embeddings, heads, b_O, MLPs in forward order (no pos_embed for rotary, no MLP when attn-only)', async () => {
    expect((await residualDecomposition(gpt2, IDS)).components.map((c) => c.name).slice(0, 8)).toEqual([
      'embed',
      'pos_embed',
      'L0H0',
      'L0H1',
      'L0H2',
      'L0H3',
      'L0.attn.b_O',
      'L0.mlp',
    ]);
    const s = (await residualDecomposition(stories, PROMPT)).components.map((c) => c.name);
    expect(s.slice(0, 2)).toEqual(['embed', 'L0H0']);
    expect(s.some((n) => n.includes('b_O'))).toBe(false);
    const i = (await residualDecomposition(induction, [1, 300, 301])).components.map((c) => c.name);
    expect(i.some((n) => n.includes('mlp'))).toBe(false);
    await expect(residualDecomposition(gpt2, IDS, { pos: 10 })).rejects.toThrow(ShapeError);
  });
});

describe('directLogitAttribution', () => {
  it('gpt2-tiny (LayerNorm, ln_final.b): the parts sum to the logit difference', async () => {
    for (const pos of [2, 9]) {
      const r = await directLogitAttribution(gpt2, IDS, { pos, answer: 4, wrong: 10 });
      expect(r.components.map((c) => c.name).slice(-3)).toEqual(['L1.mlp', 'ln_final.b', 'unembed.b_U']);
      expect(Math.abs(r.total - logitDiff(gpt2, IDS, pos, 4, 10))).toBeLessThan(1e-4);
      expect(r.error).toBeLessThan(1e-4);
    }
    const single = await directLogitAttribution(gpt2, IDS, { answer: 4 });
    expect(Math.abs(single.total - logitDiff(gpt2, IDS, 9, 4))).toBeLessThan(1e-4);
  });

  it('folded weights (LNPre: ln_final.w/b folded into W_U/b_U): the parts sum to the logit difference', async () => {
    const folded = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny'), { processWeights: true });
    const r = await directLogitAttribution(folded, IDS, { pos: 5, answer: 4, wrong: 10 });
    expect(Math.abs(r.total - logitDiff(folded, IDS, 5, 4, 10))).toBeLessThan(1e-4);
  });

  it('stories260K (RMSNorm, no biases): the parts sum to the logit difference', async () => {
    const P = stories.encode(PROMPT).length;
    const r = await directLogitAttribution(stories, PROMPT, { answer: ' was', wrong: ' Lily' });
    expect(r.pos).toBe(P - 1);
    expect(r.answer).toEqual({ id: 286, token: ' was' });
    expect(r.components).toHaveLength(46);
    expect(Math.abs(r.total - logitDiff(stories, PROMPT, P - 1, 286, 317))).toBeLessThan(1e-4);
    const one = await directLogitAttribution(stories, PROMPT, { pos: 5, answer: 286 });
    expect(Math.abs(one.total - logitDiff(stories, PROMPT, 5, 286))).toBeLessThan(1e-4);
    await expect(directLogitAttribution(stories, PROMPT, { answer: ' Lily was' })).rejects.toThrow(
      UsageError,
    );
    await expect(directLogitAttribution(stories, PROMPT, { answer: ' Lily was' })).rejects.toThrow(
      /is 3 tokens, not one/,
    );
  });

  it('induction-2l: on repeated random tokens the top direct contributors are the layer-1 induction heads', async () => {
    const T = 30;
    const B = 4;
    const tokens = repeatedTokens(induction, T, B, 1); // [BOS, r, r]
    const ids = tokens.toArraySync();
    const P = 2 * T + 1;
    const targets = [];
    // Second-repeat positions predicting the next token of the repeat.
    for (let b = 0; b < B; b++)
      for (let pos = T + 1; pos < P - 1; pos++)
        targets.push({ batch: b, pos, answer: ids[b * P + pos + 1]! });
    const r = await directLogitAttributionMany(induction, tokens, targets);
    expect(r.maxError).toBeLessThan(1e-4);
    const ranked = rankComponents(r.mean);
    expect(ranked[0]!.kind).toBe('head');
    expect(ranked[0]!.layer).toBe(1);
    // All four layer-1 heads are induction heads; each gives far more than any other component.
    expect(ranked.slice(0, 4).every((c) => c.kind === 'head' && c.layer === 1)).toBe(true);
    expect(ranked[0]!.contribution).toBeGreaterThan(1);
    // The batched result matches attributing one sequence on its own.
    const k = targets.length - 3;
    const alone = await directLogitAttribution(
      induction,
      ids.slice(targets[k]!.batch * P, (targets[k]!.batch + 1) * P),
      {
        pos: targets[k]!.pos,
        answer: targets[k]!.answer,
      },
    );
    alone.components.forEach((c, i) =>
      expect(Math.abs(c.contribution - r.targets[k]!.components[i]!.contribution)).toBeLessThan(1e-4),
    );
  });
});

function sonde(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', path.join(ROOT, 'src/cli/index.ts'), ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, timeout: 60_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      },
    );
  });
}

describe.concurrent('sonde dla', () => {
  it('--json and --plot: components that sum to the logit difference, and a bar chart', async () => {
    const plot = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-dla-')), 'dla.svg');
    const r = await sonde(
      'dla',
      '--prompt',
      PROMPT,
      '--answer',
      ' was',
      '--wrong',
      'Lily',
      '--json',
      '--plot',
      plot,
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.answer).toEqual({ id: 286, token: ' was' });
    expect(doc.wrong).toEqual({ id: 317, token: ' Lily' });
    expect(doc.pos).toBe(doc.tokens.length - 1);
    const sum = doc.components.reduce((s: number, c: { contribution: number }) => s + c.contribution, 0);
    expect(Math.abs(sum - doc.logitDiff)).toBeLessThan(1e-4);
    expect(fs.readFileSync(plot, 'utf8')).toContain('Direct logit attribution');
  });

  it('errors are one line: several tokens, no answer, a bad position; --tokens with --answer-id works', async () => {
    const [several, none, pos, ids] = await Promise.all([
      sonde('dla', '--prompt', PROMPT, '--answer', ' Lilyx'),
      sonde('dla', '--prompt', PROMPT),
      sonde(
        '--model',
        path.join(FIXTURES, 'gpt2-tiny'),
        'dla',
        '--tokens',
        '1,2,3',
        '--answer-id',
        '5',
        '--pos',
        '3',
      ),
      sonde(
        '--model',
        path.join(FIXTURES, 'gpt2-tiny'),
        'dla',
        '--tokens',
        '1,2,3',
        '--answer-id',
        '5',
        '--pos',
        '-2',
      ),
    ]);
    for (const r of [several, none, pos]) {
      expect(r.code).toBe(1);
      expect(r.stdout).toBe('');
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    }
    expect(several.stderr).toMatch(
      /^sonde: --answer " Lilyx" is 3 tokens, not one: " " \(410\), " Lily" \(317\), "x"/,
    );
    expect(none.stderr).toMatch(/missing --answer/);
    expect(pos.stderr).toMatch(/--pos 3 is outside the 3 tokens/);
    expect(ids.code).toBe(0);
    expect(ids.stdout).toMatch(/at position 1/);
    expect(ids.stdout).toMatch(/ln_final\.b/);
  });
});
