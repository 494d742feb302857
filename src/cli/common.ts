// Shared helpers of the `sonde` CLI: global options, model loading, argument parsing, JSON and table
// output, activation statistics, and error reporting.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { CommanderError, InvalidArgumentError, Option, type Command } from 'commander';
// The modules themselves, not the library's index: `sonde info` should not load every method.
import '../engine/node.js'; // registers the onnxruntime-node backend
import type { Tensor } from '../engine/tensor.js';
import { HookError, SondeError, UsageError } from '../errors.js';
import { HookedTransformer } from '../hooks/hooked-transformer.js';
import { hubCacheDir, resolveModel, type DownloadProgress } from '../io/hub/index.js';
import { formatBytes } from '../models/memory.js';
import { editDistance } from '../models/aliases.js';
import type { ModelConfig } from '../models/config.js';
import { hookSpec, positionAxisOf } from '../models/hook-table.js';
import { createProgress } from './progress.js';

// ---------------------------------------------------------------------------------------------------------
// Global options

export interface GlobalOptions {
  /** Model folder, alias or Hub id (org/name[@revision]); undefined = the built-in stories260K. */
  model?: string;
  /** Hub revision (branch, tag or commit) for a Hub --model. */
  revision?: string;
  json: boolean;
  quiet: boolean;
  debug: boolean;
  /** Overwrite an existing --out or --plot (cli/output.ts). */
  force: boolean;
}

export function globalsOf(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as {
    model?: string;
    revision?: string;
    json?: boolean;
    quiet?: boolean;
    debug?: boolean;
    force?: boolean;
  };
  return {
    model: o.model,
    revision: o.revision,
    json: o.json === true,
    quiet: o.quiet === true,
    debug: o.debug === true,
    force: o.force === true,
  };
}

/** The model folder for `spec` (default --model): a folder, an alias or a Hub id, downloaded if needed. */
export async function resolveModelDir(g: GlobalOptions, spec = g.model): Promise<string> {
  const progress = downloadProgress(g);
  try {
    return await resolveModel(spec, { revision: g.revision, onProgress: progress.onProgress });
  } finally {
    progress.stop();
  }
}

export async function loadModel(g: GlobalOptions, spec = g.model): Promise<HookedTransformer> {
  return loadModelFolder(g, await resolveModelDir(g, spec));
}

/** Checkpoints at least this big get a "needs X" line and a progress bar while they load. */
const ANNOUNCE_BYTES = 100e6;

/**
 * Loads a model folder, saying first what it needs in memory (Sonde refuses before reading a tensor when
 * it will not fit) and showing a progress bar over the checkpoint's bytes.
 */
export function loadModelFolder(g: GlobalOptions, dir: string): HookedTransformer {
  const bar = createProgress(g);
  let shown = false;
  try {
    return HookedTransformer.load(dir, {
      onEstimate: (e, limit) => {
        if (e.checkpointBytes < ANNOUNCE_BYTES) return;
        shown = true;
        const avail = Number.isFinite(limit.bytes) ? `, ${formatBytes(limit.bytes)} available` : '';
        note(
          g,
          `loading ${dir}: ${(e.parameters / 1e6).toFixed(1)}M parameters, ${formatBytes(e.checkpointBytes)} on disk; ` +
            `needs ${formatBytes(e.totalBytes)} as float32${avail}`,
        );
        bar.start(Math.ceil(e.checkpointBytes / 1e6), 'loading MB');
      },
      onProgress: (p) => {
        if (shown) bar.update(Math.ceil(p.bytesDone / 1e6));
      },
    });
  } finally {
    bar.stop();
  }
}

/** A progress bar per downloaded file (KiB), on a TTY only, never with --json or --quiet. */
export function downloadProgress(g: GlobalOptions): {
  onProgress: (p: DownloadProgress) => void;
  stop: () => void;
} {
  const bar = createProgress(g);
  let current = '';
  const announced = new Set<string>();
  return {
    onProgress: (p) => {
      if (!announced.has(p.repoId)) {
        announced.add(p.repoId);
        note(g, `downloading ${p.repoId} into ${hubCacheDir()}`);
      }
      const key = `${p.repoId}/${p.filename}`;
      if (key !== current) {
        current = key;
        const n = p.count > 1 ? ` (${p.index + 1}/${p.count})` : '';
        bar.start(Math.max(1, Math.ceil(p.total / 1024)), `${p.filename}${n} KiB`);
      }
      bar.update(Math.ceil(p.bytes / 1024));
    },
    stop: () => bar.stop(),
  };
}

/** The package's version, from the package.json above this file (src/cli or dist/src/cli). */
export function packageVersion(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'package.json');
    if (fs.existsSync(file)) {
      const pkg = JSON.parse(fs.readFileSync(file, 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sonde' && pkg.version) return pkg.version;
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

// ---------------------------------------------------------------------------------------------------------
// Argument parsers (commander argParsers: they throw InvalidArgumentError, reported as one line)

/** An integer in [min, max], written in decimal. */
export function intArg(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const v = value.trim();
    const n = Number(v);
    if (!/^\+?\d+$/.test(v) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `in [${min}, ${max}]`;
      throw new InvalidArgumentError(`Expected an integer ${range}.`);
    }
    return n;
  };
}

/** A finite number >= 0. */
export function temperatureArg(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) {
    throw new InvalidArgumentError('Expected a finite number >= 0 (0 = greedy).');
  }
  return n;
}

/** A number in (0, 1]. */
export function topPArg(value: string): number {
  const n = Number(value.trim());
  if (value.trim() === '' || !(n > 0 && n <= 1))
    throw new InvalidArgumentError('Expected a number in (0, 1].');
  return n;
}

/** Token ids separated by commas or spaces: "1,403,407". */
export function idListArg(value: string): number[] {
  const parts = value.split(/[\s,]+/).filter((s) => s !== '');
  if (parts.length === 0) throw new InvalidArgumentError('Expected token ids, e.g. 1,403,407.');
  return parts.map((p) => {
    if (!/^\d+$/.test(p) || !Number.isSafeInteger(Number(p))) {
      throw new InvalidArgumentError(`'${p}' is not a token id (a non-negative integer).`);
    }
    return Number(p);
  });
}

/** An attention head: layer and head index. */
export interface HeadRef {
  layer: number;
  head: number;
}

/** A head as printed everywhere: L2H6. */
export function fmtHead(h: HeadRef): string {
  return `L${h.layer}H${h.head}`;
}

/** A head as printed (L2H6, case-insensitive) or as LAYER.HEAD (2.6). */
export function headArg(value: string): HeadRef {
  const m = /^L(\d+)H(\d+)$/i.exec(value.trim()) ?? /^(\d+)\.(\d+)$/.exec(value.trim());
  if (!m) throw new InvalidArgumentError('Expected a head as LxHy, e.g. L1H2 (or 1.2).');
  return { layer: Number(m[1]), head: Number(m[2]) };
}

/** For repeatable options: --hook a --hook b,c → ['a', 'b', 'c']. */
export function collectList(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), ...value.split(',').map((s) => s.trim())].filter((s) => s !== '');
}

// ---------------------------------------------------------------------------------------------------------
// Model input

export interface InputFlags {
  prompt?: string;
  tokens?: number[];
  prependBos?: boolean;
  /** --truncate: which tokens of an input longer than the context to keep (unset: refuse it). */
  truncate?: TruncateKeep;
  /** Where the note of a truncation goes (stderr, unless --quiet or --json). */
  onNote?: (line: string) => void;
}

/** The tokens `--truncate` keeps of an input longer than the model's context. */
export type TruncateKeep = 'last' | 'first';

/**
 * Adds the shared `--truncate [keep]` flag: an input longer than the model's context keeps its last n_ctx
 * tokens (`--truncate`, `--truncate last`) or its first (`--truncate first`) instead of being refused.
 */
export function truncateOption(): Option {
  return new Option(
    '--truncate [keep]',
    "an input longer than the model's context keeps its last n_ctx tokens (or: --truncate first)",
  ).argParser((value: string): TruncateKeep => {
    if (value === 'last' || value === 'first') return value;
    throw new InvalidArgumentError(`expected 'last' or 'first', got '${value}'`);
  });
}

export interface ResolvedInput {
  /** The text, or null when ids were given. */
  prompt: string | null;
  ids: number[];
  /** Whether a BOS token was prepended (text) or requested (ids). */
  prependBos: boolean;
}

/** The input flags of a command; a default --prompt does not count when --tokens is given. */
export function inputFlags(
  opts: Omit<InputFlags, 'truncate'> & { truncate?: TruncateKeep | true },
  cmd: Command,
): InputFlags {
  const explicitPrompt = cmd.getOptionValueSource('prompt') === 'cli';
  return {
    prompt: opts.tokens !== undefined && !explicitPrompt ? undefined : opts.prompt,
    tokens: opts.tokens,
    prependBos: opts.prependBos,
    ...truncateFlags(opts, cmd),
  };
}

/** What fitting a text to the context needs of a model: its tokenizer, context and BOS token. */
export type ContextModel = Pick<HookedTransformer, 'encode'> & {
  cfg: Pick<ModelConfig, 'nCtx' | 'bosTokenId'>;
};

/** What --truncate says (alone it means 'last') and where its note goes. */
export type TruncateFlags = Pick<InputFlags, 'truncate' | 'onNote'>;

/** The --truncate flag of a command (see truncateOption) as fitText and resolveInput take it. */
export function truncateFlags(opts: { truncate?: TruncateKeep | true }, cmd: Command): TruncateFlags {
  return {
    truncate: opts.truncate === true ? 'last' : opts.truncate,
    onNote: (line) => note(globalsOf(cmd), line),
  };
}

/**
 * A text a command runs (a --clean prompt, a line of a --data file) as token ids, encoded as the model's
 * tokenizer does, no longer than the context: refused past it, or cut as --truncate says (less `room`
 * positions kept free for generation). `what` names the text in the message: '--clean'.
 */
export function fitText(
  model: ContextModel,
  text: string,
  flags: TruncateFlags,
  what: string,
  room = 0,
): number[] {
  return fitContext(model, model.encode(text), flags, room, what);
}

/**
 * Text (--prompt, encoded with the model's tokenizer) or ids (--tokens) to token ids, no more than the
 * model's context: longer input is refused, or cut by --truncate to the context less `room` positions
 * (kept free for generation).
 */
export function resolveInput(
  model: HookedTransformer,
  flags: InputFlags,
  defaultPrompt?: string,
  room = 0,
): ResolvedInput {
  const input = encodeInput(model, flags, defaultPrompt);
  return { ...input, ids: fitContext(model, input.ids, flags, room) };
}

/** `ids` cut to the context less `room` as --truncate says, or a UsageError naming the flag. */
function fitContext(
  model: ContextModel,
  ids: number[],
  flags: TruncateFlags,
  room: number,
  name = 'the input',
): number[] {
  const nCtx = model.cfg.nCtx;
  const max = Math.max(1, nCtx - room);
  if (ids.length <= (flags.truncate === undefined ? nCtx : max)) return ids;
  const what = `${name} has ${ids.length} tokens, more than the model's context of ${nCtx}`;
  if (flags.truncate === undefined) {
    const leave = max < nCtx ? ` and leave ${nCtx - max} to generate` : '';
    throw new UsageError(
      `${what}: shorten it, or pass --truncate to keep its last ${max} tokens${leave} (--truncate first keeps the first ${max})`,
    );
  }
  const fits = room > 0 && ids.length <= nCtx ? ` less ${room} to generate` : '';
  const bos = model.cfg.bosTokenId;
  let kept: number[];
  let which: string;
  if (flags.truncate === 'first') {
    kept = ids.slice(0, max);
    which = `the first ${max} (dropped ${ids.length - max} from the end)`;
  } else if (bos !== null && ids[0] === bos && max > 1) {
    // The BOS token stays first: models attend to it as a sink.
    kept = [bos, ...ids.slice(ids.length - (max - 1))];
    which = `the BOS token and the last ${max - 1} (dropped ${ids.length - max} after BOS)`;
  } else {
    kept = ids.slice(ids.length - max);
    which = `the last ${max} (dropped ${ids.length - max} from the start)`;
  }
  flags.onNote?.(`note: ${what}${fits}; --truncate kept ${which}`);
  return kept;
}

function encodeInput(model: HookedTransformer, flags: InputFlags, defaultPrompt?: string): ResolvedInput {
  if (flags.prompt !== undefined && flags.tokens !== undefined) {
    throw new UsageError('give either --prompt or --tokens, not both');
  }
  const bos = model.cfg.bosTokenId;
  if (flags.tokens !== undefined) {
    const ids = [...flags.tokens];
    if (flags.prependBos === true) {
      if (bos === null) throw new UsageError('--prepend-bos: this model has no BOS token');
      if (ids[0] !== bos) ids.unshift(bos);
    }
    return { prompt: null, ids, prependBos: flags.prependBos === true };
  }
  const prompt = flags.prompt ?? defaultPrompt;
  if (prompt === undefined) throw new UsageError('missing --prompt TEXT (or --tokens IDS)');
  const tok = model.tokenizer;
  if (!tok) {
    throw new UsageError(
      `model '${model.source}' has no tokenizer: pass token ids with --tokens 1,2,3 instead of --prompt`,
    );
  }
  const prependBos = flags.prependBos ?? tok.prependBosDefault;
  const ids = model.encode(prompt, { prependBos });
  if (ids.length === 0) throw new UsageError('the prompt has no tokens (give some text, or --prepend-bos)');
  return { prompt, ids, prependBos };
}

/** Checks hook names against the model's hook points; unknown → HookError with suggestions. */
export function validateHookNames(names: string[], known: string[]): void {
  for (const name of names) {
    if (known.includes(name)) continue;
    const near = suggestHooks(name, known);
    throw new HookError(
      `unknown hook point '${name}'${near.length ? `; did you mean ${near.map((n) => `'${n}'`).join(', ')}?` : ''}` +
        ` (list them with 'sonde hooks')`,
    );
  }
}

/** Up to three hook names close to `name`: same name in other layers, same suffix, then edit distance. */
export function suggestHooks(name: string, known: string[]): string[] {
  const layerOf = (n: string) => Number(/^blocks\.(\d+)\./.exec(n)?.[1] ?? NaN);
  const stripLayer = (n: string) => n.replace(/^blocks\.\d+\./, '');
  const suffix = name.split('.').pop() ?? '';
  let candidates = known.filter((k) => stripLayer(k) === stripLayer(name));
  if (!candidates.length) candidates = known.filter((k) => suffix !== '' && k.endsWith(suffix));
  if (!candidates.length) {
    const limit = Math.max(3, Math.floor(name.length / 3));
    return known
      .map((k) => ({ k, d: editDistance(name, k) }))
      .filter(({ d }) => d <= limit)
      .sort((a, b) => a.d - b.d)
      .slice(0, 3)
      .map(({ k }) => k);
  }
  const layer = layerOf(name);
  if (Number.isFinite(layer)) {
    const dist = (k: string) => Math.abs((Number.isFinite(layerOf(k)) ? layerOf(k) : -1) - layer);
    candidates = [...candidates].sort((a, b) => dist(a) - dist(b));
  }
  return candidates.filter((k) => k !== name).slice(0, 3);
}

// ---------------------------------------------------------------------------------------------------------
// Model summaries

/** Parameters, counting tied embeddings once (W_U is a transposed copy of W_E). */
export function parameterCount(model: HookedTransformer): number {
  const seen = new Set<Tensor>();
  let n = 0;
  for (const [name, t] of model.weights) {
    if (seen.has(t)) continue;
    seen.add(t);
    if (name === 'unembed.W_U' && model.cfg.tiedEmbeddings && model.weights.has('embed.W_E')) continue;
    n += t.size;
  }
  return n;
}

export function tokenizerSummary(model: HookedTransformer): {
  kind: string;
  vocabSize: number;
  bosId: number | null;
  eosId: number | null;
  prependBosDefault: boolean;
} | null {
  const t = model.tokenizer;
  if (!t) return null;
  return {
    kind: t.kind,
    vocabSize: t.vocabSize,
    bosId: t.bosId,
    eosId: t.eosId,
    prependBosDefault: t.prependBosDefault,
  };
}

// ---------------------------------------------------------------------------------------------------------
// Predictions

export type { Prediction } from '../methods/predictions.js';

// ---------------------------------------------------------------------------------------------------------
// Activation statistics

export interface TensorStats {
  shape: number[];
  dtype: string;
  mean: number;
  std: number;
  min: number;
  max: number;
  absMax: number;
  /** Entries left out of the statistics: -inf in masked attention scores, NaN. */
  nonFinite: number;
}

/** Mean, std (population), min, max and max |x| over the finite entries, in float64. */
export async function tensorStats(t: Tensor): Promise<TensorStats> {
  const d = (await t.data()) as ArrayLike<number | bigint>;
  let n = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  let nonFinite = 0;
  for (let i = 0; i < d.length; i++) {
    const v = Number(d[i]);
    if (!Number.isFinite(v)) {
      nonFinite++;
      continue;
    }
    n++;
    sum += v;
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const mean = n ? sum / n : NaN;
  let ss = 0;
  for (let i = 0; i < d.length; i++) {
    const v = Number(d[i]);
    if (Number.isFinite(v)) ss += (v - mean) * (v - mean);
  }
  return {
    shape: [...t.shape],
    dtype: t.dtype,
    mean,
    std: n ? Math.sqrt(ss / n) : NaN,
    min: n ? min : NaN,
    max: n ? max : NaN,
    absMax: n ? Math.max(Math.abs(min), Math.abs(max)) : NaN,
    nonFinite,
  };
}

/** The axis that indexes (query) positions, from the model's hook table; 1 for other points (SAE points). */
export function positionAxis(cfg: ModelConfig, hook: string, t: Tensor): number {
  const spec = hookSpec(cfg, hook);
  if (spec) return positionAxisOf(spec);
  return t.rank >= 2 ? 1 : 0;
}

/** L2 norm of everything at each index of `axis` (finite entries only), summed over the batch. */
export async function normsAlong(t: Tensor, axis: number): Promise<number[]> {
  const d = (await t.data()) as ArrayLike<number | bigint>;
  const n = t.shape[axis] ?? 1;
  let inner = 1;
  for (let i = axis + 1; i < t.rank; i++) inner *= t.shape[i]!;
  const ss = new Float64Array(n);
  for (let i = 0; i < d.length; i++) {
    const v = Number(d[i]);
    if (Number.isFinite(v)) ss[Math.floor(i / inner) % n] += v * v;
  }
  return Array.from(ss, Math.sqrt);
}

// ---------------------------------------------------------------------------------------------------------
// Output

export function out(line = ''): void {
  process.stdout.write(line + '\n');
}

/** A note on stderr (not with --quiet or --json). */
export function note(g: GlobalOptions, line: string): void {
  if (!g.quiet && !g.json) process.stderr.write(line + '\n');
}

/** A caveat about the results, on stderr even with --quiet or --json (the numbers are weaker than they look). */
export function warn(line: string): void {
  process.stderr.write(`sonde: warning: ${line}\n`);
}

export function printJson(doc: unknown): void {
  process.stdout.write(toJson(doc) + '\n');
}

/**
 * JSON with two-space indentation, except that arrays of numbers/strings and small flat objects stay on
 * one line (so nested activation values read as rows). Non-finite numbers become null.
 */
export function toJson(value: unknown, indent = ''): string {
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    value = Array.from(value as unknown as ArrayLike<number | bigint>, Number);
  }
  if (value === null || value === undefined || typeof value !== 'object') return scalarJson(value);
  const inner = indent + '  ';
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    if (value.every(isScalar)) {
      // Numbers stay on one line however many; strings only while they fit.
      const flat = `[${value.map(scalarJson).join(', ')}]`;
      if (value.every((v) => typeof v !== 'string') || flat.length + indent.length <= 110) return flat;
    }
    return `[\n${value.map((v) => inner + toJson(v, inner)).join(',\n')}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>).filter(
    ([, v]) => v !== undefined && typeof v !== 'function',
  );
  if (entries.length === 0) return '{}';
  if (entries.every(([, v]) => isScalar(v))) {
    const flat = `{ ${entries.map(([k, v]) => `${JSON.stringify(k)}: ${scalarJson(v)}`).join(', ')} }`;
    if (flat.length + indent.length <= 110) return flat;
  }
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${toJson(v, inner)}`).join(',\n')}\n${indent}}`;
}

function isScalar(v: unknown): boolean {
  return v === null || v === undefined || typeof v !== 'object';
}

function scalarJson(v: unknown): string {
  if (v === undefined) return 'null';
  if (typeof v === 'bigint') return v.toString();
  return JSON.stringify(v) ?? 'null';
}

/** A number for tables: 4 significant digits, exponent form when very small or large. */
export function fmt(x: number | null, digits = 4): string {
  if (x === null) return '-';
  if (!Number.isFinite(x)) return String(x);
  if (x === 0) return '0';
  const a = Math.abs(x);
  if (a >= 1e5 || a < 1e-3) return x.toExponential(digits - 2);
  return x.toPrecision(digits);
}

export function fmtPercent(p: number): string {
  if (p >= 0.9995) return '100%';
  if (p < 0.00005) return '<0.01%';
  return `${(p * 100).toFixed(p < 0.1 ? 2 : 1)}%`;
}

/** A token shown with its spaces and escapes: " Once", "\n". */
export function fmtToken(s: string, max = 18): string {
  const q = JSON.stringify(s);
  return q.length > max ? q.slice(0, max - 2) + '…"' : q;
}

/** Human-readable integers: 292,800 → 292.8K. */
export function fmtCount(n: number): string {
  if (n >= 1e9) return `${(n / 1e9).toFixed(2)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)}M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)}K`;
  return String(n);
}

export function fmtShape(shape: (number | string)[]): string {
  return `[${shape.join(', ')}]`;
}

/** Rows of cells as aligned columns; `right` marks right-aligned columns. */
export function table(rows: string[][], right: boolean[] = []): string[] {
  const widths: number[] = [];
  for (const r of rows) r.forEach((c, i) => (widths[i] = Math.max(widths[i] ?? 0, [...c].length)));
  return rows.map((r) =>
    r
      .map((c, i) => {
        if (i === r.length - 1 && !right[i]) return c;
        const pad = ' '.repeat(widths[i]! - [...c].length);
        return right[i] ? pad + c : c + pad;
      })
      .join('  ')
      .trimEnd(),
  );
}

// ---------------------------------------------------------------------------------------------------------
// Errors

/** One line for an error: SondeError and usage errors as they are, others marked as unexpected. */
export function errorMessage(err: unknown): string {
  let msg: string;
  if (err instanceof CommanderError) {
    msg = err.message.replace(/^error:\s*/i, '');
    if (err.code === 'commander.unknownCommand') msg += " (see 'sonde --help')";
  } else if (err instanceof SondeError) msg = err.message;
  else if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') msg = err.message;
  else if (err instanceof Error)
    msg = `unexpected ${err.name}: ${err.message} (rerun with --debug for the stack trace)`;
  else msg = `unexpected error: ${String(err)}`;
  return msg
    .replace(/\s*\n\s*/g, ' ')
    .replace(/\s+/g, ' ')
    .trim();
}

/** The kind of an error, for --json: usage mistakes, Sonde's own classes by name, system and internal errors. */
export function errorType(err: unknown): string {
  if (err instanceof CommanderError) return 'UsageError';
  if (err instanceof SondeError) return err.name;
  if (err instanceof Error && typeof (err as NodeJS.ErrnoException).code === 'string') return 'SystemError';
  return 'InternalError';
}

/**
 * Reports a failure: one line on stderr, or with --json one object on stdout,
 * {"error": {"type", "message"}}, so that a caller parsing stdout always gets JSON.
 */
export function reportError(err: unknown, flags: { debug: boolean; json: boolean }): void {
  if (flags.json) printJson({ error: { type: errorType(err), message: errorMessage(err) } });
  else process.stderr.write(`sonde: ${errorMessage(err)}\n`);
  if (flags.debug && err instanceof Error && err.stack) process.stderr.write(err.stack + '\n');
}
