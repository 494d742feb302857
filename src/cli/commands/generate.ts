// sonde generate: sample a continuation (greedy at temperature 0), streaming tokens to stdout.
import type { Command } from 'commander';
import { UsageError, type HookedTransformer } from '../../index.js';
import {
  globalsOf,
  idListArg,
  inputFlags,
  intArg,
  loadModel,
  note,
  printJson,
  resolveInput,
  truncateOption,
  temperatureArg,
  topPArg,
  type InputFlags,
} from '../common.js';

interface GenerateFlags extends InputFlags {
  maxTokens: number;
  temperature: number;
  seed: number;
  topK?: number;
  topP?: number;
  stopAtEos: boolean;
}

export function registerGenerate(program: Command): void {
  program
    .command('generate')
    .description('generate text from a prompt (from BOS when the prompt is empty); temperature 0 is greedy')
    .option('--prompt <text>', 'the text to continue (default: empty, start from BOS)')
    .option(
      '--tokens <ids>',
      'prompt token ids instead of text, e.g. 1,403 (models without a tokenizer)',
      idListArg,
    )
    .addOption(truncateOption())
    .option('--max-tokens <n>', 'number of tokens to generate', intArg(0), 64)
    .option('--temperature <t>', 'sampling temperature; 0 = greedy', temperatureArg, 1)
    .option('--seed <s>', 'random seed for sampling', intArg(0, 2 ** 32 - 1), 0)
    .option('--top-k <k>', 'sample among the k most likely tokens (0 = all)', intArg(0))
    .option('--top-p <p>', 'nucleus sampling: the smallest set of tokens with probability >= p', topPArg)
    .option('--prepend-bos', "prepend the BOS token to the prompt (default: what the model's tokenizer does)")
    .option('--no-prepend-bos', 'do not prepend the BOS token')
    .option('--no-stop-at-eos', 'keep generating after the end-of-sequence token')
    .addHelpText(
      'after',
      `
Prints the decoded prompt and continuation to stdout, streaming tokens as they come; with --json, one
document {prompt, text, completion, tokens, generated, ...}.

Examples:
  sonde generate --max-tokens 64 --temperature 0
  sonde generate --prompt "Once upon a time" --temperature 0.8 --top-p 0.9 --seed 7`,
    )
    .action(async (opts: GenerateFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      const model = await loadModel(g);
      const flags = inputFlags(opts, cmd);
      const promptIds = promptTokens(model, flags, opts.maxTokens);
      const streaming = !g.json;
      const stream = streaming ? new TextStream(model, process.stdout) : null;
      stream?.push(promptIds);
      const t0 = performance.now();
      const result = await model.generate(promptIds, {
        maxTokens: opts.maxTokens,
        temperature: opts.temperature,
        seed: opts.seed,
        topK: opts.topK ? Math.min(opts.topK, model.cfg.vocabSize) : undefined,
        topP: opts.topP,
        stopAtEos: opts.stopAtEos,
        onToken: stream ? (id) => stream.push([id]) : undefined,
      });
      const seconds = (performance.now() - t0) / 1000;
      const n = result.generated.length;
      const stopReason =
        n === opts.maxTokens
          ? 'max_tokens'
          : result.generated[n - 1] === model.cfg.eosTokenId
            ? 'eos'
            : 'context';
      if (stream) {
        stream.finish(result.text);
        const rate = n > 0 && seconds > 0 ? `, ${(n / seconds).toFixed(0)} tokens/s` : '';
        note(g, `[${n} tokens in ${seconds.toFixed(2)} s${rate}; stopped: ${stopReason}]`);
        return;
      }
      const promptText = model.tokenizer ? model.decode(promptIds) : promptIds.join(' ');
      printJson({
        model: model.source,
        prompt: flags.prompt ?? (flags.tokens ? null : ''),
        text: result.text,
        completion: result.text.startsWith(promptText)
          ? result.text.slice(promptText.length)
          : model.tokenizer
            ? model.decode(result.generated)
            : result.generated.join(' '),
        tokens: result.tokens,
        promptTokens: promptIds,
        generated: result.generated,
        generatedStrings: model.tokenStrings(result.generated),
        maxTokens: opts.maxTokens,
        temperature: opts.temperature,
        seed: opts.seed,
        topK: opts.topK ?? null,
        topP: opts.topP ?? null,
        stopReason,
      });
    });
}

/** The prompt's ids: --tokens, the encoded --prompt, or BOS alone for an empty prompt; --truncate leaves room for maxTokens. */
function promptTokens(model: HookedTransformer, flags: InputFlags, maxTokens: number): number[] {
  const bos = model.cfg.bosTokenId;
  if (flags.tokens === undefined && (flags.prompt ?? '') === '') {
    if (bos === null)
      throw new UsageError('empty prompt and the model has no BOS token: give --prompt or --tokens');
    return [bos];
  }
  return resolveInput(model, flags, undefined, Math.min(maxTokens, model.cfg.nCtx - 1)).ids;
}

/**
 * Writes the decoded text as tokens arrive. It decodes the whole sequence each time and prints what is
 * new, so that leading-space rules and multi-byte characters split over tokens come out right; an
 * incomplete character (U+FFFD at the end) waits for the next token.
 */
class TextStream {
  private ids: number[] = [];
  private printed = '';

  constructor(
    private readonly model: HookedTransformer,
    private readonly sink: NodeJS.WritableStream,
  ) {}

  push(ids: number[]): void {
    this.ids.push(...ids);
    if (!this.model.tokenizer) {
      this.write(this.ids.join(' '));
      return;
    }
    this.write(this.model.decode(this.ids).replace(/\uFFFD+$/, ''));
  }

  finish(text: string): void {
    this.write(text);
    this.sink.write('\n');
  }

  private write(text: string): void {
    if (!text.startsWith(this.printed)) return; // the decoded text changed earlier: wait for the end
    if (text.length > this.printed.length) this.sink.write(text.slice(this.printed.length));
    this.printed = text;
  }
}
