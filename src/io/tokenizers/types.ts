export interface EncodeOptions {
  /** Prepend the BOS token. Default: the tokenizer's own default (`prependBosDefault`). */
  prependBos?: boolean;
}

export type TokenizerKind = 'llama2c' | 'gpt2-bpe' | 'hf-json';

export interface Tokenizer {
  readonly kind: TokenizerKind;
  readonly vocabSize: number;
  readonly bosId: number | null;
  readonly eosId: number | null;
  /**
   * Whether the model's own tokenizer prepends BOS: true for llama2.c / Llama (BOS=1), false for GPT-2
   * tokenizers. TransformerLens prepends BOS for GPT-2 by default too; Sonde follows the model's tokenizer
   * instead, and callers that want TransformerLens behaviour pass `prependBos: true` explicitly.
   */
  readonly prependBosDefault: boolean;
  encode(text: string, opts?: EncodeOptions): number[];
  /** Full decode, as the reference tokenizer does it; an id the tokenizer lacks decodes as `<id N>`. */
  decode(ids: number[]): string;
  /**
   * One token's text for display: the actual characters (' the', '\n' for `<0x0A>`), not escaped. Bytes
   * that are not a whole UTF-8 character on their own are shown as `<0xXX>`; an id the tokenizer lacks
   * (a padded vocabulary's extra rows) as `<id N>`. Never throws.
   */
  tokenString(id: number): string;
}
