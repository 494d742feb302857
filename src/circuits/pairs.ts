// Clean/corrupt pairs, the data every circuit method scores: one JSON object per line of a .jsonl file.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { int64, toIds } from '../methods/tokens.js';
import { defaultModelDir } from '../models/load.js';
import type { CircuitMetric } from './metric.js';

/** One line of a pairs file, as written. */
export interface PairInput {
  clean?: string;
  corrupt?: string;
  clean_ids?: number[];
  corrupt_ids?: number[];
  /** The token the clean run should predict at the last position (text of one token, or an id). */
  answer?: string | number;
  wrong?: string | number;
  /** The positions a metric scores (negative counts from the end). */
  positions?: number[];
}

/** A checked pair: token ids of equal length, answer/wrong as ids, positions made non-negative. */
export interface CircuitPair {
  clean: number[];
  corrupt: number[];
  answer?: number;
  wrong?: number;
  positions?: number[];
  /** Where it came from, for messages ("data.jsonl line 3"). */
  source?: string;
}

const KEYS = new Set(['clean', 'corrupt', 'clean_ids', 'corrupt_ids', 'answer', 'wrong', 'positions']);

export interface PairOptions {
  /**
   * Lines may give only the clean side (causal scrubbing resamples from the dataset itself and needs no
   * corrupt prompt); such a pair's corrupt tokens are its clean ones.
   */
  cleanOnly?: boolean;
}

/** Checks pairs against the model; `where(i)` names a pair in errors ("data.jsonl line 3"). */
export function toPairs(
  model: HookedTransformer,
  inputs: PairInput[],
  where: (i: number) => string = (i) => `pair ${i}`,
  opts: PairOptions = {},
): CircuitPair[] {
  if (inputs.length === 0) throw new UsageError('no pairs: give at least one {"clean", "corrupt"} pair');
  return inputs.map((x, i) => {
    const at = where(i);
    if (typeof x !== 'object' || x === null || Array.isArray(x))
      throw new UsageError(`${at}: expected an object like {"clean": "...", "corrupt": "..."}`);
    const unknown = Object.keys(x).filter((k) => !KEYS.has(k));
    if (unknown.length)
      throw new UsageError(`${at}: unknown key '${unknown[0]}' (keys: ${[...KEYS].join(', ')})`);
    const side = (text: unknown, ids: unknown, name: string): number[] => {
      if ((text === undefined) === (ids === undefined))
        throw new UsageError(`${at}: give exactly one of "${name}" (text) and "${name}_ids" (token ids)`);
      if (text !== undefined && typeof text !== 'string')
        throw new UsageError(`${at}: "${name}" must be a string`);
      if (ids !== undefined && !(Array.isArray(ids) && ids.every((v) => typeof v === 'number')))
        throw new UsageError(`${at}: "${name}_ids" must be an array of token ids`);
      try {
        return toIds(model, (text ?? ids) as string | number[]);
      } catch (e) {
        throw new UsageError(`${at}: ${name}: ${(e as Error).message}`);
      }
    };
    const clean = side(x.clean, x.clean_ids, 'clean');
    const corrupt =
      opts.cleanOnly && x.corrupt === undefined && x.corrupt_ids === undefined
        ? clean
        : side(x.corrupt, x.corrupt_ids, 'corrupt');
    if (clean.length !== corrupt.length)
      throw new UsageError(
        `${at}: clean has ${clean.length} tokens and corrupt ${corrupt.length}; a pair needs equal lengths (patching is position by position)`,
      );
    const pair: CircuitPair = { clean, corrupt, source: at };
    const token = (v: unknown, name: string): number => {
      if (typeof v !== 'string' && typeof v !== 'number')
        throw new UsageError(`${at}: "${name}" must be one token (text or id)`);
      try {
        return model.toSingleToken(v, name);
      } catch (e) {
        throw new UsageError(`${at}: ${(e as Error).message}`);
      }
    };
    if (x.answer !== undefined) pair.answer = token(x.answer, 'answer');
    if (x.wrong !== undefined) pair.wrong = token(x.wrong, 'wrong');
    if (x.positions !== undefined) {
      const P = clean.length;
      if (!Array.isArray(x.positions) || x.positions.length === 0)
        throw new UsageError(`${at}: "positions" must be a non-empty array of positions`);
      pair.positions = x.positions.map((p) => {
        if (!Number.isInteger(p) || p < -P || p >= P)
          throw new UsageError(`${at}: position ${String(p)} is outside the ${P} tokens of the pair`);
        return p < 0 ? p + P : p;
      });
    }
    return pair;
  });
}

/** Reads a .jsonl pairs file (blank lines skipped); errors name the file and line. */
export function readPairs(model: HookedTransformer, file: string, opts: PairOptions = {}): CircuitPair[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`--data: cannot read '${file}'`);
  }
  return parsePairs(model, text, file, opts);
}

/** Pairs from .jsonl text, one JSON object a line (blank lines skipped); errors name `name` and the line. */
export function parsePairs(
  model: HookedTransformer,
  text: string,
  name: string,
  opts: PairOptions = {},
): CircuitPair[] {
  const lines: { value: PairInput; line: number }[] = [];
  text.split('\n').forEach((raw, i) => {
    if (raw.trim() === '') return;
    try {
      lines.push({ value: JSON.parse(raw) as PairInput, line: i + 1 });
    } catch {
      throw new UsageError(`${name} line ${i + 1}: not JSON (one {"clean", "corrupt"} object per line)`);
    }
  });
  if (lines.length === 0) throw new UsageError(`${name}: no pairs in it (one JSON object per line)`);
  return toPairs(
    model,
    lines.map((l) => l.value),
    (i) => `${name} line ${lines[i]!.line}`,
    opts,
  );
}

/** A pairs file of the package's examples/ folder, with the metric it was written for. */
export interface ExamplePairs {
  name: string;
  file: string;
  metric: CircuitMetric;
  about: string;
  text: string;
}

const EXAMPLES: Omit<ExamplePairs, 'text'>[] = [
  {
    name: 'circuit-names',
    file: 'examples/circuit-names.jsonl',
    metric: 'logit-diff',
    about: 'stories260K: which name comes back (Lily vs Tim)',
  },
  {
    name: 'induction-pairs',
    file: 'examples/induction-pairs.jsonl',
    metric: 'kl',
    about: 'test/fixtures/induction-2l: repeated random tokens, the first half corrupted',
  },
];

/** The example pair files found beside the built-in model's assets (none in an install without examples/). */
export function examplePairs(): ExamplePairs[] {
  const root = path.dirname(path.dirname(defaultModelDir()));
  return EXAMPLES.flatMap((e) => {
    const file = path.join(root, e.file);
    return existsSync(file) ? [{ ...e, text: readFileSync(file, 'utf8') }] : [];
  });
}

/** Pairs of one length, run together: clean and corrupt tokens [n, pos] and their indices in the dataset. */
export interface PairBatch {
  pairs: CircuitPair[];
  indices: number[];
  clean: Tensor;
  corrupt: Tensor;
}

/** Groups pairs by length (a batch needs one length), at most `maxBatch` pairs a batch. */
export function pairBatches(pairs: CircuitPair[], maxBatch = 64): PairBatch[] {
  const byLength = new Map<number, number[]>();
  pairs.forEach((p, i) => byLength.set(p.clean.length, [...(byLength.get(p.clean.length) ?? []), i]));
  const out: PairBatch[] = [];
  for (const idx of byLength.values()) {
    for (let s = 0; s < idx.length; s += maxBatch) {
      const indices = idx.slice(s, s + maxBatch);
      const ps = indices.map((i) => pairs[i]!);
      out.push({
        pairs: ps,
        indices,
        clean: int64(ps.map((p) => p.clean)),
        corrupt: int64(ps.map((p) => p.corrupt)),
      });
    }
  }
  return out;
}
