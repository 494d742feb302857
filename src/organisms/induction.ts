import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Rng } from '../engine/random.js';
import { Tensor } from '../engine/tensor.js';
import { gatherElements } from '../engine/ops/shape.js';
import { SondeError } from '../errors.js';
import { HookedTransformer } from '../hooks/hooked-transformer.js';
import { loadTokenizer } from '../io/tokenizer.js';
import { headScores, type HeadScores } from '../methods/heads.js';
import type { ModelConfig } from '../models/config.js';
import { gpt2Config } from '../models/gpt2.js';
import { defaultModelDir } from '../models/load.js';
import { initGpt2Weights } from '../models/init.js';
import { saveGpt2 } from '../models/save.js';
import type { Weights } from '../models/weights.js';
import { tokenizeFile } from '../train/dataset.js';
import { train, type StepInfo, type TrainResult } from '../train/trainer.js';
import { trackLeftover } from '../io/leftovers.js';
import type { RunSettings } from '../train/checkpoint.js';

export interface InductionOptions {
  layers?: number;
  dModel?: number;
  heads?: number;
  ctx?: number;
  layerNorm?: boolean;
  steps?: number;
  batchSize?: number;
  lr?: number;
  warmupSteps?: number;
  weightDecay?: number;
  seed?: number;
  /** Text corpus (default: the built-in stories sampled from stories260K). */
  data?: string;
  /** Output model folder (HF layout). */
  out?: string;
  /**
   * Fraction of training windows turned into self-repeating sequences of shuffled text tokens (see
   * repeatSpans; default 1). 0 trains on the plain text only: measured here, 5,000 steps of plain text
   * (10M tokens) and 3,000 steps at 0.5 grew no induction head, while at 1 it forms near step 1,500.
   */
  repeatProbability?: number;
  /** Resume from `<out>.checkpoint` when there is one (default true); false starts over. */
  resume?: boolean;
  /**
   * What identifies the run, recorded in the checkpoint; a resume with other values is refused (default:
   * the options above, data included).
   */
  settings?: RunSettings;
  /** Score heads on repeated random tokens every this many steps (phase-change tracking). */
  scoreEvery?: number;
  onStep?: (s: StepInfo) => void;
  /** Called once, before the first step, when a checkpoint was resumed (with its step). */
  onResume?: (step: number) => void;
  onScore?: (p: PhasePoint) => void;
}

/** One point of the training history, for the phase-change plot. */
export interface PhasePoint {
  step: number;
  loss: number;
  maxInduction: number;
  maxPreviousToken: number;
  lossFirstRepeat: number;
  lossSecondRepeat: number;
}

export interface InductionResult {
  dir: string;
  train: TrainResult;
  history: PhasePoint[];
  scores: HeadScores;
}

export class OrganismError extends SondeError {}

/**
 * With probability p per row, replaces the window by a sequence that repeats itself: its first L tokens
 * (8 <= L <= ctx/2, random per row), shuffled (real-text tokens without their n-gram structure), then
 * the same L tokens again and again. On
 * such rows only in-context copying predicts the second half, which is the standard curriculum that
 * brings the induction phase change within minutes; the other rows are plain text.
 */
export function repeatSpans(tokens: Tensor, rng: Rng, p: number): Tensor {
  const [B, P] = tokens.shape as [number, number];
  // The curriculum draws only positions (never reads a token): a [B, P] map from each output position
  // to the input position it copies, applied on the engine by one gather.
  const source = new BigInt64Array(B * P);
  const maxL = Math.floor(P / 2);
  const minL = Math.min(8, maxL);
  for (let b = 0; b < B; b++) {
    const row = source.subarray(b * P, (b + 1) * P);
    for (let i = 0; i < P; i++) row[i] = BigInt(i);
    if (rng.next() >= p) continue;
    // A random period, so copying by a fixed positional offset cannot stand in for induction.
    const L = minL + rng.int(maxL - minL + 1);
    for (let i = L - 1; i > 0; i--) {
      const j = rng.int(i + 1);
      [row[i], row[j]] = [row[j]!, row[i]!];
    }
    for (let i = L; i < P; i++) row[i] = row[i - L]!;
  }
  return gatherElements(tokens, 1, new Tensor(source, [B, P]));
}

/** The built-in training text: stories sampled from stories260K (see assets/corpus/README.md). */
export function defaultCorpus(): string {
  return path.join(path.dirname(defaultModelDir()), 'corpus', 'stories260K-samples.txt');
}

/** An attention-only GPT-2-layout transformer (TransformerLens's attn_only), vocab of the tok512 tokenizer. */
export function attnOnlyConfig(o: {
  layers: number;
  dModel: number;
  heads: number;
  ctx: number;
  layerNorm: boolean;
  vocabSize: number;
}): ModelConfig {
  return gpt2Config({
    n_embd: o.dModel,
    n_head: o.heads,
    n_layer: o.layers,
    n_positions: o.ctx,
    vocab_size: o.vocabSize,
    attn_only: true,
    normalization_type: o.layerNorm ? 'LN' : null,
    bos_token_id: 1,
    eos_token_id: 2,
  });
}

/** TransformerLens's default init: N(0, 0.8/sqrt(d_model)) for every matrix, LayerNorm 1/0, biases 0. */
export function initWeights(cfg: ModelConfig, seed: number): Weights {
  return initGpt2Weights(cfg, { seed });
}

/**
 * Trains an attention-only transformer on text until (with 2+ layers) an induction head forms, saves
 * it as an HF folder, and returns the training history with head scores along the way.
 */
export async function trainInduction(opts: InductionOptions = {}): Promise<InductionResult> {
  const o = {
    layers: 2,
    dModel: 64,
    heads: 4,
    ctx: 128,
    layerNorm: true,
    steps: 2500,
    batchSize: 16,
    lr: 1e-3,
    warmupSteps: 100,
    weightDecay: 0.05,
    seed: 0,
    scoreEvery: 100,
    out: 'induction-model',
    repeatProbability: 1,
    ...opts,
  };
  if (!(o.repeatProbability >= 0 && o.repeatProbability <= 1)) {
    throw new OrganismError(`repeat probability must be in [0, 1], got ${o.repeatProbability}`);
  }
  if (!Number.isInteger(o.layers) || o.layers < 1)
    throw new OrganismError(`--layers must be a positive integer, got ${o.layers}`);
  if (o.dModel % o.heads !== 0)
    throw new OrganismError(`d_model ${o.dModel} is not divisible by ${o.heads} heads`);
  const data = o.data ?? defaultCorpus();
  if (!fs.existsSync(data)) throw new OrganismError(`corpus '${data}' does not exist`);
  const tokDir = defaultModelDir();
  const tokenizer = loadTokenizer(tokDir);
  const cacheDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-tokens-'));
  trackLeftover(cacheDir);
  const dataset = tokenizeFile(data, tokenizer, path.join(cacheDir, 'tokens.bin'));
  if (dataset.length < 20 * o.ctx)
    throw new OrganismError(
      `corpus '${data}' has only ${dataset.length} tokens; need at least ${20 * o.ctx}`,
    );
  const cfg = attnOnlyConfig({ ...o, vocabSize: tokenizer.vocabSize });
  const weights = initWeights(cfg, o.seed);
  const model = new HookedTransformer(cfg, weights, tokenizer, 'training', 'never');
  const history: PhasePoint[] = [];
  const score = async (step: number, loss: number) => {
    const s = await headScores(model, {
      seqLen: Math.min(40, Math.floor((o.ctx - 1) / 2)),
      batch: 8,
      seed: 12345,
    });
    const p: PhasePoint = {
      step,
      loss,
      maxInduction: Math.max(...s.induction.flat()),
      maxPreviousToken: Math.max(...s.previousToken.flat()),
      lossFirstRepeat: s.lossFirstRepeat,
      lossSecondRepeat: s.lossSecondRepeat,
    };
    history.push(p);
    o.onScore?.(p);
  };
  // Head scores are read asynchronously; their forward passes are issued at their step, so they score the
  // weights of that step.
  const scoring: Promise<void>[] = [];
  const ckpt = path.resolve(`${o.out}.checkpoint`);
  let result: TrainResult;
  try {
    result = await train(cfg, weights, dataset, {
      steps: o.steps,
      batchSize: o.batchSize,
      ctx: o.ctx,
      lr: o.lr,
      schedule: 'warmup',
      warmupSteps: o.warmupSteps,
      weightDecay: o.weightDecay,
      clipNorm: 1.0,
      seed: o.seed,
      evalEvery: Math.max(o.scoreEvery, Math.floor(o.steps / 10)),
      checkpointDir: ckpt,
      checkpointEvery: 500,
      resume: o.resume,
      settings: o.settings ?? {
        data: path.resolve(data),
        layers: o.layers,
        dModel: o.dModel,
        heads: o.heads,
        ctx: o.ctx,
        layerNorm: o.layerNorm,
        steps: o.steps,
        batchSize: o.batchSize,
        lr: o.lr,
        warmupSteps: o.warmupSteps,
        weightDecay: o.weightDecay,
        seed: o.seed,
        repeatProbability: o.repeatProbability,
      },
      checkpointExtra: () => ({ history }),
      onResume: o.onResume,
      augment: o.repeatProbability > 0 ? (t, rng) => repeatSpans(t, rng, o.repeatProbability) : undefined,
      onStep: (s) => {
        o.onStep?.(s);
        if (s.step % o.scoreEvery === 0 || s.step === o.steps) scoring.push(score(s.step, s.loss));
      },
    });
  } finally {
    dataset.close();
    fs.rmSync(cacheDir, { recursive: true, force: true });
  }
  await Promise.all(scoring);
  if (result.resumedFrom !== null && result.extra?.history)
    history.unshift(
      ...(result.extra.history as PhasePoint[]).filter((p) => !history.some((q) => q.step === p.step)),
    );
  history.sort((a, b) => a.step - b.step);
  saveGpt2(o.out, cfg, weights, tokDir);
  fs.rmSync(ckpt, { recursive: true, force: true });
  return {
    dir: path.resolve(o.out),
    train: result,
    history,
    scores: await headScores(model, {
      batch: 16,
      seed: 777,
      seqLen: Math.min(40, Math.floor((o.ctx - 1) / 2)),
    }),
  };
}
