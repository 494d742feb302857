// The SAE / transcoder trainer: a compiled step (forward, loss, backward as one ONNX graph), Adam with
// LR warm-up and decay, sparsity-coefficient warm-up, unit-norm decoder rows, b_dec initialised to the
// geometric median, dead latents tracked over a window of rows and revived (aux-k loss or resampling),
// atomic checkpoints with exact resume, and NaN detection that keeps the last good checkpoint.
import { div, exp, gt, log, maximum, mul, sqrt, sub, where } from '../engine/ops/elementwise.js';
import { min, sum } from '../engine/ops/reduce.js';
import { cast, gather, reshape, transpose } from '../engine/ops/shape.js';
import { matmul } from '../engine/ops/nn.js';
import { Rng } from '../engine/random.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import { TracedFunction } from '../engine/trace.js';
import { SondeError } from '../errors.js';
import {
  CheckpointError,
  CheckpointSettingsError,
  checkpointExists,
  checkResumeSettings,
  loadCheckpoint,
  saveCheckpoint,
  type CheckpointState,
  type RunSettings,
} from '../train/checkpoint.js';
import { Adam, clipGradNorm, type OptimizerState } from '../train/optimizers.js';
import { saeConfig, type SaeArchitecture, type SaeConfig } from './config.js';
import { REVIVE_WINDOWS, saeLoss, type LossSettings } from './losses.js';
import { geometricMedian } from './stats.js';
import { SparseAutoencoder } from './sae.js';

export class SaeTrainError extends SondeError {}

/** Graph inputs of a training step before the parameters: x, y, coef, dead, scale, longDead. */
const N_STEP_INPUTS = 6;

/** A source of batches [batchSize, dim] that can say where it is and be rebuilt there. */
export interface BatchStream {
  next(): Float32Array;
  state(): unknown;
}
export interface TrainingData {
  dIn: number;
  /** Target width (transcoders); dIn for an SAE. */
  dOut: number;
  /** Input batches, rebuilt from a saved state on resume. */
  input(batchSize: number, seed: number, state?: unknown): BatchStream;
  /** Transcoders: target batches row-aligned with input() for the same seed and state. */
  target?(batchSize: number, seed: number, state?: unknown): BatchStream;
  /** Up to n rows of inputs (and targets) for initial statistics. */
  sample(n: number): { input: Float32Array; target?: Float32Array };
}

export interface SaeTrainOptions {
  architecture: SaeArchitecture;
  /** Number of latents (d_sae). */
  width: number;
  hookName: string;
  hookNameOut?: string | null;
  /** topk / batchtopk. */
  k?: number;
  /** Rows to train on (the budget); several epochs when the data has fewer. */
  totalRows: number;
  batchSize?: number;
  lr?: number;
  lrWarmupSteps?: number;
  /** Fraction of steps at the end over which the LR decays linearly to 0. */
  lrDecayFraction?: number;
  /** Clip the global gradient norm to this (0 disables). */
  clipNorm?: number;
  /** L1 (standard, gated) or L0 (jumprelu) coefficient. */
  coefficient?: number;
  /** Fraction of steps over which the coefficient warms up from 0. */
  coefficientWarmupFraction?: number;
  /** 'unit': decoder rows renormalised each step; 'free': L1 weighted by decoder norms instead. */
  decoderNorm?: 'unit' | 'free';
  bDecInit?: 'geometric_median' | 'mean' | 'zeros';
  /** Scale inputs so their mean norm is sqrt(d_in) (SAELens's expected_average_only_in). */
  normalize?: boolean;
  /**
   * A latent that has not fired for this many rows counts as dead. Default: 2^17 rows; for TopK and
   * BatchTopK 1/128 of the budget (at least a batch), see topkDeadWindow.
   */
  deadWindowRows?: number;
  /**
   * topk/batchtopk: k starts at 8k (at most d_in / 2 and the width) and halves to k over this
   * fraction of the steps (0 disables). See annealedK.
   */
  kAnnealFraction?: number;
  /** topk/batchtopk: aux-k loss coefficient (0 disables). */
  auxKCoefficient?: number;
  kAux?: number;
  /**
   * standard/gated/jumprelu: resample dead latents every this many steps (0 disables; default: once
   * per dead window). TopK and BatchTopK revive theirs with the aux-k loss instead.
   */
  resampleEverySteps?: number;
  /** JumpReLU straight-through bandwidth and initial threshold. */
  bandwidth?: number;
  initThreshold?: number;
  transcoderSkip?: boolean;
  /**
   * Starting values for some parameters (training units: after input normalisation; JumpReLU as
   * log_threshold), e.g. to warm-start from an earlier SAE. The rest are initialised as usual.
   */
  initialParams?: Map<string, Tensor>;
  seed?: number;
  checkpointDir?: string;
  checkpointEverySteps?: number;
  /** Resume from checkpointDir when a checkpoint is there (default true). */
  resume?: boolean;
  /**
   * What identifies the run, recorded in checkpoints; a resume with other values is refused (default:
   * the training options).
   */
  settings?: RunSettings;
  /** Stop after this step (resumable later). */
  stopAfterStep?: number;
  metadata?: Record<string, unknown>;
  onStep?: (s: SaeStepInfo) => void;
  /** Called once, before the first step, when a checkpoint was resumed (with its step). */
  onResume?: (step: number) => void;
}

export interface SaeStepInfo {
  step: number;
  steps: number;
  rows: number;
  loss: number;
  mse: number;
  /** Mean active latents per row in this batch. */
  l0: number;
  deadFraction: number;
  lr: number;
  rowsPerSecond: number;
}

export interface SaeTrainResult {
  sae: SparseAutoencoder;
  steps: number;
  resumedFrom: number | null;
  history: { step: number; loss: number; mse: number; l0: number; deadFraction: number }[];
  /** log10 firing density of each latent over the last dead window. */
  logDensity: Float32Array;
}

/** Defaults that recover ground-truth features on the synthetic benchmark (see README, SAEs). */
export function defaultTrainOptions(
  arch: SaeArchitecture,
): Required<
  Omit<
    SaeTrainOptions,
    | 'architecture'
    | 'width'
    | 'hookName'
    | 'onStep'
    | 'onResume'
    | 'checkpointDir'
    | 'stopAfterStep'
    | 'metadata'
    | 'resume'
    | 'settings'
  >
> {
  return {
    hookNameOut: null,
    k: 32,
    totalRows: 1 << 20,
    batchSize: 1024,
    lr: 1e-2,
    lrWarmupSteps: 0,
    lrDecayFraction: 0.2,
    clipNorm: 1,
    coefficient: 0.5,
    coefficientWarmupFraction: 0.05,
    decoderNorm: arch === 'standard' ? 'free' : 'unit',
    bDecInit: 'geometric_median',
    normalize: true,
    deadWindowRows: 1 << 17,
    auxKCoefficient: 1 / 32,
    kAux: 512,
    kAnnealFraction: 0.25,
    resampleEverySteps: arch === 'topk' || arch === 'batchtopk' ? 0 : -1,
    bandwidth: 1e-3,
    initThreshold: 1e-3,
    transcoderSkip: false,
    initialParams: new Map(),
    seed: 0,
    checkpointEverySteps: 0,
  };
}

type Resolved = ReturnType<typeof defaultTrainOptions> & SaeTrainOptions;

/**
 * TopK's dead window: 1/128 of the training budget, at least one batch. Gao et al. count a latent dead
 * after 10M tokens without firing, a small fraction of their runs; a fixed window that long (2^17 rows)
 * in a run of ~1M rows lets latents sit unused for much of training before the aux-k loss reaches them,
 * and the rare half of the features is never learned (synthetic benchmark: MMCS 0.67). Shorter windows
 * recover more synthetic features (1/512: MMCS 0.95) but pull the rare live latents of a real model into
 * the aux-k loss (stories260K, k 32, width 2048: 958 of 2048 silent on held-out text vs 759 at 1/128).
 */
export function topkDeadWindow(totalRows: number, batchSize: number): number {
  return Math.max(batchSize, Math.round(totalRows / 128));
}

export async function trainSae(data: TrainingData, opts: SaeTrainOptions): Promise<SaeTrainResult> {
  // Gao et al.'s aux-k uses 512 latents on wide models; SAELens d_in / 2. Take the smaller.
  const kAux = Math.max(1, Math.min(512, Math.floor(data.dIn / 2)));
  const defaults = { ...defaultTrainOptions(opts.architecture), kAux };
  if (opts.architecture === 'topk' || opts.architecture === 'batchtopk')
    defaults.deadWindowRows = topkDeadWindow(opts.totalRows, opts.batchSize ?? defaults.batchSize);
  const o = { ...defaults, ...stripUndefined(opts) } as Resolved;
  validate(o);
  const isTranscoder = !!o.hookNameOut;
  if (isTranscoder && !data.target) throw new SaeTrainError('a transcoder needs target activations');
  const cfg: SaeConfig = saeConfig({
    architecture: o.architecture,
    dIn: data.dIn,
    dSae: o.width,
    dOut: data.dOut,
    hookName: o.hookName,
    hookNameOut: o.hookNameOut ?? null,
    k: o.architecture === 'topk' || o.architecture === 'batchtopk' ? o.k : null,
    normalizeActivations: o.normalize ? 'expected_average_only_in' : 'none',
    metadata: o.metadata ?? {},
  });
  const steps = Math.max(1, Math.ceil(o.totalRows / o.batchSize));
  if (o.resampleEverySteps < 0) o.resampleEverySteps = Math.max(1, Math.ceil(o.deadWindowRows / o.batchSize));

  // Initial statistics: input scale and b_dec (on the normalised target).
  const sample = data.sample(Math.min(1 << 16, Math.max(o.batchSize, 8192)));
  const inScale = o.normalize ? Math.sqrt(data.dIn) / meanNorm(sample.input, data.dIn) : 1;
  const targetRows = sample.target ?? sample.input;
  // A transcoder's target is scaled by the input's factor too, so the fold at save time is one scalar.
  const init = SparseAutoencoder.init(cfg, {
    seed: o.seed,
    skip: isTranscoder && o.transcoderSkip,
    threshold: o.initThreshold,
  });
  const params = new Map(init.params);
  if (o.architecture === 'jumprelu') {
    const t = params.get('threshold')!;
    params.delete('threshold');
    params.set('log_threshold', log(t));
  }
  if (o.bDecInit !== 'zeros') {
    const scaled = targetRows.map((v) => v * inScale);
    const center = o.bDecInit === 'mean' ? columnMean(scaled, data.dOut) : geometricMedian(scaled, data.dOut);
    params.set('b_dec', new Tensor(center, params.get('b_dec')!.shape));
  }
  for (const [n, t] of o.initialParams ?? []) {
    const p = params.get(n);
    if (!p || p.size !== t.size)
      throw new SaeTrainError(
        `initial parameter '${n}' [${t.shape}] does not match the SAE's ${p ? `[${p.shape}]` : 'parameters'}`,
      );
    params.set(n, reshape(cast(t, 'float32'), p.shape));
  }
  if (o.decoderNorm === 'unit') params.set('W_dec', normalizeRows(params.get('W_dec')!));

  const names = [...params.keys()];
  const rowsSinceFired = new Float32Array(o.width);
  const fires = new Float64Array(o.width);
  const rng = new Rng(o.seed);
  let step = 0;
  let resumedFrom: number | null = null;
  let inState: unknown;
  let outState: unknown;
  let history: SaeTrainResult['history'] = [];
  let batchThreshold = 0;
  const weightsForCheckpoint = () =>
    new Map([
      ...params,
      ['trainer.rows_since_fired', new Tensor(Float32Array.from(rowsSinceFired), [o.width])],
    ]);
  let resumedOptimizer: OptimizerState | null = null;
  const key = `sae:${cfg.architecture}:${cfg.dIn}x${cfg.dSae}x${cfg.dOut}:${names.join(',')}`;
  const runSettings = o.settings ?? defaultSettings(o);
  if (o.checkpointDir && (o.resume ?? true) && checkpointExists(o.checkpointDir)) {
    let ck: ReturnType<typeof loadCheckpoint>;
    const loaded = weightsForCheckpoint();
    try {
      ck = loadCheckpoint(o.checkpointDir, loaded, key);
      checkResumeSettings(o.checkpointDir, ck.state.step, ck.state.settings, runSettings);
    } catch (e) {
      if (e instanceof CheckpointSettingsError) throw e;
      if (!(e instanceof CheckpointError)) throw e;
      throw new SaeTrainError(`${e.message}: delete it to start over (sonde sae train: --no-resume)`);
    }
    for (const n of names) params.set(n, loaded.get(n)!);
    rowsSinceFired.set(await loaded.get('trainer.rows_since_fired')!.f32());
    resumedOptimizer = ck.optimizer;
    rng.setState(ck.state.rngState);
    step = ck.state.step;
    resumedFrom = step;
    o.onResume?.(step);
    const extra = ck.state.extra as unknown as CheckpointExtra;
    inState = extra.inState;
    outState = extra.outState;
    history = extra.history;
    batchThreshold = extra.batchThreshold;
    if (extra.inScale !== inScale) {
      // The scale is recomputed from the same sample; a different one means different data.
      throw new SaeTrainError(
        `checkpoint in '${o.checkpointDir}' was trained on other data (input scale ${extra.inScale} vs ${inScale})`,
      );
    }
  }
  const opt = new Adam(
    names.map((n) => params.get(n)!),
    { lr: o.lr, betas: [0.9, 0.999] },
  );
  if (resumedOptimizer) opt.loadState(resumedOptimizer);
  const inStream = data.input(o.batchSize, o.seed, inState);
  const outStream = isTranscoder ? data.target!(o.batchSize, o.seed, outState) : null;

  const settings: LossSettings = {
    architecture: o.architecture,
    k: cfg.k,
    applyBDecToInput: cfg.applyBDecToInput,
    l1DecoderNorm: o.decoderNorm === 'free',
    auxKCoefficient: o.auxKCoefficient,
    kAux: o.kAux,
    bandwidth: o.bandwidth,
  };
  // One compiled step per k (see annealedK) with the aux-k loss (some latent is dead) and without (the
  // common case, where it would add a masked top-k, a scatter and a matmul for nothing).
  const traced = new Map<string, TracedFunction>();
  // Outputs: loss, mse, l0 (sum of actives), fired [d_sae], min positive act, then one grad per param.
  const runStep = (inputs: Tensor[], withAux: boolean, kNow: number | null): Tensor[] => {
    const tensors = opt.params;
    const traceKey = `${withAux}:${kNow}`;
    const ready = traced.get(traceKey);
    if (ready) return ready.run([...inputs, ...tensors]);
    const stepSettings = { ...settings, k: kNow, auxKCoefficient: withAux ? settings.auxKCoefficient : 0 };
    for (const t of tensors) {
      t.requireGrad();
      t.grad = null;
    }
    const { fn, outputs } = TracedFunction.trace(
      (all) => {
        const [xRaw, yRaw, coef, dead, scale, longDead] = all as [
          Tensor,
          Tensor,
          Tensor,
          Tensor,
          Tensor,
          Tensor,
        ];
        const ps = new Map(names.map((n, i) => [n, all[N_STEP_INPUTS + i]!] as const));
        // Inputs are normalised in the graph (one fused multiply, not a JS loop per batch).
        const x = mul(xRaw, scale);
        const y = isTranscoder ? mul(yRaw, scale) : x;
        const parts = saeLoss(ps, stepSettings, { x, y, coef, dead, longDead });
        parts.loss.backward();
        const stats = firingStats(parts.acts, o.architecture === 'batchtopk');
        return [
          parts.loss.detach(),
          parts.mse.detach(),
          ...stats,
          ...names.map((_, i) => all[N_STEP_INPUTS + i]!.grad!),
        ];
      },
      [...inputs, ...tensors],
      { inlineLimit: 0 },
    );
    for (const t of tensors) {
      t.grad = null;
      t.requiresGrad = false;
    }
    traced.set(traceKey, fn);
    // Every step, the first included, runs the compiled graph: eager and compiled kernels round
    // differently, and a resumed run must repeat the straight run bit for bit.
    void outputs;
    return fn.run([...inputs, ...tensors]);
  };

  const kCap = Math.min(o.width, Math.floor(data.dIn / 2));
  const last = Math.min(steps, o.stopAfterStep ?? steps);
  const decayStart = Math.floor(steps * (1 - o.lrDecayFraction));
  const coefWarm = Math.max(1, Math.floor(steps * o.coefficientWarmupFraction));
  let t0 = performance.now();
  let rowsTimed = 0;
  try {
    while (step < last) {
      const xb = inStream.next();
      const yb = outStream ? outStream.next() : xb;
      const dead = new Float32Array(o.width);
      const longDead = new Float32Array(o.width);
      let nDead = 0;
      for (let i = 0; i < o.width; i++) {
        if (rowsSinceFired[i]! < o.deadWindowRows) continue;
        dead[i] = 1;
        nDead++;
        if (rowsSinceFired[i]! >= REVIVE_WINDOWS * o.deadWindowRows) longDead[i] = 1;
      }
      const coef = o.coefficient * Math.min(1, (step + 1) / coefWarm);
      const kNow = annealedK(cfg.k, kCap, step, steps, o.kAnnealFraction);
      const out = runStep(
        [
          new Tensor(xb, [o.batchSize, data.dIn]),
          new Tensor(yb, [o.batchSize, data.dOut]),
          Tensor.from([coef]),
          new Tensor(dead, [o.width]),
          Tensor.from([inScale]),
          new Tensor(longDead, [o.width]),
        ],
        nDead > 0 && settings.auxKCoefficient > 0,
        kNow,
      );
      // The step's reads, at once: the loss and MSE (history, NaN check) and the firing counts (dead
      // latents decide the next step's graph).
      const [loss, mse, l0Sum, fired, minPos] = await Promise.all([
        out[0]!.item(),
        out[1]!.item(),
        out[2]!.item(),
        out[3]!.f32(),
        out[4]!.item(),
      ]);
      if (!Number.isFinite(loss) || !Number.isFinite(mse)) {
        const kept =
          o.checkpointDir && checkpointExists(o.checkpointDir)
            ? ` (the last good checkpoint in '${o.checkpointDir}' is kept)`
            : '';
        throw new SaeTrainError(
          `loss became ${loss} at step ${step + 1}${kept}: lower the learning rate or check the activations for NaN/Inf`,
        );
      }
      const l0 = l0Sum / o.batchSize;
      let grads = out.slice(5);
      for (let i = 0; i < o.width; i++) {
        if (fired[i]! > 0) rowsSinceFired[i] = 0;
        else rowsSinceFired[i]! += o.batchSize;
        fires[i]! += fired[i]!;
      }
      // The inference threshold is that of k itself: it starts once the annealing is over.
      if (o.architecture === 'batchtopk' && Number.isFinite(minPos) && kNow === cfg.k)
        batchThreshold = batchThreshold === 0 ? minPos : 0.99 * batchThreshold + 0.01 * minPos;
      if (o.clipNorm > 0) grads = clipGradNorm(grads, o.clipNorm).grads;
      const W_dec_i = names.indexOf('W_dec');
      if (o.decoderNorm === 'unit')
        grads[W_dec_i] = removeParallelGrad(opt.params[W_dec_i]!, grads[W_dec_i]!);
      opt.lr =
        step < o.lrWarmupSteps
          ? (o.lr * (step + 1)) / o.lrWarmupSteps
          : step >= decayStart
            ? (o.lr * (steps - step)) / (steps - decayStart)
            : o.lr;
      opt.step(grads);
      if (o.decoderNorm === 'unit') opt.params[W_dec_i] = normalizeRows(opt.params[W_dec_i]!);
      step++;
      if (o.resampleEverySteps > 0 && step % o.resampleEverySteps === 0 && step < decayStart) {
        await resampleDead(cfg, opt, names, rowsSinceFired, o, inStream, outStream, inScale, rng);
      }
      names.forEach((n, i) => params.set(n, opt.params[i]!));
      rowsTimed += o.batchSize;
      const deadFraction = countDead(rowsSinceFired, o.deadWindowRows) / o.width;
      history.push({ step, loss, mse, l0, deadFraction });
      o.onStep?.({
        step,
        steps,
        rows: step * o.batchSize,
        loss,
        mse,
        l0,
        deadFraction,
        lr: opt.lr,
        rowsPerSecond: (rowsTimed / (performance.now() - t0)) * 1000,
      });
      if (step % 20 === 0) {
        t0 = performance.now();
        rowsTimed = 0;
      }
      if (
        o.checkpointDir &&
        ((o.checkpointEverySteps && step % o.checkpointEverySteps === 0) || step === last)
      ) {
        const extra: CheckpointExtra = {
          inState: inStream.state(),
          outState: outStream?.state(),
          history,
          batchThreshold,
          inScale,
        };
        const optState = await opt.state();
        const state: CheckpointState = {
          step,
          rngState: rng.getState(),
          optimizer: { kind: 'adam', steps: opt.steps, lr: opt.lr },
          modelKey: key,
          losses: [],
          evals: [],
          extra: extra as unknown as Record<string, unknown>,
          settings: runSettings,
        };
        await saveCheckpoint(o.checkpointDir, weightsForCheckpoint(), optState, state);
      }
    }
  } finally {
    for (const fn of traced.values()) fn.dispose();
    opt.dispose();
  }

  const sae = finalSae(cfg, params, o, inScale, batchThreshold);
  const logDensity = new Float32Array(o.width);
  const rowsSeen = Math.max(1, step * o.batchSize - (resumedFrom ?? 0) * o.batchSize);
  for (let i = 0; i < o.width; i++) logDensity[i] = Math.log10(fires[i]! / rowsSeen + 1e-10);
  return { sae, steps: step, resumedFrom, history, logDensity };
}

/**
 * TopK's k for this step: 8k, 4k, 2k over equal parts of the first `fraction` of the steps, then k;
 * never above `cap` (see trainSae: half of d_in, at most the width). With k latents per row only the
 * winners get gradient, so a latent that has not yet found a rare feature gets none (the aux-k loss
 * only reaches latents already dead); a larger k early lets every latent learn, as a ReLU SAE's do.
 * Synthetic benchmark (512 features in 256 dimensions, true L0 5, k 5, 2^20 rows): MMCS 0.941 -> 0.977,
 * 34 -> 12 silent latents at fraction 0.25 (0.125: 0.966, 0.5: 0.969, 0.75: 0.964; from 16k: 0.971).
 * The cap: a k near d_in reconstructs any row densely, so latents learn no features and die when k
 * drops (stories260K, d_in 64, k 32 from 256: 1307 of 2048 silent vs 759 without annealing).
 */
export function annealedK(
  k: number | null,
  cap: number,
  step: number,
  steps: number,
  fraction: number,
): number | null {
  if (k === null || !(fraction > 0)) return k;
  const levels = 3;
  const level = Math.floor((step / Math.max(1, steps * fraction)) * levels);
  return level >= levels ? k : Math.max(k, Math.min(cap, k * 2 ** (levels - level)));
}

interface CheckpointExtra {
  inState: unknown;
  outState: unknown;
  history: SaeTrainResult['history'];
  batchThreshold: number;
  inScale: number;
}

/** Latents fired per batch: [l0 sum [1], fired count [d_sae], min positive activation [1]]. */
function firingStats(acts: Tensor, wantThreshold: boolean): Tensor[] {
  const a = acts.detach();
  const on = cast(gt(a, 0), 'float32');
  // A ones-row matmul: ORT's axis-0 ReduceSum over [batch, d_sae] is slower.
  const firedPerLatent = reshape(matmul(Tensor.full([1, a.shape[0]!], 1), on), [a.shape[1]!]);
  // Only BatchTopK needs its threshold (the smallest active value in the batch).
  const minPositive = wantThreshold ? min(where(gt(a, 0), a, Infinity)) : Tensor.scalar(0);
  return [sum(firedPerLatent), firedPerLatent, minPositive];
}

/** The inference SAE: thresholds from log-thresholds, BatchTopK as JumpReLU, the input scale recorded. */
function finalSae(
  cfg: SaeConfig,
  params: Map<string, Tensor>,
  o: Resolved,
  inScale: number,
  batchThreshold: number,
): SparseAutoencoder {
  const p = new Map<string, Tensor>();
  for (const [n, t] of params) {
    if (n === 'log_threshold') p.set('threshold', exp(t));
    else p.set(n, t);
  }
  let finalCfg: SaeConfig = { ...cfg, scalingFactor: o.normalize ? inScale : null };
  if (cfg.architecture === 'batchtopk') {
    // BatchTopK's inference form (Bussmann et al.): a JumpReLU with the running global threshold.
    finalCfg = {
      ...finalCfg,
      architecture: 'jumprelu',
      k: null,
      metadata: { ...cfg.metadata, trained_as: 'batchtopk', k: cfg.k },
    };
    p.set('threshold', Tensor.full([cfg.dSae], batchThreshold));
  }
  return new SparseAutoencoder(finalCfg, p);
}

function defaultSettings(o: Resolved): RunSettings {
  const topk = o.architecture === 'topk' || o.architecture === 'batchtopk';
  return {
    architecture: o.architecture,
    width: o.width,
    k: topk ? o.k : null,
    hookName: o.hookName,
    hookNameOut: o.hookNameOut ?? null,
    transcoderSkip: o.transcoderSkip,
    totalRows: o.totalRows,
    batchSize: o.batchSize,
    lr: o.lr,
    lrWarmupSteps: o.lrWarmupSteps,
    lrDecayFraction: o.lrDecayFraction,
    clipNorm: o.clipNorm,
    coefficient: o.coefficient,
    coefficientWarmupFraction: o.coefficientWarmupFraction,
    decoderNorm: o.decoderNorm,
    bDecInit: o.bDecInit,
    normalize: o.normalize,
    deadWindowRows: o.deadWindowRows,
    auxKCoefficient: o.auxKCoefficient,
    kAux: o.kAux,
    resampleEverySteps: o.resampleEverySteps,
    bandwidth: o.bandwidth,
    initThreshold: o.initThreshold,
    seed: o.seed,
  };
}

function validate(o: Resolved): void {
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 1)
      throw new SaeTrainError(`${name} must be a positive integer, got ${v}`);
  };
  posInt(o.width, 'width');
  posInt(o.totalRows, 'the training budget (rows)');
  posInt(o.batchSize, 'batch size');
  posInt(o.kAux, 'k_aux');
  if (!(o.lr > 0) || !Number.isFinite(o.lr))
    throw new SaeTrainError(`learning rate must be positive, got ${o.lr}`);
  if (!(o.kAnnealFraction >= 0 && o.kAnnealFraction <= 1))
    throw new SaeTrainError(
      `the k annealing fraction (--k-anneal) must be in [0, 1], got ${o.kAnnealFraction}`,
    );
  if (!(o.coefficient >= 0))
    throw new SaeTrainError(`sparsity coefficient must be >= 0, got ${o.coefficient}`);
  if ((o.architecture === 'topk' || o.architecture === 'batchtopk') && !(o.k >= 1 && o.k <= o.width))
    throw new SaeTrainError(`k must be between 1 and the width (${o.width}), got ${o.k}`);
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}

function meanNorm(rows: Float32Array, d: number): number {
  const n = rows.length / d;
  let total = 0;
  for (let r = 0; r < n; r++) {
    let ss = 0;
    for (let j = 0; j < d; j++) ss += rows[r * d + j]! ** 2;
    total += Math.sqrt(ss);
  }
  const m = total / n;
  if (!(m > 0) || !Number.isFinite(m))
    throw new SaeTrainError(`the activations' mean norm is ${m}: check the data`);
  return m;
}

function columnMean(rows: Float32Array, d: number): Float32Array {
  const out = new Float64Array(d);
  const n = rows.length / d;
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) out[j]! += rows[r * d + j]!;
  return Float32Array.from(out, (v) => v / n);
}

/** The rows of a [rows, cols] tensor rescaled to unit L2 norm. */
export function normalizeRows(t: Tensor): Tensor {
  return noGrad(() => div(t, maximum(sqrt(sum(mul(t, t), 1, true)), Tensor.scalar(1e-12))));
}

/** Each decoder row's gradient without its component along the row (that would only change the norm). */
export function removeParallelGrad(w: Tensor, g: Tensor): Tensor {
  return noGrad(() => {
    const dot = sum(mul(w, g), 1, true); // [rows, 1]
    const ss = maximum(sum(mul(w, w), 1, true), Tensor.scalar(1e-12));
    return sub(g, mul(div(dot, ss), w));
  });
}

function countDead(rowsSinceFired: Float32Array, window: number): number {
  let n = 0;
  for (const v of rowsSinceFired) if (v >= window) n++;
  return n;
}

/**
 * Bricken et al. 2023's resampling: each dead latent gets a new decoder row along an input the SAE
 * reconstructs badly (sampled with probability ∝ squared error), an encoder column along it scaled to
 * 0.2 x the mean live encoder norm, a zero bias, and fresh Adam moments. Only the per-row errors are
 * read (to draw the rows); the parameters are rewritten on the engine, masked by the dead latents.
 */
async function resampleDead(
  cfg: SaeConfig,
  opt: Adam,
  names: string[],
  rowsSinceFired: Float32Array,
  o: Resolved,
  inStream: BatchStream,
  outStream: BatchStream | null,
  inScale: number,
  rng: Rng,
): Promise<void> {
  const dead: number[] = [];
  for (let i = 0; i < o.width; i++) if (rowsSinceFired[i]! >= o.deadWindowRows) dead.push(i);
  if (dead.length === 0) return;
  const { dIn, dOut, dSae } = cfg;
  const n = o.batchSize;
  const x = new Tensor(
    inStream.next().map((v) => v * inScale),
    [n, dIn],
  );
  const y = outStream
    ? new Tensor(
        outStream.next().map((v) => v * inScale),
        [n, dOut],
      )
    : x;
  const ix = (name: string) => names.indexOf(name);
  const biasName = cfg.architecture === 'gated' ? 'b_gate' : 'b_enc';
  const params = new Map(names.map((nm, i) => [nm, opt.params[i]!] as const));
  const diff = noGrad(() => sub(y, inferenceView(cfg, params).forwardRows(x).recons)); // [n, d_out]
  const ss = sum(mul(diff, diff), 1); // [n]
  const err = await mul(ss, ss).f32(); // probability ∝ squared loss
  let total = 0;
  for (const e of err) total += e;
  if (!(total > 0)) return;
  // The row each dead latent takes (live latents: row 0, masked out below).
  const rowOf = new BigInt64Array(dSae);
  const isDead = new Float32Array(dSae);
  for (const i of dead) {
    let u = rng.next() * total;
    let r = 0;
    while (r < n - 1 && (u -= err[r]!) > 0) r++;
    rowOf[i] = BigInt(r);
    isDead[i] = 1;
    rowsSinceFired[i] = 0;
  }
  const rows = new Tensor(rowOf, [dSae]);
  const deadT = new Tensor(isDead, [dSae]);
  const mask = gt(deadT, 0);
  noGrad(() => {
    const W_enc = opt.params[ix('W_enc')]!; // [d_in, d_sae]
    const W_dec = opt.params[ix('W_dec')]!; // [d_sae, d_out]
    const bias = opt.params[ix(biasName)]!; // [d_sae]
    const colNorms = sqrt(sum(mul(W_enc, W_enc), 0)); // [d_sae]
    const live = dSae - dead.length;
    const liveNorm = live > 0 ? div(sum(mul(colNorms, sub(1, deadT))), live) : Tensor.scalar(1);
    // The new direction is the row's reconstruction error, normalised.
    const newDec = normalizeRows(gather(diff, 0, rows)); // [d_sae, d_out]
    const xr = gather(x, 0, rows); // [d_sae, d_in]
    const xNorm = maximum(sqrt(sum(mul(xr, xr), 1, true)), Tensor.scalar(1e-12));
    const newEnc = transpose(mul(xr, div(mul(liveNorm, 0.2), xNorm))); // [d_in, d_sae]
    opt.params[ix('W_dec')] = where(reshape(mask, [dSae, 1]), newDec, W_dec);
    opt.params[ix('W_enc')] = where(reshape(mask, [1, dSae]), newEnc, W_enc);
    opt.params[ix(biasName)] = where(mask, 0, bias);
    // Fresh Adam moments for the resampled entries.
    const keep = sub(1, deadT);
    opt.scaleBuffers(ix('W_enc'), reshape(keep, [1, dSae]));
    opt.scaleBuffers(ix('W_dec'), reshape(keep, [dSae, 1]));
    opt.scaleBuffers(ix(biasName), keep);
  });
}

/** The training parameters as an inference SAE on normalised inputs (JumpReLU thresholds exponentiated). */
function inferenceView(cfg: SaeConfig, params: Map<string, Tensor>): SparseAutoencoder {
  const p = new Map(params);
  const lt = p.get('log_threshold');
  if (lt) {
    p.delete('log_threshold');
    p.set('threshold', exp(lt));
  }
  const c: SaeConfig = cfg.architecture === 'batchtopk' ? { ...cfg } : cfg;
  return new SparseAutoencoder({ ...c, normalizeActivations: 'none', scalingFactor: null }, p);
}
