import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { TokenizerError } from '../errors.js';
import { HfTokenizer } from './tokenizers/hf.js';
import { Llama2cTokenizer } from './tokenizers/llama2c.js';
import type { Tokenizer } from './tokenizers/types.js';
import { idFromConfig, isRecord, readJsonIfExists } from './tokenizers/util.js';

export type { EncodeOptions, Tokenizer, TokenizerKind } from './tokenizers/types.js';
export { HfTokenizer, parseMerges } from './tokenizers/hf.js';
export { Llama2cTokenizer } from './tokenizers/llama2c.js';

const LOOKED_FOR =
  'tokenizer.json (HF fast tokenizer), vocab.json + merges.txt (GPT-2 BPE), tok512.bin / tokenizer.bin / tok<N>.bin (llama2.c)';

function isFile(path: string): boolean {
  return existsSync(path) && statSync(path).isFile();
}

function readConfig(dir: string, name: string): Record<string, unknown> {
  const x = readJsonIfExists(dir, name);
  if (x === undefined) return {};
  if (!isRecord(x)) throw new TokenizerError(`${join(dir, name)} is not a JSON object`);
  return x;
}

/** The llama2.c tokenizer file in a folder: tok512.bin, then tokenizer.bin, then any other tok<N>.bin. */
function findLlama2cFile(dir: string): string | null {
  for (const name of ['tok512.bin', 'tokenizer.bin']) if (isFile(join(dir, name))) return join(dir, name);
  const other = readdirSync(dir)
    .filter((f) => /^tok\d+\.bin$/.test(f))
    .sort();
  return other.length > 0 ? join(dir, other[0]) : null;
}

/**
 * Loads from a model folder: tokenizer.json (hf-json) > vocab.json + merges.txt (gpt2-bpe) > tok512.bin /
 * tokenizer.bin (llama2c). Throws TokenizerError naming the folder and the files looked for. bos/eos come
 * from config.json (bos_token_id, eos_token_id) when present.
 */
export function loadTokenizer(dir: string): Tokenizer {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) {
    throw new TokenizerError(`Tokenizer folder ${dir} does not exist (looked for ${LOOKED_FOR})`);
  }
  const modelConfig = readConfig(dir, 'config.json');
  const tokenizerConfig = readConfig(dir, 'tokenizer_config.json');

  if (isFile(join(dir, 'tokenizer.json'))) {
    return HfTokenizer.fromTokenizerJson(join(dir, 'tokenizer.json'), tokenizerConfig, modelConfig);
  }
  const hasVocab = isFile(join(dir, 'vocab.json'));
  const hasMerges = isFile(join(dir, 'merges.txt'));
  if (hasVocab && hasMerges) return HfTokenizer.fromVocabMerges(dir, tokenizerConfig, modelConfig);

  const bin = findLlama2cFile(dir);
  if (bin !== null) {
    const vocabSize = idFromConfig(modelConfig.vocab_size);
    return Llama2cTokenizer.fromFile(bin, {
      vocabSize: vocabSize !== null && vocabSize > 0 ? vocabSize : undefined,
      ...('bos_token_id' in modelConfig ? { bosId: idFromConfig(modelConfig.bos_token_id) } : {}),
      ...('eos_token_id' in modelConfig ? { eosId: idFromConfig(modelConfig.eos_token_id) } : {}),
    });
  }
  const half = hasVocab
    ? ' (vocab.json found without merges.txt)'
    : hasMerges
      ? ' (merges.txt found without vocab.json)'
      : '';
  throw new TokenizerError(`No tokenizer found in ${dir}${half}: looked for ${LOOKED_FOR}`);
}
