import type { ModelConfig } from './config.js';
import {
  readWeight,
  resolvePrefix,
  sliceColumns,
  tensor,
  type Weights,
  type WeightSource,
} from './weights.js';
import { num, refuseUnsupported, type HfConfig, type UnsupportedKeys } from './hf-config.js';

/** GPT-2 config keys that change the computation, with the values implemented. */
const GPT2_KEYS: UnsupportedKeys = {
  scale_attn_weights: (v) => v === true,
  scale_attn_by_inverse_layer_idx: (v) => v === false,
  add_cross_attention: (v) => v === false,
};

/** GPT2LMHeadModel: learned positions, LayerNorm, gelu_new, Conv1D weights already [in, out]. */
/**
 * Also reads TransformerLens-style extensions used by Sonde's model organisms: `attn_only` (blocks
 * without MLP) and `normalization_type` ('LN' or null for none).
 */
export function gpt2Config(hf: HfConfig): ModelConfig {
  refuseUnsupported(hf, 'GPT2LMHeadModel', GPT2_KEYS);
  const dModel = num(hf, 'n_embd');
  const nHeads = num(hf, 'n_head');
  const act = (hf.activation_function as string | undefined) ?? 'gelu_new';
  return {
    architecture: 'GPT2LMHeadModel',
    family: 'gpt2',
    nLayers: num(hf, 'n_layer'),
    dModel,
    nHeads,
    nKvHeads: nHeads,
    dHead: dModel / nHeads,
    dMlp: (hf.n_inner as number | null | undefined) ?? 4 * dModel,
    vocabSize: num(hf, 'vocab_size'),
    nCtx: num(hf, 'n_positions'),
    normalization: hf.normalization_type === null ? 'none' : 'LN',
    attnOnly: hf.attn_only === true,
    normEps: (hf.layer_norm_epsilon as number | undefined) ?? 1e-5,
    act: act === 'gelu_new' || act === 'gelu_pytorch_tanh' ? 'gelu_new' : (act as ModelConfig['act']),
    gatedMlp: false,
    positional: 'learned',
    rotaryDim: 0,
    ropeTheta: 0,
    ropeScaling: null,
    attnScale: 1 / Math.sqrt(dModel / nHeads),
    tiedEmbeddings: true,
    bosTokenId: (hf.bos_token_id as number | undefined) ?? 50256,
    eosTokenId: (hf.eos_token_id as number | undefined) ?? 50256,
    processed: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

export function gpt2Weights(src: WeightSource, cfg: ModelConfig): Weights {
  const { dModel: D, dMlp: F, vocabSize: V, nCtx } = cfg;
  const p = resolvePrefix(src, ['transformer.', ''], 'wte.weight');
  const w: Weights = new Map();
  const put = (name: string, hfName: string, shape: number[]) =>
    w.set(name, tensor(readWeight(src, p + hfName, shape), shape));
  const wte = readWeight(src, `${p}wte.weight`, [V, D]);
  w.set('embed.W_E', tensor(wte, [V, D]));
  put('pos_embed.W_pos', 'wpe.weight', [nCtx, D]);
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `h.${l}.`;
    const b = `blocks.${l}.`;
    const ln = cfg.normalization !== 'none';
    if (ln) {
      put(`${b}ln1.w`, `${h}ln_1.weight`, [D]);
      put(`${b}ln1.b`, `${h}ln_1.bias`, [D]);
    }
    const qkv = readWeight(src, `${p}${h}attn.c_attn.weight`, [D, 3 * D]);
    const qkvB = readWeight(src, `${p}${h}attn.c_attn.bias`, [3 * D]);
    ['Q', 'K', 'V'].forEach((n, i) => {
      w.set(`${b}attn.W_${n}`, tensor(sliceColumns(qkv, D, 3 * D, i * D, (i + 1) * D), [D, D]));
      w.set(`${b}attn.b_${n}`, tensor(qkvB.slice(i * D, (i + 1) * D), [D]));
    });
    put(`${b}attn.W_O`, `${h}attn.c_proj.weight`, [D, D]);
    put(`${b}attn.b_O`, `${h}attn.c_proj.bias`, [D]);
    if (cfg.attnOnly) continue;
    if (ln) {
      put(`${b}ln2.w`, `${h}ln_2.weight`, [D]);
      put(`${b}ln2.b`, `${h}ln_2.bias`, [D]);
    }
    put(`${b}mlp.W_in`, `${h}mlp.c_fc.weight`, [D, F]);
    put(`${b}mlp.b_in`, `${h}mlp.c_fc.bias`, [F]);
    put(`${b}mlp.W_out`, `${h}mlp.c_proj.weight`, [F, D]);
    put(`${b}mlp.b_out`, `${h}mlp.c_proj.bias`, [D]);
  }
  if (cfg.normalization !== 'none') {
    put('ln_final.w', 'ln_f.weight', [D]);
    put('ln_final.b', 'ln_f.bias', [D]);
  }
  // Tied: W_U is W_E^T (an untied lm_head.weight, if present, wins).
  const lm = src.has('lm_head.weight') ? readWeight(src, 'lm_head.weight', [V, D]) : wte;
  w.set('unembed.W_U', tensor(transposeVD(lm, V, D), [D, V]));
  const bU = src.has('lm_head.bias') ? readWeight(src, 'lm_head.bias', [V]) : new Float32Array(V);
  w.set('unembed.b_U', tensor(bU, [V]));
  return w;
}

function transposeVD(data: Float32Array, v: number, d: number): Float32Array {
  const out = new Float32Array(data.length);
  for (let i = 0; i < v; i++) for (let j = 0; j < d; j++) out[j * v + i] = data[i * d + j]!;
  return out;
}
