// Path patching (Wang et al. 2022, "Interpretability in the Wild", IOI; Goldowsky-Dill et al. 2023): the
// effect of sender heads on the output that flows only through chosen receivers (heads' q, k or v inputs, or
// the logits), everything else frozen to its clean value.
//
// 1. Run the clean and the corrupt prompt; cache every head's hook_z (and every hook_mlp_out).
// 2. Run the clean prompt with the senders' hook_z taken from the corrupt run and every other head's
//    hook_z (and every MLP output) frozen to its clean value; cache the receivers' chosen inputs
//    (hook_q / hook_k / hook_v of the receiver heads) - or, for receivers 'logits', keep the logits.
// 3. Run the clean prompt again, patching only the receivers' chosen inputs with their step-2 values, and
//    measure the metric. (For 'logits' the final residual stream of step 2 is the receiver, so step 2's
//    logits are the result.)
//
// Normalisation as activationPatching in the 'noise' direction:
//   value = (m_patched - m_corrupt) / (m_clean - m_corrupt)
// 1 = the path carries nothing of the corruption (no effect), 0 = the path alone destroys the clean
// behaviour as much as the full corruption does. Values can leave [0, 1].
import { resolveMetric } from './metric.js';
import { int64, toIds } from './tokens.js';
import { ShapeError, UsageError } from '../errors.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import type { ForwardHook } from '../hooks/hooks.js';
import { runModel } from '../hooks/run-model.js';

export interface HeadRef {
  layer: number;
  head: number;
}

/** Which input of the receiver heads carries the senders' effect. */
export type ReceiverInput = 'q' | 'k' | 'v';

export interface PathPatchingBase {
  /** Text (BOS prepended as the tokenizer does by default) or token ids. */
  clean: string | number[];
  /** Same number of tokens as `clean`. */
  corrupt: string | number[];
  /** Metric logit(answer) - logit(wrong) at the final position (tokens as text or ids)... */
  answer?: string | number;
  wrong?: string | number;
  /** ...or any metric of the logits [1, pos, vocab] of one run. */
  metric?: (logits: Tensor) => number;
  /**
   * Receiver heads, or 'logits' (the final residual stream: the senders' direct effect on the output).
   * Under grouped-query attention, a receiver head's k or v is its key/value head, which is shared by the
   * query heads of its group: patching it patches the whole group's keys or values.
   */
  receivers: HeadRef[] | 'logits';
  /** The receivers' input that is patched; required for receiver heads, ignored for 'logits'. */
  receiverInput?: ReceiverInput;
}

export interface PathPatchingOptions extends PathPatchingBase {
  /** Heads whose hook_z is taken from the corrupt run (all together). */
  senders: HeadRef[];
}

export interface PathPatchingSweepOptions extends PathPatchingBase {
  /** Patched runs per batched forward pass (default 32). */
  batchSize?: number;
}

interface Common {
  receivers: HeadRef[] | 'logits';
  receiverInput: ReceiverInput | null;
  metric: 'logit_diff' | 'custom';
  answer: { id: number; token: string } | null;
  wrong: { id: number; token: string } | null;
  cleanTokens: number[];
  corruptTokens: number[];
  cleanMetric: number;
  corruptMetric: number;
}

export interface PathPatchingResult extends Common {
  senders: HeadRef[];
  /** Metric of step 3 (the receivers patched). */
  patchedMetric: number;
  /** (patchedMetric - corruptMetric) / (cleanMetric - corruptMetric): 1 = no effect, 0 = destroyed. */
  value: number;
}

export interface PathPatchingSweepResult extends Common {
  /**
   * values[layer][head] for each single sender head, normalised as PathPatchingResult.value; NaN for heads
   * in layers that cannot reach the receivers (at or after the first receiver layer).
   */
  values: number[][];
  raw: number[][];
  /** Layers swept: 0 .. senderLayers-1. */
  senderLayers: number;
  forwardPasses: number;
}

/** Path patching of one set of sender heads (patched together). */
export function pathPatching(model: HookedTransformer, opts: PathPatchingOptions): PathPatchingResult {
  if (!Array.isArray(opts.senders) || opts.senders.length === 0)
    throw new UsageError('give at least one sender head');
  const setup = prepare(model, opts);
  for (const s of opts.senders) checkHead(model, s, 'sender');
  if (setup.receiverLayer !== null) {
    const late = opts.senders.find((s) => s.layer >= setup.receiverLayer!);
    if (late)
      throw new UsageError(
        `sender L${late.layer}H${late.head} is not before the first receiver layer ${setup.receiverLayer}: ` +
          'it has no path to the receivers',
      );
  }
  const m = runPaths(model, setup, [opts.senders], 1);
  const { common, denom } = setup;
  return {
    ...common,
    senders: opts.senders.map((s) => ({ ...s })),
    patchedMetric: m.metrics[0]!,
    value: (m.metrics[0]! - common.corruptMetric) / denom,
  };
}

/** Path patching of every single head in the layers before the receivers (all layers for 'logits'). */
export function pathPatchingSweep(
  model: HookedTransformer,
  opts: PathPatchingSweepOptions,
): PathPatchingSweepResult {
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UsageError(`batchSize must be an integer >= 1, got ${batchSize}`);
  const setup = prepare(model, opts);
  const { nLayers: L, nHeads: H } = model.cfg;
  const senderLayers = setup.receiverLayer ?? L;
  if (senderLayers === 0)
    throw new UsageError('the receivers are in layer 0: no earlier head can be a sender');
  const heads: HeadRef[] = [];
  for (let l = 0; l < senderLayers; l++) for (let h = 0; h < H; h++) heads.push({ layer: l, head: h });
  const raw = Array.from({ length: L }, () => new Array<number>(H).fill(NaN));
  let passes = 0;
  for (let i = 0; i < heads.length; i += batchSize) {
    const chunk = heads.slice(i, i + batchSize);
    const r = runPaths(
      model,
      setup,
      chunk.map((s) => [s]),
      chunk.length,
    );
    chunk.forEach((s, b) => (raw[s.layer]![s.head] = r.metrics[b]!));
    passes += r.passes;
  }
  const { common, denom } = setup;
  return {
    ...common,
    values: raw.map((row) => row.map((m) => (m - common.corruptMetric) / denom)),
    raw,
    senderLayers,
    forwardPasses: passes + 1,
  };
}

interface Setup {
  common: Common;
  denom: number;
  /** The lowest receiver layer, or null for 'logits'. */
  receiverLayer: number | null;
  cleanIds: number[];
  metricOf: (lg: Float32Array, b: number) => number;
  /** Clean and corrupt hook_z (and hook_mlp_out) of every layer, batch of two (row 0 clean, row 1 corrupt). */
  store: Map<string, Tensor>;
}

function prepare(model: HookedTransformer, opts: PathPatchingBase): Setup {
  const cleanIds = toIds(model, opts.clean);
  const corruptIds = toIds(model, opts.corrupt);
  const P = cleanIds.length;
  if (corruptIds.length !== P)
    throw new ShapeError(
      `clean and corrupt prompts must have the same number of tokens: clean has ${P}, corrupt has ${corruptIds.length}`,
    );

  let receiverInput: ReceiverInput | null = null;
  let receiverLayer: number | null = null;
  if (opts.receivers === 'logits') {
    // receiverInput is ignored.
  } else if (Array.isArray(opts.receivers) && opts.receivers.length > 0) {
    for (const r of opts.receivers) checkHead(model, r, 'receiver');
    if (opts.receiverInput !== 'q' && opts.receiverInput !== 'k' && opts.receiverInput !== 'v')
      throw new UsageError(
        `receiverInput must be 'q', 'k' or 'v' for receiver heads, got ${String(opts.receiverInput)}`,
      );
    receiverInput = opts.receiverInput;
    receiverLayer = Math.min(...opts.receivers.map((r) => r.layer));
  } else {
    throw new UsageError("receivers must be a non-empty list of heads or 'logits'");
  }

  const { answer, wrong, metricOf } = resolveMetric(model, opts, P);

  const store = new Map<string, Tensor>();
  const wanted = (n: string) => n.endsWith('.attn.hook_z') || n.endsWith('.hook_mlp_out');
  const lg = noGrad(() =>
    runModel(model, int64([cleanIds, corruptIds]), {
      hook: model.hookPoint({ cache: wanted, store }),
    }),
  ).f32Sync();
  const cleanMetric = metricOf(lg, 0);
  const corruptMetric = metricOf(lg, 1);
  const denom = cleanMetric - corruptMetric;
  if (!(Math.abs(denom) > 1e-9))
    throw new UsageError(
      `the metric is the same on the clean and the corrupt prompt (${cleanMetric}): nothing to normalise`,
    );
  return {
    common: {
      receivers: opts.receivers === 'logits' ? 'logits' : opts.receivers.map((r) => ({ ...r })),
      receiverInput,
      metric: opts.metric ? 'custom' : 'logit_diff',
      answer,
      wrong,
      cleanTokens: cleanIds,
      corruptTokens: corruptIds,
      cleanMetric,
      corruptMetric,
    },
    denom,
    receiverLayer,
    cleanIds,
    metricOf,
    store,
  };
}

/** Steps 2 and 3 for n sender sets at once (one batch row each); the metric of each. */
function runPaths(
  model: HookedTransformer,
  setup: Setup,
  senderSets: HeadRef[][],
  n: number,
): { metrics: number[]; passes: number } {
  const { cfg } = model;
  const { store, cleanIds, metricOf } = setup;
  const { nLayers: L, nHeads: H, nKvHeads: KV, dHead: dh } = cfg;
  const P = cleanIds.length;
  const tokens = int64(Array.from({ length: n }, () => cleanIds));
  const half = (name: string, row: number): Float32Array => {
    const d = store.get(name)!.f32Sync();
    const R = d.length / 2;
    return d.subarray(row * R, (row + 1) * R);
  };

  // Step 2: every hook_z (and hook_mlp_out) replaced: clean, except the senders' from corrupt.
  const fwd2: ForwardHook[] = [];
  for (let l = 0; l < L; l++) {
    const zName = `blocks.${l}.attn.hook_z`;
    fwd2.push({
      name: zName,
      fn: (x) => {
        const clean = half(zName, 0);
        const corrupt = half(zName, 1);
        const R = clean.length; // P * H * dh
        const data = new Float32Array(n * R);
        for (let b = 0; b < n; b++) {
          data.set(clean, b * R);
          for (const s of senderSets[b]!) {
            if (s.layer !== l) continue;
            for (let p = 0; p < P; p++) {
              const o = (p * H + s.head) * dh;
              data.set(corrupt.subarray(o, o + dh), b * R + o);
            }
          }
        }
        return new Tensor(data, x.shape);
      },
    });
    if (!cfg.attnOnly) {
      const mName = `blocks.${l}.hook_mlp_out`;
      fwd2.push({ name: mName, fn: (x) => new Tensor(repeat(half(mName, 0), n), x.shape) });
    }
  }
  const receivers = setup.common.receivers;
  const input = setup.common.receiverInput;
  const step2Store = new Map<string, Tensor>();
  const recvNames =
    receivers === 'logits'
      ? new Set<string>()
      : new Set(receivers.map((r) => `blocks.${r.layer}.attn.hook_${input!}`));
  const lg2 = noGrad(() =>
    runModel(model, tokens, {
      hook: model.hookPoint({ fwd: fwd2, cache: (nm) => recvNames.has(nm), store: step2Store }),
    }),
  ).f32Sync();
  if (receivers === 'logits') {
    return { metrics: Array.from({ length: n }, (_, b) => metricOf(lg2, b)), passes: 1 };
  }

  // Step 3: the clean run with only the receivers' inputs replaced by their step-2 values.
  const C = input === 'q' ? H : KV; // heads on the hook's head axis
  const group = H / KV;
  const byHook = new Map<string, Set<number>>();
  for (const r of receivers) {
    const name = `blocks.${r.layer}.attn.hook_${input!}`;
    const c = input === 'q' ? r.head : Math.floor(r.head / group);
    if (!byHook.has(name)) byHook.set(name, new Set());
    byHook.get(name)!.add(c);
  }
  const fwd3: ForwardHook[] = [...byHook].map(([name, comps]) => ({
    name,
    fn: (x) => {
      const data = x.f32Sync().slice();
      const src = step2Store.get(name)!.f32Sync();
      for (let b = 0; b < n; b++)
        for (let p = 0; p < P; p++)
          for (const c of comps) {
            const o = ((b * P + p) * C + c) * dh;
            data.set(src.subarray(o, o + dh), o);
          }
      return new Tensor(data, x.shape);
    },
  }));
  const lg3 = noGrad(() =>
    runModel(model, tokens, {
      hook: model.hookPoint({ fwd: fwd3 }),
    }),
  ).f32Sync();
  return { metrics: Array.from({ length: n }, (_, b) => metricOf(lg3, b)), passes: 2 };
}

function checkHead(model: HookedTransformer, h: HeadRef, what: string): void {
  const { nLayers, nHeads } = model.cfg;
  if (
    !Number.isInteger(h.layer) ||
    !Number.isInteger(h.head) ||
    h.layer < 0 ||
    h.layer >= nLayers ||
    h.head < 0 ||
    h.head >= nHeads
  )
    throw new UsageError(
      `${what} head L${h.layer}H${h.head} is not in the model (${nLayers} layers, ${nHeads} heads)`,
    );
}

function repeat(x: Float32Array, n: number): Float32Array {
  const out = new Float32Array(n * x.length);
  for (let b = 0; b < n; b++) out.set(x, b * x.length);
  return out;
}
