// Monitors: a probe (or a direction at a hook) with a threshold, run over texts or alongside generation.
// It reports where it fires (text, position, token, score) and can stop generation.
//
// A probe is only meaningful where it was trained: a last-position probe saw the final token of whole
// texts, so a monitor reads it at the end of each text (or, while generating, at the end of the prompt
// and of each generated sentence: a generation cut by its token budget ends mid-sentence, where such a
// probe was never trained); a mean probe reads the mean of the text so far at those same ends; only an 'all' probe (trained on every token) and a bare direction score every position.
import { ShapeError } from '../errors.js';
import type { GenerateOptions } from '../hooks/generate.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ForwardHook } from '../hooks/hooks.js';
import { collectActivations, scoreRow, type Position, type Probe } from './probes.js';
import { unit } from './steering.js';

/**
 * A probe at a hook with the position rule it was trained with (default 'last', as `collectActivations`
 * and `sonde probe`), or a direction at a hook (score = activation · unit(direction), every position).
 */
export type MonitorSpec =
  | { hook: string; probe: Probe; position?: Position; threshold?: number }
  | { hook: string; direction: ArrayLike<number>; threshold: number };

export interface MonitorHit {
  text: number;
  position: number;
  token: string;
  score: number;
}

export interface MonitorReport {
  threshold: number;
  /** The position rule the scores follow. */
  position: Position;
  hits: MonitorHit[];
  /** Per text, one entry per token (BOS included when prepended): the score, or null where the rule reads none. */
  scores: (number | null)[][];
  tokens: string[][];
}

/** The position rule of a spec: a probe's own ('last' when unrecorded), 'all' for a direction. */
export function monitorPosition(spec: MonitorSpec): Position {
  return 'probe' in spec ? (spec.position ?? 'last') : 'all';
}

/**
 * Scores positions of one sequence in order: `next(x, off)` takes the activation at the next position
 * and returns the score the rule would give a text ending there (for 'mean', the running mean's score).
 */
function scorer(spec: MonitorSpec): {
  start: () => (x: ArrayLike<number>, off: number) => number;
  threshold: number;
} {
  const position = monitorPosition(spec);
  let score: (x: ArrayLike<number>, off: number) => number;
  let threshold: number;
  if ('probe' in spec) {
    const p = spec.probe;
    score = (x, off) => scoreRow(p, x, off);
    threshold = spec.threshold ?? p.threshold;
  } else {
    const u = unit(spec.direction);
    score = (x, off) => {
      let s = 0;
      for (let j = 0; j < u.length; j++) s += u[j]! * x[off + j]!;
      return s;
    };
    threshold = spec.threshold;
  }
  const start = () => {
    if (position !== 'mean') return score;
    let sum: Float64Array | null = null;
    let n = 0;
    return (x: ArrayLike<number>, off: number) => {
      const d = 'probe' in spec ? spec.probe.weights.length : spec.direction.length;
      sum ??= new Float64Array(d);
      n++;
      for (let j = 0; j < d; j++) sum[j]! += x[off + j]!;
      return score(
        Array.from(sum, (v) => v / n),
        0,
      );
    };
  };
  return { start, threshold };
}

/** Does a token end a sentence or line (a window end for text-level probes while generating)? */
function endsSentence(token: string): boolean {
  return /[.!?]["')\]]*\s*$/.test(token) || token.includes('\n');
}

/**
 * Scores every text by its probe's rule: every position ('all'), or the end of each text ('last': its
 * final token; 'mean': the mean over its tokens). Hits are the scored positions above the threshold.
 */
export async function runMonitor(
  model: HookedTransformer,
  texts: (string | number[])[],
  spec: MonitorSpec,
): Promise<MonitorReport> {
  const { start, threshold } = scorer(spec);
  const position = monitorPosition(spec);
  const X = await collectActivations(model, texts, spec.hook, { position: 'all' });
  const tokens = texts.map((t) => model.tokenStrings(t));
  const scores: (number | null)[][] = tokens.map((t) => t.map(() => null));
  const hits: MonitorHit[] = [];
  let next = start();
  for (let i = 0; i < X.rows; i++) {
    const t = X.textIndex[i]!;
    const p = X.position[i]!;
    if (p === 0) next = start();
    const s = next(X.data, i * X.dim);
    const last = i + 1 === X.rows || X.textIndex[i + 1] !== t;
    if (position !== 'all' && !last) continue;
    scores[t]![p] = s;
    if (s > threshold) hits.push({ text: t, position: p, token: tokens[t]![p] ?? '', score: s });
  }
  return { threshold, position, hits, scores, tokens };
}

export interface MonitoredGeneration {
  text: string;
  /** Prompt + generated ids. */
  tokens: number[];
  generated: number[];
  /** The position rule the scores follow. */
  position: Position;
  /**
   * Per position read by the model (prompt then generated; the last sampled token is never read): the
   * score, or null where the rule reads none ('last' and 'mean' read only the end of the prompt and of
   * each generated sentence).
   */
  scores: (number | null)[];
  /** Scored positions above the threshold (indices into `tokens`). */
  hits: { position: number; token: string; score: number; generated: boolean }[];
  /** True when generation was stopped because the monitor fired on a generated token. */
  stopped: boolean;
}

class StopSignal extends Error {}

/**
 * A forward hook at the monitor's hook that scores each new position as generation runs (with the KV
 * cache each step shows only the newest token). `onScore(score, above)` is called per position in order,
 * with the score a text ending there would get (for a 'mean' probe, the running mean's); which positions
 * count is the caller's rule (see `monitoredGeneration`). One hook follows one sequence.
 */
export function monitorHook(
  spec: MonitorSpec,
  onScore: (score: number, above: boolean) => void,
): ForwardHook {
  const { start, threshold } = scorer(spec);
  const next = start();
  return {
    name: spec.hook,
    fn: (x) => {
      if (x.rank !== 3 || x.shape[0] !== 1)
        throw new ShapeError(`monitorHook needs [1, pos, d], got [${x.shape}]`);
      const d = x.shape[2]!;
      // Read inside the forward: generation scores (and may stop) token by token. On a backend without
      // synchronous reads this needs a generation loop that awaits a per-step callback (src/hooks).
      const data = x.f32Sync();
      for (let p = 0; p < x.shape[1]!; p++) {
        const s = next(data, p * d);
        onScore(s, s > threshold);
      }
    },
  };
}

/**
 * Generates with the monitor alongside, scoring positions by the probe's rule (every position for 'all'
 * and directions; the end of the prompt and of each generated sentence for 'last' and
 * 'mean').
 * With `stopOnFire`, generation stops as soon as the monitor fires on a generated token: the hook throws
 * a private signal during the forward pass that reads that token, so the firing token is kept and nothing
 * after it is sampled. Firing on prompt positions is reported but does not stop.
 */
export async function monitoredGeneration(
  model: HookedTransformer,
  prompt: string | number[],
  spec: MonitorSpec,
  opts: Omit<GenerateOptions, 'onToken'> & { stopOnFire?: boolean } = {},
): Promise<MonitoredGeneration> {
  const position = monitorPosition(spec);
  const promptIds =
    typeof prompt === 'string' ? model.encode(prompt, { prependBos: opts.prependBos }) : [...prompt];
  const P = promptIds.length;
  const generated: number[] = [];
  const scores: (number | null)[] = [];
  const firedAt: number[] = [];
  let stopped = false;
  // The token at `pos` is known before the forward that reads it (it was sampled by the previous step).
  const token = (pos: number) => model.tokenStrings([pos < P ? promptIds[pos]! : generated[pos - P]!])[0]!;
  const counts = (pos: number) => position === 'all' || pos === P - 1 || endsSentence(token(pos));
  const hook = monitorHook(spec, (s, above) => {
    const pos = scores.length;
    if (!counts(pos)) return void scores.push(null);
    scores.push(s);
    if (above) firedAt.push(pos);
    if (above && opts.stopOnFire && pos >= P) throw new StopSignal();
  });
  try {
    await model.generate(promptIds, {
      ...opts,
      hooks: [...(opts.hooks ?? []), hook],
      onToken: (id) => void generated.push(id),
    });
  } catch (e) {
    if (!(e instanceof StopSignal)) throw e;
    stopped = true;
  }
  // When stopped, the forward that fired was reading the last generated token; nothing later was sampled.
  const tokens = [...promptIds, ...generated];
  const strings = model.tokenStrings(tokens);
  return {
    text: model.decode(tokens),
    tokens,
    generated,
    position,
    scores,
    hits: firedAt.map((p) => ({
      position: p,
      token: strings[p]!,
      score: scores[p]!,
      generated: p >= P,
    })),
    stopped,
  };
}
