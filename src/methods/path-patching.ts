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
import { blend, indexTensor, selectionMask, take } from '../engine/ops/intervene.js';
import { expand } from '../engine/ops/shape.js';
import { noGrad, type Tensor } from '../engine/tensor.js';
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
export async function pathPatching(
  model: HookedTransformer,
  opts: PathPatchingOptions,
): Promise<PathPatchingResult> {
  if (!Array.isArray(opts.senders) || opts.senders.length === 0)
    throw new UsageError('give at least one sender head');
  const setup = await prepare(model, opts);
  for (const s of opts.senders) checkHead(model, s, 'sender');
  if (setup.receiverLayer !== null) {
    const late = opts.senders.find((s) => s.layer >= setup.receiverLayer!);
    if (late)
      throw new UsageError(
        `sender L${late.layer}H${late.head} is not before the first receiver layer ${setup.receiverLayer}: ` +
          'it has no path to the receivers',
      );
  }
  const m = await runPaths(model, setup, [opts.senders], 1);
  const { common, denom } = setup;
  return {
    ...common,
    senders: opts.senders.map((s) => ({ ...s })),
    patchedMetric: m.metrics[0]!,
    value: (m.metrics[0]! - common.corruptMetric) / denom,
  };
}

/** Path patching of every single head in the layers before the receivers (all layers for 'logits'). */
export async function pathPatchingSweep(
  model: HookedTransformer,
  opts: PathPatchingSweepOptions,
): Promise<PathPatchingSweepResult> {
  const batchSize = opts.batchSize ?? 32;
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw new UsageError(`batchSize must be an integer >= 1, got ${batchSize}`);
  const setup = await prepare(model, opts);
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
    const r = await runPaths(
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

async function prepare(model: HookedTransformer, opts: PathPatchingBase): Promise<Setup> {
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
  const lg = await noGrad(() =>
    runModel(model, int64([cleanIds, corruptIds]), {
      hook: model.hookPoint({ cache: wanted, store }),
    }),
  ).f32();
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

/**
 * Step 2's hook on hook_z of layer l: every head frozen to its clean value ([1, pos, head, d_head] from the
 * cached batch of two), except row b's senders in this layer, which take their corrupt value. Built from
 * the cached activations with engine ops, so gradients flow to them.
 */
export function senderHook(
  layer: number,
  clean: Tensor,
  corrupt: Tensor,
  senderSets: HeadRef[][],
): ForwardHook {
  const heads = senderSets.map((set) => set.filter((s) => s.layer === layer).map((s) => s.head));
  return {
    name: `blocks.${layer}.attn.hook_z`,
    fn: (x) =>
      blend(
        expand(clean, x.shape),
        corrupt,
        selectionMask(
          x.shape,
          heads.map((h) => [null, h, null]),
        ),
      ),
  };
}

/**
 * Step 3's hook on a receiver input (hook_q/k/v [batch, pos, head, d_head]): the components `heads` take
 * their step-2 value (same batch), every other head keeps its value.
 */
export function receiverHook(name: string, step2: Tensor, heads: number[]): ForwardHook {
  return { name, fn: (x) => blend(x, step2, selectionMask(x.shape, [[null, heads, null]])) };
}

/** Steps 2 and 3 for n sender sets at once (one batch row each); the metric of each. */
async function runPaths(
  model: HookedTransformer,
  setup: Setup,
  senderSets: HeadRef[][],
  n: number,
): Promise<{ metrics: number[]; passes: number }> {
  const { cfg } = model;
  const { store, cleanIds, metricOf } = setup;
  const { nLayers: L, nHeads: H } = cfg;
  const tokens = int64(Array.from({ length: n }, () => cleanIds));
  // Row 0 (clean) or 1 (corrupt) of a cached activation [2, ...], as [1, ...].
  const half = (name: string, row: number): Tensor => take(store.get(name)!, 0, indexTensor([row]));

  // Step 2: every hook_z (and hook_mlp_out) replaced: clean, except the senders' from corrupt.
  const fwd2: ForwardHook[] = [];
  for (let l = 0; l < L; l++) {
    const zName = `blocks.${l}.attn.hook_z`;
    fwd2.push(senderHook(l, half(zName, 0), half(zName, 1), senderSets));
    if (!cfg.attnOnly) {
      const mName = `blocks.${l}.hook_mlp_out`;
      const clean = half(mName, 0);
      fwd2.push({ name: mName, fn: (x) => expand(clean, x.shape) });
    }
  }
  const receivers = setup.common.receivers;
  const input = setup.common.receiverInput;
  const step2Store = new Map<string, Tensor>();
  const recvNames =
    receivers === 'logits'
      ? new Set<string>()
      : new Set(receivers.map((r) => `blocks.${r.layer}.attn.hook_${input!}`));
  const lg2 = await noGrad(() =>
    runModel(model, tokens, {
      hook: model.hookPoint({ fwd: fwd2, cache: (nm) => recvNames.has(nm), store: step2Store }),
    }),
  ).f32();
  if (receivers === 'logits') {
    return { metrics: Array.from({ length: n }, (_, b) => metricOf(lg2, b)), passes: 1 };
  }

  // Step 3: the clean run with only the receivers' inputs replaced by their step-2 values.
  const group = H / cfg.nKvHeads;
  const byHook = new Map<string, Set<number>>();
  for (const r of receivers) {
    const name = `blocks.${r.layer}.attn.hook_${input!}`;
    const c = input === 'q' ? r.head : Math.floor(r.head / group); // heads on the hook's head axis
    if (!byHook.has(name)) byHook.set(name, new Set());
    byHook.get(name)!.add(c);
  }
  const fwd3 = [...byHook].map(([name, comps]) => receiverHook(name, step2Store.get(name)!, [...comps]));
  const lg3 = await noGrad(() =>
    runModel(model, tokens, {
      hook: model.hookPoint({ fwd: fwd3 }),
    }),
  ).f32();
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
