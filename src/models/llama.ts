import { ConfigError } from '../errors.js';
import type { ModelConfig } from './config.js';
import { ropeConfig } from './rope-config.js';
import { layerTypes, num, optNum, type HfConfig } from './hf-config.js';
import {
  readWeight,
  resolvePrefix,
  tensor,
  transpose2d,
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
    bosTokenId: (hf.bos_token_id as number | undefined) ?? null,
    eosTokenId: typeof hf.eos_token_id === 'number' ? hf.eos_token_id : null,
    processed: { foldLn: false, centerWritingWeights: false, centerUnembed: false, foldValueBiases: false },
  };
}

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
  const { dModel: D, dMlp: F, vocabSize: V, nHeads: H, nKvHeads: KV, dHead: dh } = cfg;
  const p = resolvePrefix(src, ['model.', ''], 'embed_tokens.weight');
  const w: Weights = new Map();
  // nn.Linear stores [out, in]; Sonde multiplies x @ W with W [in, out].
  const linear = (name: string, hfName: string, out: number, inp: number) =>
    w.set(name, tensor(transpose2d(readWeight(src, hfName, [out, inp]), out, inp), [inp, out]));
  const vec = (name: string, hfName: string, n: number) =>
    w.set(name, tensor(readWeight(src, hfName, [n]), [n]));
  const embed = readWeight(src, `${p}embed_tokens.weight`, [V, D]);
  w.set('embed.W_E', tensor(embed, [V, D]));
  for (let l = 0; l < cfg.nLayers; l++) {
    const h = `${p}layers.${l}.`;
    const b = `blocks.${l}.`;
    vec(`${b}ln1.w`, `${h}input_layernorm.weight`, D);
    linear(`${b}attn.W_Q`, `${h}self_attn.q_proj.weight`, H * dh, D);
    linear(`${b}attn.W_K`, `${h}self_attn.k_proj.weight`, KV * dh, D);
    linear(`${b}attn.W_V`, `${h}self_attn.v_proj.weight`, KV * dh, D);
    linear(`${b}attn.W_O`, `${h}self_attn.o_proj.weight`, D, H * dh);
    for (const [n, size] of [
      ['q', H * dh],
      ['k', KV * dh],
      ['v', KV * dh],
      ['o', D],
    ] as const) {
      if (src.has(`${h}self_attn.${n}_proj.bias`))
        vec(`${b}attn.b_${n.toUpperCase()}`, `${h}self_attn.${n}_proj.bias`, size);
    }
    if (cfg.qkNorm) {
      vec(`${b}attn.q_norm.w`, `${h}self_attn.q_norm.weight`, dh);
      vec(`${b}attn.k_norm.w`, `${h}self_attn.k_norm.weight`, dh);
    }
    vec(`${b}ln2.w`, `${h}post_attention_layernorm.weight`, D);
    linear(`${b}mlp.W_gate`, `${h}mlp.gate_proj.weight`, F, D);
    linear(`${b}mlp.W_in`, `${h}mlp.up_proj.weight`, F, D);
    linear(`${b}mlp.W_out`, `${h}mlp.down_proj.weight`, D, F);
  }
  vec('ln_final.w', `${p}norm.weight`, D);
  const tied = cfg.tiedEmbeddings || !src.has('lm_head.weight');
  const lm = tied ? embed : readWeight(src, 'lm_head.weight', [V, D]);
  w.set('unembed.W_U', tensor(transpose2d(lm, V, D), [D, V]));
  return w;
}
