import { noGrad, Tensor } from '../engine/tensor.js';
import { Rng } from '../engine/random.js';
import { TracedFunction } from '../engine/trace.js';
import { SondeError } from '../errors.js';
import { nextTokenLoss } from '../hooks/hooked-transformer.js';
import type { ModelConfig } from '../models/config.js';
import { runModel } from '../hooks/run-model.js';
import type { Weights } from '../models/weights.js';
import {
  checkpointExists,
  checkResumeSettings,
  loadCheckpoint,
  saveCheckpoint,
  type CheckpointState,
  type RunSettings,
} from './checkpoint.js';
import type { TokenDataset } from './dataset.js';
import { Adam, AdamW, clipGradNorm, schedules, SGD, type Optimizer, type Schedule } from './optimizers.js';

export interface TrainOptions {
  steps: number;
  batchSize: number;
  ctx: number;
  lr: number;
  schedule?: 'constant' | 'warmup' | 'cosine';
  warmupSteps?: number;
  minLr?: number;
  optimizer?: 'adamw' | 'adam' | 'sgd';
  weightDecay?: number;
  betas?: [number, number];
  momentum?: number;
  /** Clip gradients to this global L2 norm (none when omitted). */
  clipNorm?: number;
  evalEvery?: number;
  evalBatches?: number;
  checkpointDir?: string;
  checkpointEvery?: number;
  /** Resume from checkpointDir when a checkpoint is there (default true). */
  resume?: boolean;
  /** Stop after this step (the run can be resumed later). */
  stopAfter?: number;
  seed?: number;
  /** Rewrites each training batch (drawing only from `rng`, so resumes stay exact). */
  augment?: (tokens: Tensor, rng: Rng) => Tensor;
  /** Called after each step (awaited: it may read tensors); `weights` holds the step's parameters. */
  onStep?: (s: StepInfo) => void | Promise<void>;
  /** Called once, before the first step, when a checkpoint was resumed (with its step). */
  onResume?: (step: number) => void;
  /** Extra data stored with each checkpoint, returned on resume. */
  checkpointExtra?: () => Record<string, unknown>;
  /**
   * What identifies the run, recorded in checkpoints; a resume with other values is refused
   * (default: the optimisation options above).
   */
  settings?: RunSettings;
}

export interface StepInfo {
  step: number; // 1-based count of steps done
  loss: number;
  lr: number;
  gradNorm: number | null;
  tokensPerSecond: number;
  evalLoss?: number;
}

export interface TrainResult {
  step: number;
  losses: number[];
  evals: { step: number; loss: number }[];
  resumedFrom: number | null;
  extra?: Record<string, unknown>;
}

export class TrainError extends SondeError {}

export function modelKey(cfg: ModelConfig, weights: Weights): string {
  return `${cfg.architecture}:${[...weights].map(([n, t]) => `${n}[${t.shape}]`).join(',')}`;
}

function defaultSettings(o: TrainOptions): RunSettings {
  return {
    steps: o.steps,
    batchSize: o.batchSize,
    ctx: o.ctx,
    lr: o.lr,
    schedule: o.schedule ?? 'constant',
    warmupSteps: o.warmupSteps ?? 0,
    minLr: o.minLr ?? 0,
    optimizer: o.optimizer ?? 'adamw',
    weightDecay: o.weightDecay ?? null,
    betas: o.betas ? o.betas.join(',') : null,
    momentum: o.momentum ?? null,
    clipNorm: o.clipNorm ?? null,
    seed: o.seed ?? 0,
  };
}

function validate(o: TrainOptions): void {
  const posInt = (v: number, name: string) => {
    if (!Number.isInteger(v) || v < 1) throw new TrainError(`${name} must be a positive integer, got ${v}`);
  };
  posInt(o.steps, 'steps');
  posInt(o.batchSize, 'batch size');
  posInt(o.ctx, 'context length');
  if (!(o.lr > 0) || !Number.isFinite(o.lr))
    throw new TrainError(`learning rate must be positive, got ${o.lr}`);
}

/**
 * Next-token training of any Sonde model on a token dataset, with a compiled train step (forward,
 * loss and backward as one ONNX graph, parameters fed by reference), evaluation on held-out text, and
 * atomic checkpoints that resume exactly. The entries of `weights` are replaced by the trained tensors.
 */
export async function train(
  cfg: ModelConfig,
  weights: Weights,
  data: TokenDataset,
  o: TrainOptions,
): Promise<TrainResult> {
  validate(o);
  if (o.ctx > cfg.nCtx && cfg.positional === 'learned') {
    throw new TrainError(`context ${o.ctx} is longer than the model's ${cfg.nCtx} positions`);
  }
  const names = [...weights.keys()];
  const sched: Schedule =
    o.schedule === 'cosine'
      ? schedules.cosine(o.lr, o.steps, o.warmupSteps ?? 0, o.minLr ?? 0)
      : o.schedule === 'warmup'
        ? schedules.linearWarmup(o.lr, o.warmupSteps ?? 0)
        : schedules.constant(o.lr);
  const rng = new Rng(o.seed ?? 0);
  const splits = data.splits();
  const key = modelKey(cfg, weights);
  let step = 0;
  let losses: number[] = [];
  let evals: { step: number; loss: number }[] = [];
  let resumedFrom: number | null = null;
  let extra: Record<string, unknown> | undefined;
  const settings = o.settings ?? defaultSettings(o);
  const ck =
    o.checkpointDir && (o.resume ?? true) && checkpointExists(o.checkpointDir)
      ? loadCheckpoint(o.checkpointDir, weights, key)
      : null;
  const params = names.map((n) => weights.get(n)!);
  const opt: Optimizer =
    o.optimizer === 'sgd'
      ? new SGD(params, { lr: o.lr, momentum: o.momentum ?? 0.9, weightDecay: o.weightDecay ?? 0 })
      : o.optimizer === 'adam'
        ? new Adam(params, { lr: o.lr, betas: o.betas, weightDecay: o.weightDecay ?? 0 })
        : new AdamW(params, { lr: o.lr, betas: o.betas, weightDecay: o.weightDecay ?? 0.01 });
  if (ck && o.checkpointDir) {
    checkResumeSettings(o.checkpointDir, ck.state.step, ck.state.settings, settings);
    opt.loadState(ck.optimizer);
    rng.setState(ck.state.rngState);
    step = ck.state.step;
    losses = ck.state.losses;
    evals = ck.state.evals;
    extra = ck.state.extra;
    resumedFrom = step;
    o.onResume?.(step);
  }

  const asMap = (ts: Tensor[]) => new Map(names.map((n, i) => [n, ts[i]!] as const));
  // Parameters are declared inputs: each replay gets the optimizer's current tensors.
  let trainStep: TracedFunction | null = null;
  const runStep = (tokens: Tensor): { loss: Tensor; grads: Tensor[] } => {
    const params = opt.params;
    if (trainStep) {
      const out = trainStep.run([tokens, ...params]);
      return { loss: out[0]!, grads: out.slice(1) };
    }
    for (const p of params) {
      p.requireGrad();
      p.grad = null;
    }
    const { fn, outputs } = TracedFunction.trace(
      ([t, ...ps]) => {
        const loss = nextTokenLoss(runModel({ cfg, weights: asMap(ps) }, t!), t!);
        loss.backward();
        return [loss, ...ps.map((p) => p.grad!)];
      },
      [tokens, ...params],
      { inlineLimit: 0 },
    );
    for (const p of params) {
      p.grad = null;
      p.requiresGrad = false;
    }
    trainStep = fn;
    return { loss: outputs[0]!, grads: outputs.slice(1) };
  };
  let evalFn: TracedFunction | null = null;
  const evalLoss = async (): Promise<number> => {
    const params = opt.params;
    const evalRng = new Rng((o.seed ?? 0) + 1_000_003);
    const n = o.evalBatches ?? 4;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const tokens = data.sampleBatch(evalRng, o.batchSize, o.ctx, splits.eval);
      if (!evalFn) {
        const traced = noGrad(() =>
          TracedFunction.trace(
            ([t, ...ps]) => [nextTokenLoss(runModel({ cfg, weights: asMap(ps) }, t!), t!)],
            [tokens, ...params],
            {
              inlineLimit: 0,
            },
          ),
        );
        evalFn = traced.fn;
        total += await traced.outputs[0]!.item();
      } else total += await evalFn.run([tokens, ...params])[0]!.item();
    }
    return total / n;
  };

  const last = Math.min(o.steps, o.stopAfter ?? o.steps);
  let t0 = performance.now();
  let tokensSince = 0;
  while (step < last) {
    const sampled = data.sampleBatch(rng, o.batchSize, o.ctx, splits.train);
    const tokens = o.augment ? o.augment(sampled, rng) : sampled;
    const lr = sched(step);
    opt.lr = lr;
    const { loss: lossT, grads } = runStep(tokens);
    const clipped = o.clipNorm ? clipGradNorm(grads, o.clipNorm) : null;
    opt.step(clipped ? clipped.grads : grads);
    // The caller's map follows the optimizer (a model built on it sees the current weights).
    names.forEach((n, i) => weights.set(n, opt.params[i]!));
    // The one read per step: the loss (its history is the run's record and is checked for NaN).
    const loss = await lossT.item();
    if (!Number.isFinite(loss))
      throw new TrainError(`loss is ${loss} at step ${step + 1}: lower the learning rate`);
    const gradNorm = clipped ? await clipped.norm.item() : null;
    step++;
    losses.push(loss);
    tokensSince += o.batchSize * o.ctx;
    const info: StepInfo = {
      step,
      loss,
      lr,
      gradNorm,
      tokensPerSecond: (tokensSince / (performance.now() - t0)) * 1000,
    };
    if (o.evalEvery && (step % o.evalEvery === 0 || step === o.steps)) {
      info.evalLoss = await evalLoss();
      evals.push({ step, loss: info.evalLoss });
    }
    await o.onStep?.(info);
    if (step % 50 === 0) {
      t0 = performance.now();
      tokensSince = 0;
    }
    if (o.checkpointDir && ((o.checkpointEvery && step % o.checkpointEvery === 0) || step === last)) {
      const optState = await opt.state();
      const state: CheckpointState = {
        step,
        rngState: rng.getState(),
        optimizer: { kind: optState.kind, steps: opt.steps, lr: opt.lr },
        modelKey: key,
        losses,
        evals,
        extra: o.checkpointExtra?.(),
        settings,
      };
      await saveCheckpoint(o.checkpointDir, weights, optState, state);
    }
  }
  opt.dispose();
  return { step, losses, evals, resumedFrom, extra };
}
