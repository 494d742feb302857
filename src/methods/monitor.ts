// Monitors: a probe (or a direction at a hook) with a threshold, run over texts or alongside generation.
// It reports where it fires (text, position, token, score) and can stop generation.
import { ShapeError } from '../errors.js';
import type { GenerateOptions } from '../hooks/generate.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ForwardHook } from '../hooks/hooks.js';
import { collectActivations, scoreRow, type Probe } from './probes.js';
import { unit } from './steering.js';

/** A probe at a hook, or a direction at a hook (score = activation · unit(direction)). */
export type MonitorSpec =
  | { hook: string; probe: Probe; threshold?: number }
  | { hook: string; direction: ArrayLike<number>; threshold: number };

export interface MonitorHit {
  text: number;
  position: number;
  token: string;
  score: number;
}

export interface MonitorReport {
  threshold: number;
  hits: MonitorHit[];
  /** Every position's score, per text (BOS included when the tokenizer prepends it). */
  scores: number[][];
  tokens: string[][];
}

/** A scoring function over one activation vector, and the threshold it fires above. */
function scorer(spec: MonitorSpec): {
  score: (x: ArrayLike<number>, off: number) => number;
  threshold: number;
} {
  if ('probe' in spec) {
    const p = spec.probe;
    return { score: (x, off) => scoreRow(p, x, off), threshold: spec.threshold ?? p.threshold };
  }
  const u = unit(spec.direction);
  return {
    score: (x, off) => {
      let s = 0;
      for (let j = 0; j < u.length; j++) s += u[j]! * x[off + j]!;
      return s;
    },
    threshold: spec.threshold,
  };
}

/** Scores every position of every text; hits are the positions whose score is above the threshold. */
export function runMonitor(model: HookedTransformer, texts: string[], spec: MonitorSpec): MonitorReport {
  const { score, threshold } = scorer(spec);
  const X = collectActivations(model, texts, spec.hook, { position: 'all' });
  const scores: number[][] = texts.map(() => []);
  const tokens = texts.map((t) => model.tokenStrings(model.encode(t)));
  const hits: MonitorHit[] = [];
  for (let i = 0; i < X.rows; i++) {
    const s = score(X.data, i * X.dim);
    const t = X.textIndex[i]!;
    const p = X.position[i]!;
    scores[t]!.push(s);
    if (s > threshold) hits.push({ text: t, position: p, token: tokens[t]![p] ?? '', score: s });
  }
  return { threshold, hits, scores, tokens };
}

export interface MonitoredGeneration {
  text: string;
  /** Prompt + generated ids. */
  tokens: number[];
  generated: number[];
  /** Score at every position (prompt then generated; the last sampled token is not scored unless stopped). */
  scores: number[];
  /** Positions above the threshold (indices into `tokens`). */
  hits: { position: number; token: string; score: number; generated: boolean }[];
  /** True when generation was stopped because the monitor fired on a generated token. */
  stopped: boolean;
}

class StopSignal extends Error {}

/**
 * A forward hook at the monitor's hook that scores each new position as generation runs (with the KV
 * cache each step shows only the newest token). `onScore(score)` is called per position in order.
 */
export function monitorHook(
  spec: MonitorSpec,
  onScore: (score: number, fired: boolean) => void,
): ForwardHook {
  const { score, threshold } = scorer(spec);
  return {
    name: spec.hook,
    fn: (x) => {
      if (x.rank !== 3 || x.shape[0] !== 1)
        throw new ShapeError(`monitorHook needs [1, pos, d], got [${x.shape}]`);
      const d = x.shape[2]!;
      const data = x.f32();
      for (let p = 0; p < x.shape[1]!; p++) {
        const s = score(data, p * d);
        onScore(s, s > threshold);
      }
    },
  };
}

/**
 * Generates with the monitor alongside. With `stopOnFire`, generation stops as soon as the monitor fires
 * on a generated token: the hook throws a private signal during the forward pass that reads that token,
 * so the firing token is kept and nothing after it is sampled. Firing on prompt positions is reported but
 * does not stop.
 */
export function monitoredGeneration(
  model: HookedTransformer,
  prompt: string,
  spec: MonitorSpec,
  opts: Omit<GenerateOptions, 'onToken'> & { stopOnFire?: boolean } = {},
): MonitoredGeneration {
  const promptIds = model.encode(prompt, { prependBos: opts.prependBos });
  const generated: number[] = [];
  const scores: number[] = [];
  const firedAt: number[] = [];
  let stopped = false;
  const hook = monitorHook(spec, (s, fired) => {
    const pos = scores.length;
    scores.push(s);
    if (fired) firedAt.push(pos);
    if (fired && opts.stopOnFire && pos >= promptIds.length) throw new StopSignal();
  });
  try {
    model.generate(promptIds, {
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
    scores,
    hits: firedAt.map((p) => ({
      position: p,
      token: strings[p]!,
      score: scores[p]!,
      generated: p >= promptIds.length,
    })),
    stopped,
  };
}
