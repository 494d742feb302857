// Short names for well-known models: alias → Hugging Face Hub id, with the parameter count published for
// it (embeddings included, tied ones once), its architecture class and whether the Hub gates it (accept
// the terms on the model's page, then set HF_TOKEN). Aliases are case-insensitive.

export interface ModelAlias {
  alias: string;
  /** The Hub repo, or null for the model built into the package. */
  repoId: string | null;
  /** The Hugging Face architecture class in its config.json. */
  architecture: string;
  params: number;
  gated: boolean;
}

/** Memory for the weights in float32 (how Sonde holds them): 4 bytes a parameter. */
export function float32Bytes(a: ModelAlias): number {
  return a.params * 4;
}

const alias = (
  name: string,
  repoId: string | null,
  architecture: string,
  params: number,
  gated = false,
): ModelAlias => ({ alias: name, repoId, architecture, params, gated });

// Pythia: every size exists trained on the Pile and on the deduplicated Pile (-deduped).
const PYTHIA: [string, number][] = [
  ['14m', 14_067_712],
  ['70m', 70_426_624],
  ['160m', 162_322_944],
  ['410m', 405_334_016],
  ['1b', 1_011_781_632],
  ['1.4b', 1_414_647_808],
  ['2.8b', 2_775_208_960],
  ['6.9b', 6_857_302_016],
  ['12b', 11_846_072_320],
];

export const MODEL_ALIASES: readonly ModelAlias[] = [
  alias('stories260K', null, 'LlamaForCausalLM', 260_032),
  alias('gpt2', 'openai-community/gpt2', 'GPT2LMHeadModel', 124_439_808),
  alias('gpt2-medium', 'openai-community/gpt2-medium', 'GPT2LMHeadModel', 354_823_168),
  alias('gpt2-large', 'openai-community/gpt2-large', 'GPT2LMHeadModel', 774_030_080),
  alias('gpt2-xl', 'openai-community/gpt2-xl', 'GPT2LMHeadModel', 1_557_611_200),
  alias('distilgpt2', 'distilbert/distilgpt2', 'GPT2LMHeadModel', 81_912_576),
  ...PYTHIA.flatMap(([size, n]) => [
    alias(`pythia-${size}`, `EleutherAI/pythia-${size}`, 'GPTNeoXForCausalLM', n),
    alias(`pythia-${size}-deduped`, `EleutherAI/pythia-${size}-deduped`, 'GPTNeoXForCausalLM', n),
  ]),
  alias('gpt-neo-125m', 'EleutherAI/gpt-neo-125m', 'GPTNeoForCausalLM', 125_198_592),
  alias('gpt-neo-1.3b', 'EleutherAI/gpt-neo-1.3B', 'GPTNeoForCausalLM', 1_315_575_808),
  alias('gpt-neo-2.7b', 'EleutherAI/gpt-neo-2.7B', 'GPTNeoForCausalLM', 2_651_307_520),
  // Named for its size without embeddings and positions; 68.5M in all.
  alias('tinystories-33m', 'roneneldan/TinyStories-33M', 'GPTNeoForCausalLM', 68_514_048),
  alias('gemma-2b', 'google/gemma-2b', 'GemmaForCausalLM', 2_506_172_416, true),
  alias('gemma-7b', 'google/gemma-7b', 'GemmaForCausalLM', 8_537_680_896, true),
  alias('gemma-2-2b', 'google/gemma-2-2b', 'Gemma2ForCausalLM', 2_614_341_888, true),
  alias('gemma-2-9b', 'google/gemma-2-9b', 'Gemma2ForCausalLM', 9_241_705_984, true),
  alias('gemma-2-27b', 'google/gemma-2-27b', 'Gemma2ForCausalLM', 27_227_128_320, true),
  alias('gemma-3-270m', 'google/gemma-3-270m', 'Gemma3ForCausalLM', 268_098_176, true),
  alias('gemma-3-1b', 'google/gemma-3-1b-pt', 'Gemma3ForCausalLM', 999_885_952, true),
  alias('mistral-7b', 'mistralai/Mistral-7B-v0.1', 'MistralForCausalLM', 7_241_732_096, true),
  alias('qwen2-0.5b', 'Qwen/Qwen2-0.5B', 'Qwen2ForCausalLM', 494_032_768),
  alias('qwen2.5-0.5b', 'Qwen/Qwen2.5-0.5B', 'Qwen2ForCausalLM', 494_032_768),
  alias('qwen2.5-1.5b', 'Qwen/Qwen2.5-1.5B', 'Qwen2ForCausalLM', 1_543_714_304),
  alias('qwen3-0.6b', 'Qwen/Qwen3-0.6B', 'Qwen3ForCausalLM', 596_049_920),
  alias('qwen3-1.7b', 'Qwen/Qwen3-1.7B', 'Qwen3ForCausalLM', 1_720_574_976),
  alias('llama-3.2-1b', 'meta-llama/Llama-3.2-1B', 'LlamaForCausalLM', 1_235_814_400, true),
];

/** The alias called `name`, any case. */
export function findAlias(name: string): ModelAlias | undefined {
  const key = name.toLowerCase();
  return MODEL_ALIASES.find((a) => a.alias.toLowerCase() === key);
}

/** Up to `n` aliases close to `name`: those sharing its start, then by edit distance. */
export function closeAliases(name: string, n = 3): string[] {
  const key = name.toLowerCase();
  const names = MODEL_ALIASES.map((a) => a.alias);
  const family = key.split(/[-_.]/)[0]!;
  const byPrefix = names.filter((a) => family.length >= 3 && a.toLowerCase().startsWith(family));
  const limit = Math.max(2, Math.floor(key.length / 3));
  const byDistance = names
    .map((a) => ({ a, d: editDistance(key, a.toLowerCase()) }))
    .filter(({ d }) => d <= limit)
    .sort((x, y) => x.d - y.d)
    .map(({ a }) => a);
  const ranked = [...byDistance, ...byPrefix.sort((x, y) => editDistance(key, x) - editDistance(key, y))];
  return [...new Set(ranked)].slice(0, n);
}

/** Levenshtein distance (for 'did you mean' suggestions). */
export function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length]!;
}
