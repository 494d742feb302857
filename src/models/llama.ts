import { ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { ropeConfig } from './rope-config.js';
import {
  layerTypes,
  num,
  optNum,
  refuseUnsupported,
  type HfConfig,
  type UnsupportedKeys,
} from './hf-config.js';
import {
  readWeight,
  resolvePrefix,
  tensor,
  weightMapper,
  type WeightMapper,
  type Weights,
  type WeightSource,
} from './weights.js';

/**
 * LlamaForCausalLM and the checkpoints that share its layout: Mistral (sliding window), Qwen2 (QKV
 * biases, optional sliding window on the upper layers) and Qwen3 (per-head q/k RMSNorm).
 */
export function llamaConfig(hf: HfConfig, architecture = 'LlamaForCausalLM'): ModelConfig {
  const dModel = num(hf, 'hidden_size');
  const nHeads = num(hf, 'num_attention_heads');
  const dHead = (hf.head_dim as number | undefined) ?? dModel / nHeads;
  const act = (hf.hidden_act as string | undefined) ?? 'silu';
  if (act !== 'silu')
    throw new ConfigError(
      `config.json: hidden_act '${act}' is not supported for ${architecture} (expected silu)`,
    );
  refuseUnsupported(hf, architecture, LLAMA_KEYS);
  const nLayers = num(hf, 'num_hidden_layers');
  const window = slidingWindow(hf, architecture, nLayers);
  return {
    architecture,
    family: 'llama',
    nLayers,
    dModel,
    nHeads,
    nKvHeads: (hf.num_key_value_heads as number | undefined) ?? nHeads,
    dHead,
    dMlp: num(hf, 'intermediate_size'),
    vocabSize: num(hf, 'vocab_size'),
    nCtx: (hf.max_position_embeddings as number | undefined) ?? 2048,
    normalization: 'RMS',
    attnOnly: false,
    normEps: (hf.rms_norm_eps as number | undefined) ?? 1e-6,
    act: 'silu',
    gatedMlp: true,
    positional: 'rotary',
    rotaryDim: dHead,
    ...ropeConfig(hf),
    attnScale: 1 / Math.sqrt(dHead),
    tiedEmbeddings: (hf.tie_word_embeddings as boolean | undefined) ?? false,
    ...window,
    qkNorm: architecture === 'Qwen3ForCausalLM',
    mlpBias: architecture === 'LlamaForCausalLM' && hf.mlp_bias === true,
    bosTokenId: (hf.bos_token_id as number | undefined) ?? null,
    eosTokenId: typeof hf.eos_token_id === 'number' ? hf.eos_token_id : null,
    processed: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

/**
 * Keys of LlamaForCausalLM-style configs that change the computation, with the values implemented.
 * attention_bias needs no rule: the q/k/v/o biases are read where the checkpoint has them, and a
 * checkpoint tensor left unread is refused at load.
 */
const LLAMA_KEYS: UnsupportedKeys = {
  mlp_bias: (v, arch) => v === false || (v === true && arch === 'LlamaForCausalLM'),
  partial_rotary_factor: (v) => v === 1,
  attention_bias: (v) => typeof v === 'boolean',
};

/** Which layers attend within a sliding window, as each architecture's HF config says. */
function slidingWindow(
  hf: HfConfig,
  architecture: string,
  nLayers: number,
): { attnTypes?: ('global' | 'local')[]; windowSize?: number } {
  const size = optNum(hf, 'sliding_window', 0);
  if (size <= 0) return {};
  const listed = layerTypes(hf, nLayers);
  if (listed) return { attnTypes: listed, windowSize: size };
  if (architecture === 'MistralForCausalLM')
    return { attnTypes: new Array(nLayers).fill('local'), windowSize: size };
  if (architecture.startsWith('Qwen') && hf.use_sliding_window === true) {
    // Qwen2/3: layers from max_window_layers up use the window.
    const from = optNum(hf, 'max_window_layers', nLayers);
    return {
      attnTypes: Array.from({ length: nLayers }, (_, l) => (l >= from ? 'local' : 'global')),
      windowSize: size,
    };
  }
  return {};
}

export function llamaWeights(src: WeightSource, cfg: ModelConfig): Weights {
  const { dModel: D, vocabSize: V } = cfg;
  const p = resolvePrefix(src, ['model.', ''], 'embed_tokens.weight');
  const w: Weights = new Map();
  const m = weightMapper(src, w, p);
  const embed = readWeight(src, `${p}embed_tokens.weight`, [V, D]);
  w.set('embed.W_E', tensor(embed, [V, D]));
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `layers.${l}.`;
    const b = `blocks.${l}.`;
    m.vec(`${b}ln1.w`, `${h}input_layernorm.weight`, D);
    selfAttention(m, src, cfg, p + h, h, b);
    m.vec(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, D);
    gatedMlp(m, cfg, h, b);
  }
  m.vec('ln_final.w', 'norm.weight', D);
  m.unembed(embed, 'lm_head.weight', cfg.tiedEmbeddings, V, D);
  return w;
}

/**
 * Llama-style self_attn.{q,k,v,o}_proj (biases where the checkpoint has them) and Qwen3/Gemma 3's
 * q_norm/k_norm; `norm` maps the norm weights (Gemma's 1 + w). `full` is `h` with the prefix, for has().
 */
export function selfAttention(
  m: WeightMapper,
  src: WeightSource,
  cfg: ModelConfig,
  full: string,
  h: string,
  b: string,
  norm?: (x: number) => number,
): void {
  const { dModel: D, nHeads: H, nKvHeads: KV, dHead: dh } = cfg;
  const sizes = { q: [H * dh, D], k: [KV * dh, D], v: [KV * dh, D], o: [D, H * dh] } as const;
  for (const [n, [out, inp]] of Object.entries(sizes)) {
    m.linear(`${b}attn.W_${n.toUpperCase()}`, `${h}self_attn.${n}_proj.weight`, out, inp);
    if (src.has(`${full}self_attn.${n}_proj.bias`))
      m.vec(`${b}attn.b_${n.toUpperCase()}`, `${h}self_attn.${n}_proj.bias`, out);
  }
  if (cfg.qkNorm) {
    m.vec(`${b}attn.q_norm.w`, `${h}self_attn.q_norm.weight`, dh, norm);
    m.vec(`${b}attn.k_norm.w`, `${h}self_attn.k_norm.weight`, dh, norm);
  }
}

/** mlp.{gate,up,down}_proj: W_gate, W_in, W_out, with biases b_gate, b_in, b_out under Llama's mlp_bias. */
export function gatedMlp(m: WeightMapper, cfg: ModelConfig, h: string, b: string): void {
  const { dModel: D, dMlp: F } = cfg;
  m.linear(`${b}mlp.W_gate`, `${h}mlp.gate_proj.weight`, F, D);
  m.linear(`${b}mlp.W_in`, `${h}mlp.up_proj.weight`, F, D);
  m.linear(`${b}mlp.W_out`, `${h}mlp.down_proj.weight`, D, F);
  if (cfg.mlpBias) {
    // HF's LlamaMLP: nn.Linear(..., bias=config.mlp_bias) for all three projections.
    m.vec(`${b}mlp.b_gate`, `${h}mlp.gate_proj.bias`, F);
    m.vec(`${b}mlp.b_in`, `${h}mlp.up_proj.bias`, F);
    m.vec(`${b}mlp.b_out`, `${h}mlp.down_proj.bias`, D);
  }
}
