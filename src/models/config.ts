/** Sonde's architecture-neutral description of a transformer, parsed from a Hugging Face config.json. */
export interface ModelConfig {
  architecture: string; // the HF class, e.g. 'LlamaForCausalLM'
  family: 'gpt2' | 'llama';
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
