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
