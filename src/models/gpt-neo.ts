import { ConfigError } from '../errors.js';
import type { AttnType, ModelConfig } from './config.js';
import { num, optNum, type HfConfig } from './hf-config.js';
import {
  readWeight,
  resolvePrefix,
  tensor,
  weightMapper,
  type Weights,
  type WeightSource,
} from './weights.js';

/**
 * GPTNeoForCausalLM (GPT-Neo, TinyStories-*): GPT-2's shape with nn.Linear weights, alternating global
 * and local (windowed) attention layers, and no 1/sqrt(d_head) scaling of attention scores.
 */
export function gptNeoConfig(hf: HfConfig): ModelConfig {
  const dModel = num(hf, 'hidden_size');
  const nHeads = num(hf, 'num_heads');
  const nLayers = num(hf, 'num_layers');
  const act = (hf.activation_function as string | undefined) ?? 'gelu_new';
  if (!['gelu_new', 'gelu', 'relu', 'silu'].includes(act))
    throw new ConfigError(`config.json: activation_function '${act}' is not supported for GPT-Neo`);
  return {
    architecture: 'GPTNeoForCausalLM',
    family: 'gpt-neo',
    nLayers,
    dModel,
    nHeads,
    nKvHeads: nHeads,
    dHead: dModel / nHeads,
    dMlp: optNum(hf, 'intermediate_size', 4 * dModel),
    vocabSize: num(hf, 'vocab_size'),
    nCtx: num(hf, 'max_position_embeddings'),
    normalization: 'LN',
    attnOnly: false,
    normEps: optNum(hf, 'layer_norm_epsilon', 1e-5),
    act: act as ModelConfig['act'],
    gatedMlp: false,
    positional: 'learned',
    rotaryDim: 0,
    ropeTheta: 0,
    ropeScaling: null,
    attnScale: 1,
    tiedEmbeddings: (hf.tie_word_embeddings as boolean | undefined) ?? true,
    attnTypes: attentionLayers(hf, nLayers),
    windowSize: optNum(hf, 'window_size', 256),
    bosTokenId: optNum(hf, 'bos_token_id', 50256),
    eosTokenId: optNum(hf, 'eos_token_id', 50256),
    processed: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

/** `attention_types: [[["global", "local"], 12]]` -> one entry per layer. */
function attentionLayers(hf: HfConfig, nLayers: number): AttnType[] {
  const spec = hf.attention_types ?? [[['global', 'local'], nLayers / 2]];
  const out: AttnType[] = [];
  const bad = () =>
    new ConfigError(
      `config.json: 'attention_types' must look like [[["global","local"], n]], got ${JSON.stringify(spec)}`,
    );
  if (!Array.isArray(spec)) throw bad();
  for (const entry of spec) {
    if (!Array.isArray(entry) || !Array.isArray(entry[0]) || typeof entry[1] !== 'number') throw bad();
    for (let r = 0; r < entry[1]; r++) {
      for (const t of entry[0] as unknown[]) {
        if (t !== 'global' && t !== 'local') throw bad();
        out.push(t);
      }
    }
  }
  if (out.length !== nLayers)
    throw new ConfigError(
      `config.json: 'attention_types' gives ${out.length} layers but num_layers is ${nLayers}`,
    );
  return out;
}

export function gptNeoWeights(src: WeightSource, cfg: ModelConfig): Weights {
  const { dModel: D, dMlp: F, vocabSize: V, nCtx } = cfg;
  const p = resolvePrefix(src, ['transformer.', ''], 'wte.weight');
  const w: Weights = new Map();
  const { vec, linear, unembed } = weightMapper(src, w, p);
  const wte = readWeight(src, `${p}wte.weight`, [V, D]);
  w.set('embed.W_E', tensor(wte, [V, D]));
  w.set('pos_embed.W_pos', tensor(readWeight(src, `${p}wpe.weight`, [nCtx, D]), [nCtx, D]));
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `h.${l}.`;
    const b = `blocks.${l}.`;
    vec(`${b}ln1.w`, `${h}ln_1.weight`, D);
    vec(`${b}ln1.b`, `${h}ln_1.bias`, D);
    for (const n of ['q', 'k', 'v'] as const)
      linear(`${b}attn.W_${n.toUpperCase()}`, `${h}attn.attention.${n}_proj.weight`, D, D);
    linear(`${b}attn.W_O`, `${h}attn.attention.out_proj.weight`, D, D);
    vec(`${b}attn.b_O`, `${h}attn.attention.out_proj.bias`, D);
    vec(`${b}ln2.w`, `${h}ln_2.weight`, D);
    vec(`${b}ln2.b`, `${h}ln_2.bias`, D);
    linear(`${b}mlp.W_in`, `${h}mlp.c_fc.weight`, F, D);
    vec(`${b}mlp.b_in`, `${h}mlp.c_fc.bias`, F);
    linear(`${b}mlp.W_out`, `${h}mlp.c_proj.weight`, D, F);
    vec(`${b}mlp.b_out`, `${h}mlp.c_proj.bias`, D);
  }
  vec('ln_final.w', 'ln_f.weight', D);
  vec('ln_final.b', 'ln_f.bias', D);
  unembed(wte, 'lm_head.weight', cfg.tiedEmbeddings, V, D);
  return w;
}
