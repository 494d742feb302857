import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { logitLens } from '../../src/methods/lens.js';
import { ropeInvFreq } from '../../src/models/config.js';
import { Tensor } from '../../src/engine/tensor.js';
import { emptyKVCache, forward } from '../../src/models/transformer.js';
import { ARCHITECTURE_FIXTURES } from '../helpers/fixtures.js';

interface Reference {
  tokens: number[][];
  logits: number[][][];
  loss: number[];
  activations: Record<string, unknown>;
}

const FIXTURES = path.resolve('test/fixtures');
const ASYNC = process.env.SONDE_BACKEND === 'async';
const load = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'reference.json'), 'utf8')) as Reference;

function flatten(x: unknown): number[] {
  return (Array.isArray(x) ? x.flat(Infinity) : [x]) as number[];
}

/** max |a-b| / max(max|b|, 1e-6): the "1e-4 relative" over a whole tensor. */
function relErr(got: ArrayLike<number>, want: number[]): number {
  expect(got.length).toBe(want.length);
  let maxDiff = 0;
  let scale = 1e-6;
  for (let i = 0; i < want.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(Number(got[i]) - want[i]!));
    scale = Math.max(scale, Math.abs(want[i]!));
  }
  return maxDiff / scale;
}

/** Random-weight checkpoints in each architecture's exact HF layout (scripts/reference/). */
const FIXTURE_NAMES = [...ARCHITECTURE_FIXTURES, 'llama-mlp-bias-tiny'];

describe.each(FIXTURE_NAMES)('%s matches the float64 PyTorch reference', (name) => {
  const ref = load(name);
  const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });

  it('logits and loss of each sequence', async () => {
    for (const [s, ids] of ref.tokens.entries()) {
      const logits = model.run([ids]);
      expect(logits.shape).toEqual([1, ids.length, model.cfg.vocabSize]);
      expect(relErr(await logits.f32(), flatten(ref.logits[s]))).toBeLessThan(1e-4);
      expect(await model.loss([ids])).toBeCloseTo(ref.loss[s]!, 4);
    }
  });

  it('a padded batch gives the same logits at real positions', async () => {
    const ids = ref.tokens;
    const P = Math.max(...ids.map((r) => r.length));
    const mask = Tensor.from(
      ids.map((r) => Array.from({ length: P }, (_, i) => (i < r.length ? 1 : 0))),
      undefined,
      'int64',
    );
    const padded = ids.map((r) => [...r, ...new Array<number>(P - r.length).fill(0)]);
    const logits = await model.run(padded, { attentionMask: mask }).f32();
    const V = model.cfg.vocabSize;
    ids.forEach((r, b) => {
      const rows = logits.subarray(b * P * V, (b * P + r.length) * V);
      expect(relErr(rows, flatten(ref.logits[b]))).toBeLessThan(1e-4);
    });
  });

  // The compiled path exists on synchronous backends; an asynchronous one compiles every forward.
  it.skipIf(ASYNC)('the compiled (single ONNX graph) forward matches eager', () => {
    const compiled = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'always' });
    const ids = ref.tokens[0]!;
    expect(relErr(compiled.run([ids]).f32Sync(), flatten(ref.logits[0]))).toBeLessThan(1e-4);
    const { cache } = compiled.runWithCache([ids], { names: ['blocks.1.hook_resid_post'] });
    expect(
      relErr(
        cache.get('blocks.1.hook_resid_post').f32Sync(),
        flatten(ref.activations['blocks.1.hook_resid_post']),
      ),
    ).toBeLessThan(1e-4);
  });

  it('reaches every hook point, in the order hookNames lists them', () => {
    const { cache } = model.runWithCache([ref.tokens[1]!], { useAttnResult: true });
    expect(cache.keys()).toEqual(model.hookNames({ useAttnResult: true }));
  });

  it('a KV-cached generation step gives the same logits as the full forward', async () => {
    const ids = ref.tokens[0]!;
    const kv = emptyKVCache(model.cfg);
    const t = (xs: number[]) => Tensor.from([xs], undefined, 'int64');
    forward(model.cfg, model.weights, t(ids.slice(0, -3)), { kvCache: kv });
    const last = await forward(model.cfg, model.weights, t(ids.slice(-3)), { kvCache: kv }).f32();
    const V = model.cfg.vocabSize;
    const want = flatten(ref.logits[0]).slice((ids.length - 3) * V);
    expect(relErr(last, want)).toBeLessThan(1e-4);
  });

  it('hook points hold the reference activations', async () => {
    const { cache } = model.runWithCache([ref.tokens[0]!]);
    for (const [hook, want] of Object.entries(ref.activations)) {
      const tlName = hook === 'ln_final_out' ? 'ln_final.hook_normalized' : hook;
      if (!cache.has(tlName)) continue;
      expect(relErr(await cache.get(tlName).f32(), flatten(want)), hook).toBeLessThan(1e-4);
    }
    const expected = Object.keys(ref.activations).filter((k) => k !== 'ln_final_pre_affine').length;
    expect(
      Object.keys(ref.activations).filter((k) =>
        cache.has(k === 'ln_final_out' ? 'ln_final.hook_normalized' : k),
      ).length,
    ).toBe(expected);
  });
});

describe('llama-tiny specifics', () => {
  it('uses all three Llama-3 rope-scaling regimes', () => {
    const model = HookedTransformer.load(path.join(FIXTURES, 'llama-tiny'));
    const inv = ropeInvFreq(model.cfg);
    const base = Array.from(
      { length: inv.length },
      (_, i) => 1 / Math.pow(model.cfg.ropeTheta, (2 * i) / model.cfg.rotaryDim),
    );
    const ratios = base.map((b, i) => inv[i]! / b);
    expect(ratios.some((r) => Math.abs(r - 1) < 1e-12)).toBe(true);
    expect(ratios.some((r) => Math.abs(r - 1 / 8) < 1e-12)).toBe(true);
    expect(ratios.some((r) => r > 1 / 8 + 1e-6 && r < 1 - 1e-6)).toBe(true);
    expect(model.cfg.nKvHeads).toBeLessThan(model.cfg.nHeads);
    expect(model.cfg.tiedEmbeddings).toBe(false);
  });
});

describe("transformers v5's rope_parameters", () => {
  /** The fixture's folder with config.json rewritten by `edit` (weights linked, not copied). */
  function withConfig(name: string, edit: (c: Record<string, unknown>) => void): string {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sonde-${name}-`));
    const src = path.join(FIXTURES, name);
    for (const f of fs.readdirSync(src)) {
      if (f !== 'config.json') fs.symlinkSync(path.join(src, f), path.join(dir, f));
    }
    const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
    edit(cfg);
    fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
    return dir;
  }

  it.each([
    [
      'llama-tiny',
      (c: Record<string, unknown>) => {
        c.rope_parameters = { ...(c.rope_scaling as object), rope_theta: c.rope_theta };
        delete c.rope_scaling;
        delete c.rope_theta;
      },
    ],
    [
      'gemma3-tiny',
      (c: Record<string, unknown>) => {
        c.rope_parameters = {
          full_attention: { ...(c.rope_scaling as object), rope_theta: c.rope_theta },
          sliding_attention: { rope_type: 'default', rope_theta: c.rope_local_base_freq },
        };
        for (const k of ['rope_scaling', 'rope_theta', 'rope_local_base_freq', 'sliding_window_pattern'])
          delete c[k];
      },
    ],
  ])('%s gives the reference logits from the v5 layout', async (name, edit) => {
    const ref = load(name);
    const model = HookedTransformer.load(withConfig(name, edit), { compile: 'never' });
    expect(relErr(await model.run([ref.tokens[0]!]).f32(), flatten(ref.logits[0]))).toBeLessThan(1e-4);
  });
});

describe('methods read logits as the model makes them', () => {
  it.each(['gemma2-tiny', 'pythia-tiny', 'gemma3-tiny'])(
    "%s: the logit lens's last layer is the model's own (soft-capped) logits",
    async (name) => {
      const ref = load(name);
      const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });
      const ids = ref.tokens[1]!;
      const lens = await logitLens(model, [ids]);
      const L = lens.layers.length;
      const V = model.cfg.vocabSize;
      const last = (await lens.logits.f32()).subarray((L - 1) * ids.length * V, L * ids.length * V);
      expect(relErr(last, flatten(ref.logits[1]))).toBeLessThan(1e-4);
    },
  );
});

describe.each(['pythia-padded-tiny', 'qwen3-padded-tiny'])(
  '%s: a config vocabulary larger than the tokenizer (padded, as Pythia and Qwen)',
  (name) => {
    it('loads, and its padded logits match the reference', async () => {
      const ref = load(name);
      const model = HookedTransformer.load(path.join(FIXTURES, name), { compile: 'never' });
      expect(model.tokenizer!.vocabSize).toBe(75);
      expect(model.cfg.vocabSize).toBe(96);
      expect(relErr(await model.run([ref.tokens[0]!]).f32(), flatten(ref.logits[0]))).toBeLessThan(1e-4);
      expect(model.tokenStrings([74, 75, 95])).toEqual([
        model.tokenizer!.tokenString(74),
        '<id 75>',
        '<id 95>',
      ]);
    });
  },
);
