import { ConfigError } from '../errors.js';
import type { AttnType, ModelConfig } from './config.js';
import { layerTypes, num, optCap, optNum, type HfConfig } from './hf-config.js';
import { gatedMlp, selfAttention } from './llama.js';
import { ropeConfig } from './rope-config.js';
import {
  readWeight,
  resolvePrefix,
  tensor,
  weightMapper,
  type Weights,
  type WeightSource,
} from './weights.js';

type Version = 1 | 2 | 3;
const VERSIONS: Record<string, Version> = {
  GemmaForCausalLM: 1,
  Gemma2ForCausalLM: 2,
  Gemma3ForCausalLM: 3,
  Gemma3ForConditionalGeneration: 3,
};

/**
 * Gemma 1, 2 and 3 (text): embeddings scaled by sqrt(d_model), RMSNorm with (1 + w), GeGLU MLPs.
 * Gemma 2 adds post-norms, soft-capping and alternating sliding-window layers; Gemma 3 adds q/k norms
 * and a separate RoPE base for its local layers. The scale and the (1 + w) are folded into the
 * weights on load, as TransformerLens does, so W_E and the ln weights hold what the forward multiplies.
 */
export function gemmaConfig(hfIn: HfConfig, architecture: string): ModelConfig {
  const version = VERSIONS[architecture]!;
  // Gemma 3's multimodal checkpoints nest the language model's config.
  const hf = (architecture === 'Gemma3ForConditionalGeneration' ? hfIn.text_config : hfIn) as HfConfig;
  if (!hf || typeof hf !== 'object')
    throw new ConfigError(`config.json: ${architecture} needs a 'text_config'`);
  const dModel = num(hf, 'hidden_size');
  const nHeads = num(hf, 'num_attention_heads');
  const nLayers = num(hf, 'num_hidden_layers');
  const dHead = optNum(hf, 'head_dim', dModel / nHeads);
  // HF runs Gemma's MLP with the tanh GELU whatever hidden_act says (hidden_activation overrides).
  const act = (hf.hidden_activation as string | null | undefined) ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh' && act !== 'gelu')
    throw new ConfigError(`config.json: hidden_activation '${act}' is not supported for ${architecture}`);
  const window = optNum(hf, 'sliding_window', 0);
  const attnTypes =
    version === 1 ? undefined : (layerTypes(hf, nLayers) ?? defaultPattern(hf, version, nLayers));
  return {
    architecture,
    family: 'gemma',
    nLayers,
    dModel,
    nHeads,
    nKvHeads: optNum(hf, 'num_key_value_heads', nHeads),
    dHead,
    dMlp: num(hf, 'intermediate_size'),
    vocabSize: num(hf, 'vocab_size'),
    nCtx: optNum(hf, 'max_position_embeddings', 8192),
    normalization: 'RMS',
    attnOnly: false,
    normEps: optNum(hf, 'rms_norm_eps', 1e-6),
    act: act === 'gelu' ? 'gelu' : 'gelu_new',
    gatedMlp: true,
    positional: 'rotary',
    rotaryDim: dHead,
    ...ropeConfig(hf),
    attnScale: 1 / Math.sqrt(optNum(hf, 'query_pre_attn_scalar', dHead)),
    tiedEmbeddings: (hf.tie_word_embeddings as boolean | undefined) ?? true,
    ...(attnTypes && window > 0 ? { attnTypes, windowSize: window } : {}),
    attnSoftcap: optCap(hf, 'attn_logit_softcapping'),
    finalSoftcap: optCap(hf, 'final_logit_softcapping'),
    postNorms: version >= 2,
    qkNorm: version === 3,
    localRopeTheta: version === 3 ? localTheta(hf) : undefined,
    bosTokenId: optNum(hf, 'bos_token_id', 2),
    eosTokenId: typeof hf.eos_token_id === 'number' ? hf.eos_token_id : 1,
    processed: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

/** Before `layer_types`: Gemma 2 slides on even layers, Gemma 3 on all but every sliding_window_pattern-th. */
function defaultPattern(hf: HfConfig, version: Version, nLayers: number): AttnType[] {
  const pattern = version === 2 ? 2 : optNum(hf, 'sliding_window_pattern', 6);
  return Array.from({ length: nLayers }, (_, l) => ((l + 1) % pattern === 0 ? 'global' : 'local'));
}

/** Gemma 3's local RoPE base: `rope_local_base_freq`, or v5's rope_parameters.sliding_attention. */
function localTheta(hf: HfConfig): number {
  if (hf.rope_local_base_freq !== undefined) return optNum(hf, 'rope_local_base_freq', 10000);
  const { ropeTheta, ropeScaling } = ropeConfig(hf, 'sliding_attention');
  if (ropeScaling)
    throw new ConfigError('config.json: Gemma 3 local layers with rope scaling are not supported');
  return ropeTheta;
}

export function gemmaWeights(src: WeightSource, cfg: ModelConfig): Weights {
  const { dModel: D, vocabSize: V } = cfg;
  const p = resolvePrefix(
    src,
    ['model.', '', 'model.language_model.', 'language_model.model.'],
    'embed_tokens.weight',
  );
  const w: Weights = new Map();
  const m = weightMapper(src, w, p);
  // Gemma's RMSNorm multiplies by (1 + weight).
  const onePlus = (x: number) => 1 + x;
  const embed = readWeight(src, `${p}embed_tokens.weight`, [V, D]);
  const scale = Math.fround(Math.sqrt(D));
  w.set(
    'embed.W_E',
    tensor(
      embed.map((x) => x * scale),
      [V, D],
    ),
  );
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `layers.${l}.`;
    const b = `blocks.${l}.`;
    m.vec(`${b}ln1.w`, `${h}input_layernorm.weight`, D, onePlus);
    selfAttention(m, src, cfg, p + h, h, b, onePlus);
    if (cfg.postNorms) {
      m.vec(`${b}ln1_post.w`, `${h}post_attention_layernorm.weight`, D, onePlus);
      m.vec(`${b}ln2.w`, `${h}pre_feedforward_layernorm.weight`, D, onePlus);
      m.vec(`${b}ln2_post.w`, `${h}post_feedforward_layernorm.weight`, D, onePlus);
    } else {
      m.vec(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, D, onePlus);
    }
    gatedMlp(m, cfg, h, b);
  }
  m.vec('ln_final.w', 'norm.weight', D, onePlus);
  m.unembed(embed, 'lm_head.weight', cfg.tiedEmbeddings, V, D);
  return w;
}
