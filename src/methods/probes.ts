// Linear probes: activations at a hook point for labelled texts, logistic or linear probes trained in
// plain float64 JS (the data are small: a few hundred rows of d_model), held-out accuracy with a
// random-label control task, and a probe file format.
import fs from 'node:fs';
import { ShapeError, UsageError } from '../errors.js';
import { mean } from '../engine/ops/reduce.js';
import { concat, reshape, slice } from '../engine/ops/shape.js';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ForwardHook } from '../hooks/hooks.js';
import { tempSibling } from '../io/leftovers.js';

/** Which positions of a text give its row: the last token, every token (one row each), or their mean. */
export type Position = 'last' | 'all' | 'mean';

/** Rows of activations: `data` is [rows, dim] row-major. */
export interface Matrix {
  data: Float32Array;
  rows: number;
  dim: number;
  /** For each row, the text it came from and the position in that text (token index, BOS counted). */
  textIndex: number[];
  position: number[];
}

export interface CollectOptions {
  position?: Position;
  /** Extra forward hooks applied during the pass (e.g. a directional ablation); run before recording. */
  hooks?: ForwardHook[];
  prependBos?: boolean;
}

/** The activation at `hook` for each text or token ids (run one at a time: no padding). */
export async function collectActivations(
  model: HookedTransformer,
  texts: (string | number[])[],
  hook: string,
  opts: CollectOptions = {},
): Promise<Matrix> {
  const position = opts.position ?? 'last';
  if (!model.hookNames().includes(hook)) {
    // Let the model produce its usual message with suggestions.
    model.runWithHooks([0], { fwd: [{ name: hook, fn: () => {} }] });
  }
  // Each text's rows are selected on the engine ([rows, d]); all are read once at the end.
  const parts: Tensor[] = [];
  const textIndex: number[] = [];
  const positions: number[] = [];
  texts.forEach((text, t) => {
    let act: Tensor | null = null;
    const fwd: ForwardHook[] = [...(opts.hooks ?? []), { name: hook, fn: (a) => void (act = a) }];
    model.runWithHooks(text, { fwd, prependBos: opts.prependBos });
    const a = act as Tensor | null;
    if (!a) throw new ShapeError(`hook '${hook}' was not reached`);
    if (a.rank !== 3)
      throw new ShapeError(`collectActivations needs a [batch, pos, d] hook, got [${a.shape}]`);
    const P = a.shape[1]!;
    const d = a.shape[2]!;
    if (position === 'last') {
      parts.push(reshape(slice(a, 1, P - 1, P), [1, d]));
      textIndex.push(t);
      positions.push(P - 1);
    } else if (position === 'all') {
      parts.push(reshape(a, [P, d]));
      for (let p = 0; p < P; p++) {
        textIndex.push(t);
        positions.push(p);
      }
    } else {
      parts.push(mean(a, 1));
      textIndex.push(t);
      positions.push(-1);
    }
  });
  const dim = parts.length ? parts[0]!.shape[1]! : 0;
  const data = parts.length ? Float32Array.from(await concat(parts, 0).f32()) : new Float32Array(0);
  return { data, rows: textIndex.length, dim, textIndex, position: positions };
}

export type ProbeKind = 'logistic' | 'linear';

export interface TrainProbeOptions {
  kind?: ProbeKind;
  /** L2 penalty on the weights (in standardized feature units). Default 1e-3. */
  l2?: number;
  /** Full-batch Adam steps. Default 300. */
  epochs?: number;
  lr?: number;
  seed?: number;
  /** Fraction of rows held out (shuffled with `seed`). Default 0.25. */
  testFraction?: number;
  /** Explicit held-out rows (overrides testFraction), e.g. examples with unseen names. */
  testIndices?: number[];
}

export interface Probe {
  kind: ProbeKind;
  /** In raw activation units: score = sigmoid(w·x + b) (logistic) or w·x + b (linear, targets 0/1). */
  weights: Float32Array;
  bias: number;
  /** The score above which the probe says "label 1": 0.5 for both kinds. */
  threshold: number;
}

export interface ProbeResult extends Probe {
  trainAcc: number;
  testAcc: number;
  /** The same probe trained and tested on randomly permuted labels (the control task): ~0.5. */
  controlAcc: number;
  /** testAcc - controlAcc. */
  selectivity: number;
  /** weights / |weights|: the concept's direction as the probe sees it. */
  direction: Float32Array;
  trainSize: number;
  testSize: number;
  /** The held-out rows (indices into X), in order. */
  testRows: number[];
  /** What makes the numbers weak without making them wrong (a tiny held-out set). */
  warnings: string[];
}

/**
 * Refuses labels (one per text) no probe can be judged on: one label only, or under 2 texts of a label
 * (one to train on, one to hold out). Call it before collecting activations to fail early.
 */
export function checkProbeLabels(labels: number[], source = 'probe data'): void {
  const count = [0, 1].map((l) => labels.filter((v) => v === l).length);
  const few = count[0]! < 2 ? 0 : count[1]! < 2 ? 1 : null;
  if (few === null) return;
  const n = count[few]!;
  throw new UsageError(
    `${source} has ${n} text${n === 1 ? '' : 's'} with label ${few} (and ${count[1 - few]} with label ${1 - few}): ` +
      'a probe needs at least 2 texts of each label, one to train on and one to hold out',
  );
}

/** Below this many held-out texts a probe's accuracy moves in coarse steps: train, but say so. */
export const SMALL_HELD_OUT = 20;

/**
 * Trains a probe on rows of X with 0/1 labels, holding out a test split. Deterministic given the seed.
 * The split is by text (all rows of a text on one side, so 'all' positions do not leak) and stratified
 * by label; data with one label, or under two texts of a label, is refused (no probe can be judged).
 */
export function trainProbe(X: Matrix, y: number[], opts: TrainProbeOptions = {}): ProbeResult {
  if (y.length !== X.rows) throw new ShapeError(`${X.rows} rows but ${y.length} labels`);
  if (y.some((v) => v !== 0 && v !== 1)) throw new ShapeError('labels must be 0 or 1');
  const rng = new Rng(opts.seed ?? 0);
  const textLabel = new Map<number, number>();
  X.textIndex.forEach((t, i) => textLabel.set(t, y[i]!));
  const byLabel = [0, 1].map((l) => [...textLabel].filter(([, v]) => v === l).map(([t]) => t));
  checkProbeLabels([...textLabel.values()]);
  const warnings: string[] = [];
  let test: number[];
  if (opts.testIndices) test = [...opts.testIndices];
  else {
    const fraction = opts.testFraction ?? 0.25;
    if (!(fraction > 0 && fraction < 1))
      throw new UsageError(`test fraction must be between 0 and 1 (exclusive), got ${fraction}`);
    // Per label, a share of its texts (at least one, never all) goes to the held-out set.
    const held = new Set(
      byLabel.flatMap((texts) => {
        const order = shuffled(texts.length, rng).map((i) => texts[i]!);
        const n = Math.min(texts.length - 1, Math.max(1, Math.round(texts.length * fraction)));
        return order.slice(0, n);
      }),
    );
    test = X.textIndex.flatMap((t, i) => (held.has(t) ? [i] : []));
    if (held.size < SMALL_HELD_OUT)
      warnings.push(
        `the held-out set has only ${held.size} texts, so its accuracy moves in steps of ${fmtStep(held.size)}: ` +
          `use at least ${SMALL_HELD_OUT} held-out texts (more data or a larger test fraction) to trust it`,
      );
  }
  const testSet = new Set(test);
  const train = Array.from({ length: X.rows }, (_, i) => i).filter((i) => !testSet.has(i));
  if (new Set(train.map((i) => y[i])).size < 2)
    throw new UsageError('the training rows left after the held-out split do not have both labels');
  const probe = fit(X, y, train, opts);
  // Control task: the labels permuted, the same split and training.
  const perm = shuffled(X.rows, rng);
  const yc = perm.map((i) => y[i]!);
  const control = fit(X, yc, train, opts);
  const acc = (p: Probe, rows: number[], labels: number[]) => {
    if (rows.length === 0) return NaN;
    const s = probeScores(p, X);
    return rows.filter((i) => (s[i]! > p.threshold ? 1 : 0) === labels[i]).length / rows.length;
  };
  const testAcc = acc(probe, test, y);
  const controlAcc = acc(control, test, yc);
  let n = 0;
  for (const w of probe.weights) n += w * w;
  n = Math.sqrt(n) || 1;
  return {
    ...probe,
    trainAcc: acc(probe, train, y),
    testAcc,
    controlAcc,
    selectivity: testAcc - controlAcc,
    direction: probe.weights.map((w) => w / n),
    trainSize: train.length,
    testSize: test.length,
    testRows: [...test].sort((a, b) => a - b),
    warnings,
  };
}

function fmtStep(n: number): string {
  return String(Math.round((1 / n) * 1000) / 1000);
}

function shuffled(n: number, rng: Rng): number[] {
  const a = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = rng.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** Full-batch Adam on standardized features; the standardization is folded back into raw weights. */
function fit(X: Matrix, y: number[], rows: number[], opts: TrainProbeOptions): Probe {
  const kind = opts.kind ?? 'logistic';
  const l2 = opts.l2 ?? 1e-3;
  const epochs = opts.epochs ?? 300;
  const lr = opts.lr ?? 0.05;
  const D = X.dim;
  const N = rows.length;
  const mu = new Float64Array(D);
  const sd = new Float64Array(D);
  for (const i of rows) for (let j = 0; j < D; j++) mu[j]! += X.data[i * D + j]! / N;
  for (const i of rows) for (let j = 0; j < D; j++) sd[j]! += (X.data[i * D + j]! - mu[j]!) ** 2 / N;
  for (let j = 0; j < D; j++) sd[j] = Math.sqrt(sd[j]!) || 1;
  const Z = new Float64Array(N * D);
  rows.forEach((i, r) => {
    for (let j = 0; j < D; j++) Z[r * D + j] = (X.data[i * D + j]! - mu[j]!) / sd[j]!;
  });
  const w = new Float64Array(D + 1); // last entry: bias
  const m = new Float64Array(D + 1);
  const v = new Float64Array(D + 1);
  const g = new Float64Array(D + 1);
  const b1 = 0.9;
  const b2 = 0.999;
  for (let t = 1; t <= epochs; t++) {
    g.fill(0);
    for (let r = 0; r < N; r++) {
      let z = w[D]!;
      for (let j = 0; j < D; j++) z += w[j]! * Z[r * D + j]!;
      const pred = kind === 'logistic' ? 1 / (1 + Math.exp(-z)) : z;
      const err = (pred - y[rows[r]!]!) / N; // d(loss)/dz for BCE and for MSE/2
      for (let j = 0; j < D; j++) g[j]! += err * Z[r * D + j]!;
      g[D]! += err;
    }
    for (let j = 0; j < D; j++) g[j]! += l2 * w[j]!;
    for (let j = 0; j <= D; j++) {
      m[j] = b1 * m[j]! + (1 - b1) * g[j]!;
      v[j] = b2 * v[j]! + (1 - b2) * g[j]! * g[j]!;
      const mh = m[j]! / (1 - b1 ** t);
      const vh = v[j]! / (1 - b2 ** t);
      w[j]! -= (lr * mh) / (Math.sqrt(vh) + 1e-8);
    }
  }
  const weights = new Float32Array(D);
  let bias = w[D]!;
  for (let j = 0; j < D; j++) {
    weights[j] = w[j]! / sd[j]!;
    bias -= (w[j]! * mu[j]!) / sd[j]!;
  }
  return { kind, weights, bias, threshold: 0.5 };
}

/** The probe's score for each row: a probability (logistic) or the regression output (linear). */
export function probeScores(probe: Probe, X: Matrix): Float32Array {
  if (X.dim !== probe.weights.length)
    throw new ShapeError(`probe has ${probe.weights.length} weights but activations have dim ${X.dim}`);
  const out = new Float32Array(X.rows);
  for (let i = 0; i < X.rows; i++) out[i] = scoreRow(probe, X.data, i * X.dim);
  return out;
}

/** Score of the vector at data[offset .. offset + dim). */
export function scoreRow(probe: Probe, data: ArrayLike<number>, offset = 0): number {
  let z = probe.bias;
  const w = probe.weights;
  for (let j = 0; j < w.length; j++) z += w[j]! * data[offset + j]!;
  return probe.kind === 'logistic' ? 1 / (1 + Math.exp(-z)) : z;
}

/** Accuracy of a probe on labelled rows. */
export function probeAccuracy(probe: Probe, X: Matrix, y: number[]): number {
  const s = probeScores(probe, X);
  let ok = 0;
  for (let i = 0; i < X.rows; i++) if ((s[i]! > probe.threshold ? 1 : 0) === y[i]) ok++;
  return X.rows ? ok / X.rows : NaN;
}

// ---------------------------------------------------------------------------------------------------------
// Probe files

export interface ProbeFile extends Probe {
  hook: string;
  position: Position;
  /** Names of label 0 and label 1. */
  labels: [string, string];
  /** Free-form metrics recorded at training time (accuracies, sizes). */
  metrics?: Record<string, number>;
}

const FORMAT = 'sonde-probe';

/** Writes a probe as JSON, atomically (temporary file + rename). */
export function saveProbe(file: string, p: ProbeFile): void {
  const doc = {
    format: FORMAT,
    version: 1,
    hook: p.hook,
    position: p.position,
    kind: p.kind,
    labels: p.labels,
    threshold: p.threshold,
    bias: p.bias,
    weights: Array.from(p.weights),
    metrics: p.metrics ?? {},
  };
  const tmp = tempSibling(file);
  fs.writeFileSync(tmp, JSON.stringify(doc) + '\n');
  fs.renameSync(tmp, file);
}

export function loadProbe(file: string): ProbeFile {
  let doc: Record<string, unknown>;
  try {
    doc = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT')
      throw new UsageError(`probe file '${file}' not found`);
    throw new UsageError(`probe file '${file}' is not valid JSON`);
  }
  const bad = (what: string) => new UsageError(`probe file '${file}': ${what}`);
  if (doc.format !== FORMAT) throw bad(`not a Sonde probe (format must be '${FORMAT}')`);
  if (typeof doc.hook !== 'string') throw bad('missing hook');
  if (doc.kind !== 'logistic' && doc.kind !== 'linear') throw bad("kind must be 'logistic' or 'linear'");
  if (!Array.isArray(doc.weights) || doc.weights.length === 0 || !doc.weights.every(Number.isFinite))
    throw bad('weights must be a non-empty array of numbers');
  if (!Number.isFinite(doc.bias) || !Number.isFinite(doc.threshold))
    throw bad('bias and threshold must be numbers');
  const position = (doc.position ?? 'last') as Position;
  if (!['last', 'all', 'mean'].includes(position)) throw bad("position must be 'last', 'all' or 'mean'");
  const labels = Array.isArray(doc.labels) && doc.labels.length === 2 ? doc.labels : ['0', '1'];
  return {
    hook: doc.hook,
    position,
    kind: doc.kind,
    weights: Float32Array.from(doc.weights as number[]),
    bias: doc.bias as number,
    threshold: doc.threshold as number,
    labels: [String(labels[0]), String(labels[1])],
    metrics: (doc.metrics ?? {}) as Record<string, number>,
  };
}

/** Reads a JSONL file of {"text": string, "label": 0 | 1} lines. */
export function readLabelledJsonl(file: string): { texts: string[]; labels: number[] } {
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    throw new UsageError(`cannot read data file '${file}'`);
  }
  const texts: string[] = [];
  const labels: number[] = [];
  raw.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let o: { text?: unknown; label?: unknown };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      throw new UsageError(`${file}:${i + 1}: not valid JSON`);
    }
    if (typeof o.text !== 'string' || (o.label !== 0 && o.label !== 1))
      throw new UsageError(`${file}:${i + 1}: expected {"text": string, "label": 0 or 1}`);
    texts.push(o.text);
    labels.push(o.label);
  });
  if (texts.length === 0) throw new UsageError(`data file '${file}' has no examples`);
  return { texts, labels };
}
