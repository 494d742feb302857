import fs from 'node:fs';
import path from 'node:path';
import { ConfigError } from '../errors.js';
import { writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import type { ModelConfig } from './config.js';
import { transpose2d, type Weights } from './weights.js';
import { tempSibling, trackLeftover } from '../io/leftovers.js';

const TOKENIZER_FILES = [
  'tokenizer.json',
  'tokenizer_config.json',
  'vocab.json',
  'merges.txt',
  'tok512.bin',
  'tok512.json',
];

/** Hugging Face GPT-2 config.json (plus TransformerLens's attn_only / normalization_type when used). */
export function gpt2HfConfig(cfg: ModelConfig): Record<string, unknown> {
  const hf: Record<string, unknown> = {
    architectures: ['GPT2LMHeadModel'],
    model_type: 'gpt2',
    n_embd: cfg.dModel,
    n_head: cfg.nHeads,
    n_layer: cfg.nLayers,
    n_positions: cfg.nCtx,
    n_ctx: cfg.nCtx,
    n_inner: cfg.dMlp,
    vocab_size: cfg.vocabSize,
    layer_norm_epsilon: cfg.normEps,
    activation_function: cfg.act,
    bos_token_id: cfg.bosTokenId,
    eos_token_id: cfg.eosTokenId,
    tie_word_embeddings: false,
    torch_dtype: 'float32',
  };
  if (cfg.attnOnly) hf.attn_only = true;
  if (cfg.normalization === 'none') hf.normalization_type = null;
  return hf;
}

/** Sonde weights -> HF GPT-2 tensor names (Conv1D [in, out]; untied lm_head.weight). */
export function gpt2HfTensors(cfg: ModelConfig, w: Weights): Record<string, TensorToWrite> {
  const { dModel: D, vocabSize: V } = cfg;
  const out: Record<string, TensorToWrite> = {};
  const get = (n: string) => {
    const t = w.get(n);
    if (!t) throw new ConfigError(`cannot save: weight '${n}' is missing`);
    return t;
  };
  const put = (hf: string, n: string) => {
    const t = get(n);
    out[hf] = { dtype: 'F32', shape: t.shape, data: t.f32Sync() };
  };
  put('transformer.wte.weight', 'embed.W_E');
  put('transformer.wpe.weight', 'pos_embed.W_pos');
  const ln = cfg.normalization === 'LN';
  for (let l = 0; l < cfg.nLayers; l++) {
    const b = `blocks.${l}`;
    const h = `transformer.h.${l}`;
    if (ln) {
      put(`${h}.ln_1.weight`, `${b}.ln1.w`);
      put(`${h}.ln_1.bias`, `${b}.ln1.b`);
    }
    const qkv = new Float32Array(D * 3 * D);
    const qkvB = new Float32Array(3 * D);
    ['Q', 'K', 'V'].forEach((n, i) => {
      const W = get(`${b}.attn.W_${n}`).f32Sync();
      for (let r = 0; r < D; r++) qkv.set(W.subarray(r * D, (r + 1) * D), r * 3 * D + i * D);
      const bias = w.get(`${b}.attn.b_${n}`);
      if (bias) qkvB.set(bias.f32Sync(), i * D);
    });
    out[`${h}.attn.c_attn.weight`] = { dtype: 'F32', shape: [D, 3 * D], data: qkv };
    out[`${h}.attn.c_attn.bias`] = { dtype: 'F32', shape: [3 * D], data: qkvB };
    put(`${h}.attn.c_proj.weight`, `${b}.attn.W_O`);
    out[`${h}.attn.c_proj.bias`] = {
      dtype: 'F32',
      shape: [D],
      data: w.get(`${b}.attn.b_O`)?.f32Sync() ?? new Float32Array(D),
    };
    if (cfg.attnOnly) continue;
    if (ln) {
      put(`${h}.ln_2.weight`, `${b}.ln2.w`);
      put(`${h}.ln_2.bias`, `${b}.ln2.b`);
    }
    put(`${h}.mlp.c_fc.weight`, `${b}.mlp.W_in`);
    put(`${h}.mlp.c_fc.bias`, `${b}.mlp.b_in`);
    put(`${h}.mlp.c_proj.weight`, `${b}.mlp.W_out`);
    put(`${h}.mlp.c_proj.bias`, `${b}.mlp.b_out`);
  }
  if (ln) {
    put('transformer.ln_f.weight', 'ln_final.w');
    put('transformer.ln_f.bias', 'ln_final.b');
  }
  out['lm_head.weight'] = {
    dtype: 'F32',
    shape: [V, D],
    data: transpose2d(get('unembed.W_U').f32Sync(), D, V),
  };
  // GPT-2 has no unembedding bias; a trained one is kept as lm_head.bias (Sonde reads it back).
  const bU = w.get('unembed.b_U')?.f32Sync();
  if (bU && bU.some((x) => x !== 0)) out['lm_head.bias'] = { dtype: 'F32', shape: [V], data: bU };
  return out;
}

/**
 * Saves a GPT-2-family model as an ordinary HF folder (config.json, model.safetensors, tokenizer files
 * copied from `tokenizerDir`), atomically: written to a sibling temp folder, then renamed into place.
 */
export function saveGpt2(dir: string, cfg: ModelConfig, weights: Weights, tokenizerDir?: string): void {
  if (cfg.family !== 'gpt2')
    throw new ConfigError(`saving is implemented for the GPT-2 family, not ${cfg.family}`);
  if (cfg.normalization !== 'LN' && cfg.normalization !== 'none') {
    throw new ConfigError(`cannot save a model with ${cfg.normalization} normalization (weights processed?)`);
  }
  const target = path.resolve(dir);
  const tmp = tempSibling(target);
  fs.mkdirSync(tmp, { recursive: true });
  try {
    fs.writeFileSync(path.join(tmp, 'config.json'), JSON.stringify(gpt2HfConfig(cfg), null, 2) + '\n');
    writeSafetensors(path.join(tmp, 'model.safetensors'), gpt2HfTensors(cfg, weights), { format: 'pt' });
    if (tokenizerDir) {
      for (const f of TOKENIZER_FILES) {
        const src = path.join(tokenizerDir, f);
        if (fs.existsSync(src)) fs.copyFileSync(src, path.join(tmp, f));
      }
    }
    replaceDir(tmp, target);
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

/** Moves `from` to `to`, replacing an existing folder so that `to` is always whole. */
export function replaceDir(from: string, to: string): void {
  const old = `${to}.old-${process.pid}-${Date.now()}`;
  const existed = fs.existsSync(to);
  if (existed) fs.renameSync(to, old);
  fs.renameSync(from, to);
  if (!existed) return;
  // Until `to` is in place, `old` is what a reader falls back to; from here on it is debris.
  const forget = trackLeftover(old);
  fs.rmSync(old, { recursive: true, force: true });
  forget();
}
