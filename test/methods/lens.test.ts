import '../../src/engine/node.js';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { UsageError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { logitLens } from '../../src/methods/lens.js';
import { singleToken } from '../../src/methods/tokens.js';

const ROOT = path.resolve('.');
const FIXTURES = path.join(ROOT, 'test/fixtures');
const PROMPT = 'Once upon a time there was a little girl named Lily. One day, Lily';

const stories = HookedTransformer.load();
const gpt2 = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny'));
const IDS = [95, 3, 14, 15, 92, 65, 35, 89, 79, 32];

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i]! - b[i]!));
  return m;
}

/** The lens layer's logits [pos, vocab] (the last lens layer has the model's shape [pos, vocab]). */
function lensLayer(logits: Float32Array, layer: number, size: number): Float32Array {
  return logits.subarray(layer * size, (layer + 1) * size);
}

describe('logitLens', () => {
  it("stories260K (RMSNorm): the final layer is the model's own logits", async () => {
    const r = await logitLens(stories, PROMPT, { target: ' was', topK: 3 });
    const logits = stories.run(PROMPT).f32Sync();
    expect(r.layers).toHaveLength(stories.cfg.nLayers + 1);
    expect(r.layers.at(-1)).toBe('blocks.4.hook_resid_post');
    expect(r.logits.shape).toEqual([6, r.tokens.length, 512]);
    expect(maxAbsDiff(lensLayer(r.logits.f32Sync(), 5, logits.length), logits)).toBeLessThan(1e-5);
    // Top-k sorted, probabilities in (0, 1]; the target's rank agrees with the top list.
    for (let l = 0; l < r.layers.length; l++) {
      for (let p = 0; p < r.tokens.length; p++) {
        const top = r.top[l]![p]!;
        expect(top).toHaveLength(3);
        expect(top[0]!.prob).toBeGreaterThanOrEqual(top[1]!.prob);
        const t = r.targets![l]![p]!;
        expect(t.id).toBe(286);
        expect(t.rank === 1).toBe(top[0]!.id === 286);
        if (t.rank <= 3) expect(top[t.rank - 1]!.id).toBe(286);
      }
    }
    // The model predicts " was" after "there" (position 5) with high probability at the end.
    expect(r.strings[5]).toBe(' there');
    expect(r.targets![5]![5]!.rank).toBe(1);
  });

  it('gpt2-tiny (LayerNorm): final layer = logits; middle layers = ln_final with their own scale', async () => {
    const r = await logitLens(gpt2, IDS, { topK: 2 });
    expect(r.targets).toBeNull();
    const logits = gpt2.run(IDS).f32Sync();
    const V = gpt2.cfg.vocabSize;
    const d = gpt2.cfg.dModel;
    expect(maxAbsDiff(lensLayer(r.logits.f32Sync(), 2, logits.length), logits)).toBeLessThan(1e-5);
    // Float64 reference for layer 1 (blocks.1.hook_resid_pre), position 4.
    const { cache } = gpt2.runWithCache(IDS, { names: ['blocks.1.hook_resid_pre'] });
    const x = cache
      .get('blocks.1.hook_resid_pre')
      .f32Sync()
      .subarray(4 * d, 5 * d);
    const mu = x.reduce((s, v) => s + v, 0) / d;
    const scale = Math.sqrt(x.reduce((s, v) => s + (v - mu) ** 2, 0) / d + gpt2.cfg.normEps);
    const w = gpt2.weights.get('ln_final.w')!.f32Sync();
    const b = gpt2.weights.get('ln_final.b')!.f32Sync();
    const WU = gpt2.weights.get('unembed.W_U')!.f32Sync();
    const got = lensLayer(r.logits.f32Sync(), 1, logits.length).subarray(4 * V, 5 * V);
    for (const v of [0, 7, 42, V - 1]) {
      let ref = 0;
      for (let i = 0; i < d; i++) ref += (((x[i]! - mu) / scale) * w[i]! + b[i]!) * WU[i * V + v]!;
      expect(got[v]).toBeCloseTo(ref, 4);
    }
  });

  it('folded weights (LNPre): the final layer still equals the logits', async () => {
    const folded = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny'), { processWeights: true });
    expect(folded.cfg.normalization).toBe('LNPre');
    const r = await logitLens(folded, IDS, { target: 7 });
    const logits = folded.run(IDS).f32Sync();
    expect(maxAbsDiff(lensLayer(r.logits.f32Sync(), 2, logits.length), logits)).toBeLessThan(1e-5);
  });

  it('targets must be one token: clear errors', async () => {
    expect(singleToken(stories, ' Lily')).toBe(317);
    expect(singleToken(stories, 'Lily')).toBe(317);
    expect(singleToken(stories, 317)).toBe(317);
    await expect(logitLens(stories, PROMPT, { target: ' Lily was' })).rejects.toThrow(UsageError);
    await expect(logitLens(stories, PROMPT, { target: ' Lily was' })).rejects.toThrow(
      /target " Lily was" is 3 tokens, not one: .*" Lily" \(317\), " was" \(286\)/,
    );
    await expect(logitLens(stories, PROMPT, { target: 9999 })).rejects.toThrow(/outside the vocabulary/);
    await expect(logitLens(gpt2, IDS, { target: 'a' })).rejects.toThrow(/no tokenizer/);
    await expect(logitLens(stories, ['a b', 'c d'])).rejects.toThrow(/one sequence/);
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

describe.concurrent('sonde lens', () => {
  it('--json and --plot: every layer, the target per position, an SVG heatmap', async () => {
    const plot = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-lens-')), 'lens.svg');
    const r = await sonde(
      'lens',
      '--prompt',
      PROMPT,
      '--target',
      ' was',
      '--top-k',
      '2',
      '--json',
      '--plot',
      plot,
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc.labels).toEqual(['L0 in', 'L1 in', 'L2 in', 'L3 in', 'L4 in', 'final']);
    expect(doc.target).toEqual({ id: 286, token: ' was' });
    expect(doc.top).toHaveLength(6);
    expect(doc.top[5]).toHaveLength(doc.tokens.length);
    expect(doc.top[5][0]).toHaveLength(2);
    expect(doc.targets[5][5].rank).toBe(1);
    expect(doc.logits).toBeUndefined();
    const svg = fs.readFileSync(plot, 'utf8');
    expect(svg).toMatch(/^<svg/);
    expect(svg).toContain('Logit lens');
  });

  it('a target that is several tokens: one-line error listing them; --tokens on a model without tokenizer', async () => {
    const [bad, ids] = await Promise.all([
      sonde('lens', '--prompt', PROMPT, '--target', ' Lily was'),
      sonde(
        '--model',
        path.join(FIXTURES, 'gpt2-tiny'),
        'lens',
        '--tokens',
        IDS.join(','),
        '--target-id',
        '7',
      ),
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(bad.stderr).toMatch(/^sonde: --target " Lily was" is 3 tokens, not one: /);
    expect(ids.code).toBe(0);
    expect(ids.stdout).toContain('Target "<7>" (id 7)');
  });
});
