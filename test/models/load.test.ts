import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { ConfigError, WeightError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { SafetensorsCheckpoint, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';

const FIXTURES = path.resolve('test/fixtures');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-load-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

/** A copy of a fixture folder with its config edited and its weights re-encoded or altered. */
function variant(
  name: string,
  edit: {
    config?: (c: Record<string, unknown>) => void;
    dtype?: 'F16' | 'BF16';
    drop?: string;
    reshape?: string;
    /** Extra tensors (name -> shape), filled with 0.5. */
    extra?: Record<string, readonly number[]>;
  },
): string {
  const src = path.join(FIXTURES, name);
  const dir = fs.mkdtempSync(path.join(tmpRoot, `${name}-`));
  const cfg = JSON.parse(fs.readFileSync(path.join(src, 'config.json'), 'utf8')) as Record<string, unknown>;
  edit.config?.(cfg);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(cfg));
  const ck = SafetensorsCheckpoint.open(src);
  const tensors: Record<string, TensorToWrite> = {};
  for (const n of ck.names()) {
    if (n === edit.drop) continue;
    const info = ck.info(n);
    const shape = n === edit.reshape ? [...info.shape.slice(0, -1), info.shape.at(-1)! - 1] : info.shape;
    const data = ck.readFloat32(n);
    tensors[n] = {
      dtype: edit.dtype ?? 'F32',
      shape,
      data:
        n === edit.reshape
          ? data.slice(
              0,
              shape.reduce((a, b) => a * b, 1),
            )
          : data,
    };
  }
  ck.close();
  for (const [n, shape] of Object.entries(edit.extra ?? {})) {
    tensors[n] = {
      dtype: 'F32',
      shape: [...shape],
      data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(0.5),
    };
  }
  writeSafetensors(path.join(dir, 'model.safetensors'), tensors);
  return dir;
}

describe('loading Hugging Face folders', () => {
  it('reads F16 and BF16 checkpoints into float32', () => {
    const ids = [[1, 2, 3, 4, 5, 6, 7, 8]];
    const ref = HookedTransformer.load(path.join(FIXTURES, 'gpt2-tiny')).run(ids).f32Sync();
    for (const [dtype, tol] of [
      ['F16', 2e-2],
      ['BF16', 1.5e-1],
    ] as const) {
      const got = HookedTransformer.load(variant('gpt2-tiny', { dtype })).run(ids).f32Sync();
      let maxDiff = 0;
      let scale = 0;
      for (let i = 0; i < ref.length; i++) {
        maxDiff = Math.max(maxDiff, Math.abs(got[i]! - ref[i]!));
        scale = Math.max(scale, Math.abs(ref[i]!));
      }
      // Rounded weights: close to the float32 model but not identical.
      expect(maxDiff / scale, dtype).toBeLessThan(tol);
      expect(maxDiff, dtype).toBeGreaterThan(0);
    }
  });

  it('refuses an unknown architecture and lists the supported ones', () => {
    const dir = variant('gpt2-tiny', {
      config: (c) => ((c.architectures = ['MambaForCausalLM']), (c.model_type = 'mamba')),
    });
    expect(() => HookedTransformer.load(dir)).toThrow(ConfigError);
    expect(() => HookedTransformer.load(dir)).toThrow(
      /MambaForCausalLM is not supported; supported: .*GPT2LMHeadModel.*LlamaForCausalLM/,
    );
  });

  it('names a missing or mis-shaped tensor', () => {
    expect(() =>
      HookedTransformer.load(variant('gpt2-tiny', { drop: 'transformer.h.1.mlp.c_fc.bias' })),
    ).toThrow(WeightError);
    expect(() =>
      HookedTransformer.load(variant('gpt2-tiny', { drop: 'transformer.h.1.mlp.c_fc.bias' })),
    ).toThrow(/transformer\.h\.1\.mlp\.c_fc\.bias/);
    expect(() =>
      HookedTransformer.load(variant('gpt2-tiny', { reshape: 'transformer.h.0.attn.c_proj.weight' })),
    ).toThrow(/'transformer\.h\.0\.attn\.c_proj\.weight' has shape \[32,31\], expected \[32,32\]/);
  });

  it('explains a missing folder, config or field', () => {
    expect(() => HookedTransformer.load(path.join(tmpRoot, 'nope'))).toThrow(/does not exist/);
    const empty = fs.mkdtempSync(path.join(tmpRoot, 'empty-'));
    expect(() => HookedTransformer.load(empty)).toThrow(/no config\.json/);
    const bad = variant('gpt2-tiny', { config: (c) => delete c.n_embd });
    expect(() => HookedTransformer.load(bad)).toThrow(/'n_embd' must be a number/);
  });

  it('loads the built-in model without ../shared', () => {
    const m = HookedTransformer.load();
    expect(m.source).toMatch(/assets[/\\]stories260K$/);
    expect(m.cfg.nLayers).toBe(5);
    expect(m.tokenizer?.kind).toBe('llama2c');
  });
});

describe('loading refuses what it does not understand', () => {
  it('a checkpoint tensor left unused is an error that lists it', () => {
    const dir = variant('gpt2-tiny', {
      extra: { 'transformer.h.0.mlp.c_gate.weight': [32, 128], 'transformer.h.1.attn.rel_bias': [4] },
    });
    expect(() => HookedTransformer.load(dir)).toThrow(WeightError);
    expect(() => HookedTransformer.load(dir)).toThrow(
      /2 checkpoint tensor\(s\) would be left unused: 'transformer\.h\.0\.mlp\.c_gate\.weight', 'transformer\.h\.1\.attn\.rel_bias'/,
    );
  });

  it('known harmless extras, by name per architecture, still load to the same model', () => {
    const ids = [[1, 2, 3, 4, 5]];
    for (const [name, extra] of [
      // GPT-2's causal-mask buffers (older transformers saved them).
      ['gpt2-tiny', { 'transformer.h.0.attn.bias': [1, 1, 32, 32], 'transformer.h.1.attn.masked_bias': [] }],
      // Rotary inverse frequencies, recomputed from the config.
      ['llama-tiny', { 'model.layers.0.self_attn.rotary_emb.inv_freq': [4] }],
      // A tied model's stored head copy: HF uses the embedding.
      ['qwen2-tiny', { 'lm_head.weight': [96, 32] }],
      [
        'pythia-tiny',
        { 'gpt_neox.layers.1.attention.masked_bias': [], 'gpt_neox.layers.0.attention.bias': [1, 1, 8, 8] },
      ],
    ] as const) {
      const ref = HookedTransformer.load(path.join(FIXTURES, name)).run(ids).f32Sync();
      const got = HookedTransformer.load(variant(name, { extra })).run(ids).f32Sync();
      expect(Array.from(got), name).toEqual(Array.from(ref));
    }
  });

  it('a GPT-2 head buffer name is harmless only where GPT-2 keeps it', () => {
    const dir = variant('llama-tiny', { extra: { 'model.layers.0.self_attn.bias': [4] } });
    expect(() => HookedTransformer.load(dir)).toThrow(/'model\.layers\.0\.self_attn\.bias'/);
  });

  it('Llama mlp_bias: read with the config key, refused without it, missing tensors named', () => {
    // The fixture with biases loads (its logits are checked against PyTorch in reference.test.ts).
    const biased = HookedTransformer.load(path.join(FIXTURES, 'llama-mlp-bias-tiny'));
    expect(biased.cfg.mlpBias).toBe(true);
    expect(biased.weights.get('blocks.1.mlp.b_gate')!.shape).toEqual([64]);
    // Bias tensors present but the config says no biases: HF would ignore them, so the file is suspect.
    const off = variant('llama-mlp-bias-tiny', { config: (c) => (c.mlp_bias = false) });
    expect(() => HookedTransformer.load(off)).toThrow(
      /6 checkpoint tensor\(s\) would be left unused: 'model\.layers\.0\.mlp\.down_proj\.bias'/,
    );
    // The config says biases, the file has none.
    const missing = variant('llama-tiny', { config: (c) => (c.mlp_bias = true) });
    expect(() => HookedTransformer.load(missing)).toThrow(
      /no tensor 'model\.layers\.0\.mlp\.gate_proj\.bias'/,
    );
    // mlp_bias on an architecture whose HF code has no such key.
    const mistral = variant('mistral-tiny', { config: (c) => (c.mlp_bias = true) });
    expect(() => HookedTransformer.load(mistral)).toThrow(ConfigError);
    expect(() => HookedTransformer.load(mistral)).toThrow(
      /'mlp_bias': true changes the computation and is not supported for MistralForCausalLM/,
    );
  });

  it('a config key that changes the computation but is not implemented is an error that names it', () => {
    const cases: [string, (c: Record<string, unknown>) => void, RegExp][] = [
      ['llama-tiny', (c) => (c.rope_scaling = { rope_type: 'yarn', factor: 4 }), /rope_scaling type 'yarn'/],
      [
        'mistral-tiny',
        (c) => (c.rope_scaling = { type: 'dynamic', factor: 2 }),
        /rope_scaling type 'dynamic'/,
      ],
      ['llama-tiny', (c) => (c.partial_rotary_factor = 0.5), /'partial_rotary_factor': 0\.5/],
      [
        'gpt2-tiny',
        (c) => (c.scale_attn_by_inverse_layer_idx = true),
        /'scale_attn_by_inverse_layer_idx': true/,
      ],
      ['gpt2-tiny', (c) => (c.scale_attn_weights = false), /'scale_attn_weights': false/],
    ];
    for (const [name, edit, message] of cases) {
      const dir = variant(name, { config: edit });
      expect(() => HookedTransformer.load(dir), String(message)).toThrow(ConfigError);
      expect(() => HookedTransformer.load(dir)).toThrow(message);
    }
  });
});
