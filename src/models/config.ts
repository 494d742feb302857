/** Sonde's architecture-neutral description of a transformer, parsed from a Hugging Face config.json. */
export interface ModelConfig {
  architecture: string; // the HF class, e.g. 'LlamaForCausalLM'
  /** The forward pass's shape: llama covers Mistral and Qwen2/3; gemma covers Gemma 1, 2 and 3. */
  family: 'gpt2' | 'gpt-neo' | 'gpt-neox' | 'llama' | 'gemma';
  nLayers: number;
  dModel: number;
  nHeads: number;
  nKvHeads: number;
  dHead: number;
  dMlp: number;
  vocabSize: number;
  nCtx: number;
  /** LN: LayerNorm with weight and bias; RMS: RMSNorm; *Pre: weights folded away (TransformerLens); none. */
  normalization: 'LN' | 'LNPre' | 'RMS' | 'RMSPre' | 'none';
  /** Attention-only blocks (no MLP), as TransformerLens's attn_only models. */
  attnOnly: boolean;
  normEps: number;
  act: 'gelu_new' | 'gelu' | 'relu' | 'silu';
  gatedMlp: boolean;
  positional: 'learned' | 'rotary';
  rotaryDim: number;
  ropeTheta: number;
  ropeScaling: RopeScaling | null;
  attnScale: number; // scores are multiplied by this (1/sqrt(dHead) by default)
  tiedEmbeddings: boolean;
  /** GPT-NeoX/Pythia: attention and MLP both read resid_pre; resid_post = pre + attn_out + mlp_out. */
  parallelAttnMlp?: boolean;
  /** Each layer's attention span: 'global' (causal) or 'local' (the last windowSize keys). Omitted: all global. */
  attnTypes?: AttnType[];
  windowSize?: number;
  /** Gemma 2 soft-capping: x -> cap * tanh(x / cap), on attention scores and on the final logits. */
  attnSoftcap?: number;
  finalSoftcap?: number;
  /** Gemma 2/3: norms on the attention and MLP outputs before they join the residual (ln1_post, ln2_post). */
  postNorms?: boolean;
  /** Qwen3/Gemma 3: RMSNorm of each head's q and k over d_head before RoPE (attn.q_norm, attn.k_norm). */
  qkNorm?: boolean;
  /** Llama's mlp_bias: the gate, up and down projections have biases (mlp.b_gate, b_in, b_out). */
  mlpBias?: boolean;
  /** Gemma 3: RoPE base of local layers, which use no rope scaling (global layers use ropeTheta). */
  localRopeTheta?: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  /** TransformerLens's processing applied to the weights, for the record. */
  processed: {
    foldLn: boolean;
    centerWritingWeights: boolean;
    centerUnembed: boolean;
    foldValueBiases: boolean;
  };
}

export type AttnType = 'global' | 'local';

/** Layer l's attention span. */
export function attnTypeOf(cfg: ModelConfig, l: number): AttnType {
  return cfg.attnTypes?.[l] ?? 'global';
}

export interface RopeScaling {
  type: 'llama3' | 'linear';
  factor: number;
  lowFreqFactor?: number;
  highFreqFactor?: number;
  originalMaxPositionEmbeddings?: number;
}

/** Inverse frequencies of rotary embeddings, with Llama-3 or linear scaling. */
export function ropeInvFreq(cfg: ModelConfig): Float64Array {
  const half = cfg.rotaryDim / 2;
  const inv = new Float64Array(half);
  for (let i = 0; i < half; i++) inv[i] = 1 / Math.pow(cfg.ropeTheta, (2 * i) / cfg.rotaryDim);
  const s = cfg.ropeScaling;
  if (!s) return inv;
  if (s.type === 'linear') return inv.map((f) => f / s.factor);
  // Llama 3.1: keep high frequencies, divide low ones by factor, interpolate in between.
  const orig = s.originalMaxPositionEmbeddings!;
  const lowWavelen = orig / s.lowFreqFactor!;
  const highWavelen = orig / s.highFreqFactor!;
  return inv.map((f) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) return f;
    if (wavelen > lowWavelen) return f / s.factor;
    const smooth = (orig / wavelen - s.lowFreqFactor!) / (s.highFreqFactor! - s.lowFreqFactor!);
    return (1 - smooth) * (f / s.factor) + smooth * f;
  });
}
