// A causal-scrubbing hypothesis (Chan et al. 2022): which senders matter to the logits and to each listed
// head's q, k and v inputs, and which feature of the input each such group of senders depends on. Read
// from JSON, or written in TypeScript with any feature function; checked against a model's graph here, so
// that scrubbing itself only sees indices.
import { readFileSync } from 'node:fs';
import { UsageError } from '../errors.js';
import type { CircuitGraph, Receiver } from './graph.js';

/** The features a hypothesis can name in JSON. */
export const FEATURES = ['token', 'prev_token', 'position', 'all', 'none'] as const;
export type FeatureName = (typeof FEATURES)[number];

/**
 * A feature of an example at a position: two examples agree on it at p when their keys are equal. Keys
 * are compared with ===.
 */
export type FeatureFn = (tokens: readonly number[], pos: number) => string | number;

/** What a receiver's claimed senders are computed on: an example agreeing on this feature. */
export interface ClaimSpec {
  from: string[];
  agree: FeatureName | FeatureFn;
}

export interface HeadSpec {
  q?: ClaimSpec;
  k?: ClaimSpec;
  v?: ClaimSpec;
}

/** A hypothesis as written: `{"output": ["a1.h0"], "heads": {"a1.h0": {"q": {...}, "k": {...}}}}`. */
export interface HypothesisSpec {
  output: string[];
  heads?: Record<string, HeadSpec>;
}

/**
 * A feature ready to sample with: 'all' keeps the current example, every other feature is a key function
 * ('none' and 'position' give every example of one length the same key at a position).
 */
export type Feature = { kind: 'all' } | { kind: 'key'; name: string; key: FeatureFn };

const BUILTIN: Record<Exclude<FeatureName, 'all'>, FeatureFn> = {
  token: (t, p) => t[p]!,
  // Position 0 has no previous token: every example agrees there.
  prev_token: (t, p) => (p > 0 ? t[p - 1]! : -1),
  position: (_, p) => p,
  none: () => 0,
};

/** One receiver's claim, by graph indices. */
export interface ReceiverClaim {
  /** Index into graph.receivers. */
  receiver: number;
  /** Claimed senders (indices into graph.senders), each computed on the agreeing example. */
  claimed: number[];
  /** Those of them that are listed heads: computed on it with their own inputs scrubbed in turn. */
  listed: number[];
  feature: Feature;
}

/** A hypothesis checked against a model's graph. */
export interface Hypothesis {
  /** The logits' claim (feature 'all': the current example). */
  output: ReceiverClaim;
  /** Per listed head (a sender index): the claims of its q, k and v receivers. */
  heads: Map<number, ReceiverClaim[]>;
}

function featureOf(agree: unknown, where: string): Feature {
  if (typeof agree === 'function')
    return { kind: 'key', name: agree.name || 'custom', key: agree as FeatureFn };
  if (typeof agree !== 'string' || !(FEATURES as readonly string[]).includes(agree))
    throw new UsageError(
      `${where}: unknown feature ${JSON.stringify(agree)}: "agree" is one of ${FEATURES.join(', ')}`,
    );
  if (agree === 'all') return { kind: 'all' };
  return { kind: 'key', name: agree, key: BUILTIN[agree as Exclude<FeatureName, 'all'>] };
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/**
 * Checks a hypothesis against the graph: every name a node of the model, every listed node a head, every
 * claimed sender upstream of its receiver, every listed head reached from the output. `where` names the
 * hypothesis in errors (its file).
 */
export function compileHypothesis(graph: CircuitGraph, spec: unknown, where = 'hypothesis'): Hypothesis {
  if (!isObject(spec))
    throw new UsageError(`${where}: expected an object like {"output": ["a1.h0"], "heads": {...}}`);
  const unknown = Object.keys(spec).filter((k) => k !== 'output' && k !== 'heads');
  if (unknown.length)
    throw new UsageError(`${where}: unknown key '${unknown[0]}' (a hypothesis has "output" and "heads")`);
  const senderIndex = new Map(graph.senders.map((s, i) => [s.name, i] as const));
  const receiverIndex = new Map(graph.receivers.map((r, i) => [r.name, i] as const));
  const heads = graph.senders.filter((s) => s.kind === 'head');
  const headRange = `${heads[0]?.name ?? 'none'} .. ${heads[heads.length - 1]?.name ?? 'none'}`;
  const sendersNamed = (from: unknown, at: string): number[] => {
    if (!Array.isArray(from) || from.some((f) => typeof f !== 'string'))
      throw new UsageError(`${at}: expected a list of node names like ["input", "a0.h1"]`);
    const seen = new Set<number>();
    return (from as string[]).map((name) => {
      const i = senderIndex.get(name);
      if (i === undefined)
        throw new UsageError(
          `${at}: '${name}' is not a node of this model (nodes: input, heads ${headRange}` +
            `${graph.senders.some((s) => s.kind === 'mlp') ? ', MLPs m0 ..' : ''})`,
        );
      if (seen.has(i)) throw new UsageError(`${at}: '${name}' is named twice`);
      seen.add(i);
      return i;
    });
  };

  const output = sendersNamed(spec.output, `${where}: "output"`);
  const headsSpec = spec.heads ?? {};
  if (!isObject(headsSpec))
    throw new UsageError(`${where}: "heads" must be an object of head names, like {"a1.h0": {"q": ...}}`);
  const listed = new Map<number, ReceiverClaim[]>();
  // A KV head's receivers are shared by the query heads of its group: their claims must agree.
  const kvClaims = new Map<number, { head: string; text: string }>();
  for (const [name, hs] of Object.entries(headsSpec)) {
    const s = senderIndex.get(name);
    const sender = s === undefined ? undefined : graph.senders[s]!;
    if (!sender || sender.kind !== 'head')
      throw new UsageError(
        sender
          ? `${where}: "heads": '${name}' is not a head; only heads are listed (a claimed ${sender.kind} is computed exactly)`
          : `${where}: "heads": '${name}' is not a head of this model (heads ${headRange})`,
      );
    if (!isObject(hs))
      throw new UsageError(`${where}: "heads"."${name}": expected {"q": ..., "k": ..., "v": ...}`);
    const bad = Object.keys(hs).filter((k) => k !== 'q' && k !== 'k' && k !== 'v');
    if (bad.length)
      throw new UsageError(`${where}: "heads"."${name}": unknown key '${bad[0]}' (use q, k and v)`);
    const claims: ReceiverClaim[] = [];
    for (const kind of ['q', 'k', 'v'] as const) {
      const at = `${where}: "heads"."${name}".${kind}`;
      const r = receiverOf(graph, receiverIndex, sender.layer, sender.head!, kind);
      const receiver = graph.receivers[r]!;
      const c = hs[kind];
      // An input the hypothesis says nothing about is claimed to depend on nothing: all of it resampled.
      const claim: ClaimSpec = c === undefined ? { from: [], agree: 'none' } : (c as ClaimSpec);
      if (!isObject(claim)) throw new UsageError(`${at}: expected {"from": [...], "agree": "token"}`);
      const extra = Object.keys(claim).filter((k) => k !== 'from' && k !== 'agree');
      if (extra.length)
        throw new UsageError(`${at}: unknown key '${extra[0]}' (a claim has "from" and "agree")`);
      if (claim.agree === undefined)
        throw new UsageError(`${at}: give "agree" (one of ${FEATURES.join(', ')})`);
      const claimed = sendersNamed(claim.from, `${at} "from"`);
      for (const i of claimed) checkUpstream(graph, i, receiver, at);
      claims.push({ receiver: r, claimed, listed: [], feature: featureOf(claim.agree, `${at} "agree"`) });
      if (kind !== 'q') {
        const text = `${JSON.stringify(claim.from)}|${typeof claim.agree === 'function' ? claim.agree.toString() : String(claim.agree)}`;
        const other = kvClaims.get(r);
        if (other && other.text !== text)
          throw new UsageError(
            `${where}: ${other.head} and ${name} share the ${kind} input ${receiver.name} (grouped-query attention) but claim different things for it`,
          );
        kvClaims.set(r, { head: name, text });
      }
    }
    listed.set(s!, claims);
  }
  const isListed = (i: number) => listed.has(i);
  const outputClaim: ReceiverClaim = {
    receiver: graph.receivers.length - 1,
    claimed: output,
    listed: output.filter(isListed),
    feature: { kind: 'all' },
  };
  for (const claims of listed.values()) for (const c of claims) c.listed = c.claimed.filter(isListed);

  // Every listed head must be reached from the output through claims, or the hypothesis says nothing of it.
  const reached = new Set<number>();
  const visit = (i: number) => {
    if (reached.has(i)) return;
    reached.add(i);
    for (const c of listed.get(i) ?? []) c.listed.forEach(visit);
  };
  outputClaim.listed.forEach(visit);
  for (const i of listed.keys())
    if (!reached.has(i))
      throw new UsageError(
        `${where}: "heads" lists ${graph.senders[i]!.name}, but neither "output" nor a listed head's "from" claims it`,
      );
  return { output: outputClaim, heads: listed };
}

function receiverOf(
  graph: CircuitGraph,
  index: Map<string, number>,
  layer: number,
  head: number,
  kind: 'q' | 'k' | 'v',
): number {
  if (kind === 'q') return index.get(`a${layer}.h${head}<q>`)!;
  const nHeads = graph.receivers.filter((r) => r.layer === layer && r.kind === 'q').length;
  const nKv = graph.receivers.filter((r) => r.layer === layer && r.kind === kind).length;
  return index.get(`a${layer}.h${Math.floor(head / (nHeads / nKv))}<${kind}>`)!;
}

function checkUpstream(graph: CircuitGraph, sender: number, receiver: Receiver, at: string): void {
  if (sender < receiver.upstream) return;
  throw new UsageError(
    `${at}: ${receiver.name} cannot read ${graph.senders[sender]!.name}: only the input and earlier layers are upstream of it`,
  );
}

/** Parses a hypothesis file (JSON); errors name the file. */
export function readHypothesis(file: string): unknown {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read the hypothesis file '${file}'`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new UsageError(`${file}: not valid JSON (${(e as Error).message})`);
  }
}
