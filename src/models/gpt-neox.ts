import { ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { num, optNum, type HfConfig } from './hf-config.js';
import { ropeConfig } from './rope-config.js';
import {
  readWeight,
  resolvePrefix,
  tensor,
  transpose2d,
  weightMapper,
  type Weights,
  type WeightSource,
} from './weights.js';

/**
 * GPTNeoXForCausalLM (Pythia, GPT-NeoX-20B): attention and MLP in parallel on the same resid_pre,
 * rotary embeddings on the first rotary_pct of each head, a fused per-head QKV projection.
 */
export function gptNeoxConfig(hf: HfConfig): ModelConfig {
  const dModel = num(hf, 'hidden_size');
  const nHeads = num(hf, 'num_attention_heads');
  const dHead = dModel / nHeads;
  const rope = (hf.rope_parameters ?? {}) as Record<string, unknown>;
  const pct = optNum(
    hf,
    'rotary_pct',
    optNum(hf, 'partial_rotary_factor', (rope.partial_rotary_factor as number) ?? 1),
  );
  const act = (hf.hidden_act as string | undefined) ?? 'gelu';
  const acts: Record<string, ModelConfig['act']> = {
    gelu: 'gelu',
    gelu_new: 'gelu_new',
    gelu_fast: 'gelu_new',
    gelu_pytorch_tanh: 'gelu_new',
    relu: 'relu',
    silu: 'silu',
  };
  if (!acts[act]) throw new ConfigError(`config.json: hidden_act '${act}' is not supported for GPT-NeoX`);
  return {
    architecture: 'GPTNeoXForCausalLM',
    family: 'gpt-neox',
    nLayers: num(hf, 'num_hidden_layers'),
    dModel,
    nHeads,
    nKvHeads: nHeads,
    dHead,
    dMlp: num(hf, 'intermediate_size'),
    vocabSize: num(hf, 'vocab_size'),
    nCtx: optNum(hf, 'max_position_embeddings', 2048),
    normalization: 'LN',
    attnOnly: false,
    normEps: optNum(hf, 'layer_norm_eps', 1e-5),
    act: acts[act],
    gatedMlp: false,
    positional: 'rotary',
    // HF: rotary_ndims = int(head_size * rotary_pct).
    rotaryDim: Math.floor(dHead * pct),
    // Pythia's configs call the base rotary_emb_base.
    ...ropeConfig(hf, 'full_attention', optNum(hf, 'rotary_emb_base', 10000)),
    attnScale: 1 / Math.sqrt(dHead),
    tiedEmbeddings: (hf.tie_word_embeddings as boolean | undefined) ?? false,
    parallelAttnMlp: (hf.use_parallel_residual as boolean | undefined) ?? true,
    bosTokenId: optNum(hf, 'bos_token_id', 0),
    eosTokenId: optNum(hf, 'eos_token_id', 0),
    processed: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

export function gptNeoxWeights(src: WeightSource, cfg: ModelConfig): Weights {
  const { dModel: D, dMlp: F, vocabSize: V, nHeads: H, dHead: dh } = cfg;
  const p = resolvePrefix(src, ['gpt_neox.', ''], 'embed_in.weight');
  const w: Weights = new Map();
  const { vec, linear, unembed } = weightMapper(src, w, p);
  const embed = readWeight(src, `${p}embed_in.weight`, [V, D]);
  w.set('embed.W_E', tensor(embed, [V, D]));
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `layers.${l}.`;
    const b = `blocks.${l}.`;
    vec(`${b}ln1.w`, `${h}input_layernorm.weight`, D);
    vec(`${b}ln1.b`, `${h}input_layernorm.bias`, D);
    // Fused rows are per head: [head, (q | k | v), d_head]. Split into Q, K, V of [in, head*d_head].
    const qkv = readWeight(src, `${p}${h}attention.query_key_value.weight`, [3 * D, D]);
    const qkvB = readWeight(src, `${p}${h}attention.query_key_value.bias`, [3 * D]);
    ['Q', 'K', 'V'].forEach((n, t) => {
      const rows = new Float32Array(H * dh * D);
      const bias = new Float32Array(H * dh);
      for (let hd = 0; hd < H; hd++) {
        for (let i = 0; i < dh; i++) {
          const fused = (hd * 3 + t) * dh + i; // the row in query_key_value
          rows.set(qkv.subarray(fused * D, (fused + 1) * D), (hd * dh + i) * D);
          bias[hd * dh + i] = qkvB[fused]!;
        }
      }
      w.set(`${b}attn.W_${n}`, tensor(transpose2d(rows, H * dh, D), [D, H * dh]));
      w.set(`${b}attn.b_${n}`, tensor(bias, [H * dh]));
    });
    linear(`${b}attn.W_O`, `${h}attention.dense.weight`, D, D);
    vec(`${b}attn.b_O`, `${h}attention.dense.bias`, D);
    vec(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, D);
    vec(`${b}ln2.b`, `${h}post_attention_layernorm.bias`, D);
    linear(`${b}mlp.W_in`, `${h}mlp.dense_h_to_4h.weight`, F, D);
    vec(`${b}mlp.b_in`, `${h}mlp.dense_h_to_4h.bias`, F);
    linear(`${b}mlp.W_out`, `${h}mlp.dense_4h_to_h.weight`, D, F);
    vec(`${b}mlp.b_out`, `${h}mlp.dense_4h_to_h.bias`, D);
  }
  vec('ln_final.w', 'final_layer_norm.weight', D);
  vec('ln_final.b', 'final_layer_norm.bias', D);
  unembed(embed, 'embed_out.weight', cfg.tiedEmbeddings, V, D);
  return w;
}
