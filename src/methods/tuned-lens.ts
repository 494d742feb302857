// The tuned lens (Belrose et al., 2023): one learned affine translator per layer, trained so that the
// translated residual stream, read through the model's final norm and unembedding, matches the model's
// final distribution.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SondeError } from '../errors.js';
import { add, exp, mul, sub } from '../engine/ops/elementwise.js';
import { logSoftmax, matmul } from '../engine/ops/nn.js';
import { mean, sum } from '../engine/ops/reduce.js';
import { reshape, slice, stack } from '../engine/ops/shape.js';
import { Rng } from '../engine/random.js';
import { noGrad, Tensor } from '../engine/tensor.js';
import { TracedFunction } from '../engine/trace.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { SafetensorsFile, writeSafetensors } from '../io/safetensors.js';
import { unembed } from '../models/transformer.js';
import { AdamW } from '../train/optimizers.js';
import { tokenizeFile, type TokenDataset } from '../train/dataset.js';
import { applyFinalNorm } from './decompose.js';
import { tempSibling, trackLeftover } from '../io/leftovers.js';
import { replaceDir } from '../models/save.js';

/** A tuned lens that cannot be trained, saved, loaded or used with this model. */
export class TunedLensError extends SondeError {}

/**
 * Translators for each block's resid_pre (the final resid_post needs none: the lens is the model there).
 * Layer l reads h -> unembed(finalNorm(h + h·A[l] + b[l])), with h a row vector; A and b start at zero,
 * so an untrained tuned lens is the logit lens.
 */
export interface TunedLens {
  /** 'blocks.0.hook_resid_pre' .. 'blocks.{L-1}.hook_resid_pre'. */
  layers: string[];
  /** [L, d_model, d_model]. */
  A: Tensor;
  /** [L, 1, d_model]. */
  b: Tensor;
  meta: TunedLensMeta;
}

export interface TunedLensMeta {
  format: 'sonde-tuned-lens';
  version: 1;
  model: string;
  architecture: { nLayers: number; dModel: number; vocabSize: number; normalization: string };
  hooks: string[];
  steps: number;
  data?: string;
  /** Mean KL(final || lens) per layer on held-out text after training, when measured. */
  heldOutKL?: { logit: number[]; tuned: number[] };
}

export interface TunedLensTrainOptions {
  steps?: number;
  batchSize?: number;
  ctx?: number;
  lr?: number;
  seed?: number;
  /** Fraction of the token file held out (its end); default 0.1. */
  evalFraction?: number;
  data?: string;
  onStep?: (step: number, loss: number, perLayer: number[]) => void;
}

export interface LensKL {
  layers: string[];
  /** Mean KL(final || logit lens) per layer, nats. */
  logit: number[];
  /** Mean KL(final || tuned lens) per layer, nats (null without a lens). */
  tuned: number[] | null;
  positions: number;
}

/** The hooks a tuned lens translates. */
export function tunedLensLayers(model: HookedTransformer): string[] {
  return Array.from({ length: model.cfg.nLayers }, (_, l) => `blocks.${l}.hook_resid_pre`);
}

/** Identity translators (A = 0, b = 0): the logit lens. */
export function createTunedLens(model: HookedTransformer): TunedLens {
  const { nLayers: L, dModel: d } = model.cfg;
  const layers = tunedLensLayers(model);
  return {
    layers,
    A: new Tensor(new Float32Array(L * d * d), [L, d, d]),
    b: new Tensor(new Float32Array(L * d), [L, 1, d]),
    meta: {
      format: 'sonde-tuned-lens',
      version: 1,
      model: model.source,
      architecture: {
        nLayers: L,
        dModel: d,
        vocabSize: model.cfg.vocabSize,
        normalization: model.cfg.normalization,
      },
      hooks: layers,
      steps: 0,
    },
  };
}

/** Tokenizes a text file (into a temporary folder) with the model's tokenizer. */
export function lensDataset(model: HookedTransformer, textFile: string): TokenDataset {
  if (!model.tokenizer) throw new TunedLensError(`model ${model.source} has no tokenizer`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-lens-tokens-'));
  const forget = trackLeftover(dir);
  try {
    return tokenizeFile(textFile, model.tokenizer, path.join(dir, 'tokens.bin'));
  } finally {
    // The dataset reads through its open descriptor, so the file can go at once (POSIX); where it cannot,
    // the folder stays tracked and goes after the process.
    try {
      fs.rmSync(dir, { recursive: true, force: true });
      forget();
    } catch {
      // kept as a leftover
    }
  }
}

/** Lens logits [L, N, vocab] of residuals [L, N, d] through translators A [L, d, d], b [L, 1, d]. */
function lensLogits(model: HookedTransformer, resid: Tensor, A: Tensor, b: Tensor): Tensor {
  const h = add(add(resid, matmul(resid, A)), b);
  return unembed(model.cfg, model.weights, applyFinalNorm(model, h));
}

/** Per-layer mean KL(final || lens) [L] and its sum. */
function klPerLayer(
  model: HookedTransformer,
  resid: Tensor,
  logpFinal: Tensor,
  A: Tensor,
  b: Tensor,
): { perLayer: Tensor; loss: Tensor } {
  const logq = logSoftmax(lensLogits(model, resid, A, b), -1);
  const kl = sum(mul(exp(logpFinal), sub(logpFinal, logq)), -1); // [L, N]
  const perLayer = mean(kl, 1);
  return { perLayer, loss: sum(perLayer) };
}

/** Residuals [L, B*P, d] at the lens hooks and final log-probabilities [B*P, V] for a token batch. */
function activations(
  model: HookedTransformer,
  tokens: Tensor,
  layers: string[],
): { resid: Tensor; logp: Tensor } {
  const [B, P] = tokens.shape as [number, number];
  const { logits, cache } = model.runWithCache(tokens, { names: layers });
  return noGrad(() => ({
    resid: reshape(stack(layers.map((n) => cache.get(n))), [layers.length, B * P, model.cfg.dModel]),
    logp: logSoftmax(reshape(logits, [B * P, model.cfg.vocabSize]), -1),
  }));
}

function checkModel(model: HookedTransformer, lens: TunedLens): void {
  const a = lens.meta.architecture;
  const c = model.cfg;
  if (a.nLayers !== c.nLayers || a.dModel !== c.dModel || a.vocabSize !== c.vocabSize)
    throw new TunedLensError(
      `tuned lens is for a model with ${a.nLayers} layers, d_model ${a.dModel}, vocab ${a.vocabSize}; ` +
        `this model has ${c.nLayers}, ${c.dModel}, ${c.vocabSize}`,
    );
  if (!model.weights.get('unembed.W_U')) throw new TunedLensError('the model has no unembed.W_U');
}

/**
 * Trains translators by AdamW on random windows of the dataset's training split, minimising the mean
 * over positions of KL(final || lens), summed over layers (each layer's translator is independent). The
 * step (lens forward, loss and backward) is compiled into one ONNX graph.
 */
export async function trainTunedLens(
  model: HookedTransformer,
  data: TokenDataset,
  opts: TunedLensTrainOptions = {},
  lens: TunedLens = createTunedLens(model),
): Promise<TunedLens> {
  checkModel(model, lens);
  const steps = opts.steps ?? 300;
  const batch = opts.batchSize ?? 8;
  const ctx = Math.min(opts.ctx ?? 128, model.cfg.nCtx);
  if (!Number.isInteger(steps) || steps < 0) throw new TunedLensError(`steps must be >= 0, got ${steps}`);
  const splits = data.splits(opts.evalFraction ?? 0.1);
  const rng = new Rng(opts.seed ?? 0);
  const opt = new AdamW([lens.A, lens.b], { lr: opts.lr ?? 1e-3, weightDecay: 0 });
  let compiled: TracedFunction | null = null;
  for (let step = 0; step < steps; step++) {
    const tokens = data.sampleBatch(rng, batch, ctx, splits.train);
    const { resid, logp } = activations(model, tokens, lens.layers);
    let out: Tensor[];
    if (compiled) out = compiled.run([resid, logp, lens.A, lens.b]);
    else {
      lens.A.requireGrad();
      lens.b.requireGrad();
      const traced = TracedFunction.trace(
        ([r, lp, A, b]) => {
          const { perLayer, loss } = klPerLayer(model, r!, lp!, A!, b!);
          loss.backward();
          return [perLayer, A!.grad!, b!.grad!];
        },
        [resid, logp, lens.A, lens.b],
        { inlineLimit: 0 },
      );
      lens.A.grad = null;
      lens.b.grad = null;
      lens.A.requireGrad(false);
      lens.b.requireGrad(false);
      compiled = traced.fn;
      out = traced.outputs;
    }
    const perLayer = await out[0]!.toArray();
    const loss = perLayer.reduce((s, x) => s + x, 0);
    if (!Number.isFinite(loss)) throw new TunedLensError(`loss is ${loss} at step ${step + 1}: lower --lr`);
    opt.step([out[1]!, out[2]!]);
    // Tensors are immutable: the optimizer hands back the updated translators.
    [lens.A, lens.b] = opt.params as [Tensor, Tensor];
    opts.onStep?.(step + 1, loss, perLayer);
  }
  compiled?.dispose();
  opt.dispose();
  lens.meta = { ...lens.meta, steps: lens.meta.steps + steps, ...(opts.data ? { data: opts.data } : {}) };
  return lens;
}

/**
 * KL(final || lens) per layer, averaged over every position of consecutive `ctx`-token windows of the
 * dataset's held-out split (its last evalFraction): the logit lens always, the tuned lens when given.
 */
export async function lensKL(
  model: HookedTransformer,
  data: TokenDataset,
  lens: TunedLens | null,
  opts: { ctx?: number; maxWindows?: number; evalFraction?: number } = {},
): Promise<LensKL> {
  if (lens) checkModel(model, lens);
  const layers = lens?.layers ?? tunedLensLayers(model);
  const ctx = Math.min(opts.ctx ?? 128, model.cfg.nCtx);
  const split = data.splits(opts.evalFraction ?? 0.1).eval;
  const n = Math.min(opts.maxWindows ?? 32, Math.floor((split.to - split.from) / ctx));
  if (n < 1) throw new TunedLensError(`held-out split has fewer than ${ctx} tokens`);
  const L = layers.length;
  const d = model.cfg.dModel;
  const zeroA = new Tensor(new Float32Array(L * d * d), [L, d, d]);
  const zeroB = new Tensor(new Float32Array(L * d), [L, 1, d]);
  const logit = new Array<number>(L).fill(0);
  const tuned = lens ? new Array<number>(L).fill(0) : null;
  const per = 4;
  for (let w = 0; w < n; w += per) {
    const rows = Math.min(per, n - w);
    const ids = new BigInt64Array(rows * ctx);
    for (let r = 0; r < rows; r++) {
      const win = data.window(split.from + (w + r) * ctx, ctx);
      for (let i = 0; i < ctx; i++) ids[r * ctx + i] = BigInt(win[i]!);
    }
    const { resid, logp } = activations(model, new Tensor(ids, [rows, ctx]), layers);
    const [lg, tn] = noGrad(() => [
      klPerLayer(model, resid, logp, zeroA, zeroB).perLayer,
      lens ? klPerLayer(model, resid, logp, lens.A, lens.b).perLayer : null,
    ]);
    (await lg!.toArray()).forEach((x, l) => (logit[l]! += x * rows));
    if (tn && tuned) (await tn.toArray()).forEach((x, l) => (tuned[l]! += x * rows));
  }
  return {
    layers,
    logit: logit.map((x) => x / n),
    tuned: tuned && tuned.map((x) => x / n),
    positions: n * ctx,
  };
}

/** Tuned-lens logits [pos, vocab] of one layer's residual stream [.., pos, d]. */
export function tunedLensLogits(
  model: HookedTransformer,
  lens: TunedLens,
  layer: number,
  resid: Tensor,
): Tensor {
  checkModel(model, lens);
  const d = model.cfg.dModel;
  if (!Number.isInteger(layer) || layer < 0 || layer >= lens.layers.length)
    throw new TunedLensError(`layer ${layer} is not in [0, ${lens.layers.length})`);
  return noGrad(() => {
    const A = reshape(slice(lens.A, 0, layer, layer + 1), [d, d]);
    const b = reshape(slice(lens.b, 0, layer, layer + 1), [d]);
    return lensLogits(model, resid, A, b);
  });
}

const WEIGHTS = 'tuned-lens.safetensors';
const META = 'tuned-lens.json';

/** Writes DIR/tuned-lens.safetensors (A, b) and DIR/tuned-lens.json (metadata), each atomically. */
export async function saveTunedLens(lens: TunedLens, dir: string): Promise<void> {
  const [A, b] = await Promise.all([lens.A.f32(), lens.b.f32()]);
  // Written whole into a temp folder that then replaces `dir`: a kill never leaves a half-written lens.
  const tmp = tempSibling(dir);
  fs.mkdirSync(tmp, { recursive: true });
  try {
    writeSafetensors(
      path.join(tmp, WEIGHTS),
      {
        A: { dtype: 'F32', shape: [...lens.A.shape], data: A },
        b: { dtype: 'F32', shape: [...lens.b.shape], data: b },
      },
      { format: 'sonde-tuned-lens' },
    );
    fs.writeFileSync(path.join(tmp, META), JSON.stringify(lens.meta, null, 2) + '\n');
    replaceDir(tmp, path.resolve(dir));
  } catch (e) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw e;
  }
}

export function loadTunedLens(dir: string, model?: HookedTransformer): TunedLens {
  let meta: TunedLensMeta;
  try {
    meta = JSON.parse(fs.readFileSync(path.join(dir, META), 'utf8')) as TunedLensMeta;
  } catch (e) {
    throw new TunedLensError(`'${dir}' is not a tuned lens (no readable ${META}): ${(e as Error).message}`);
  }
  if (meta.format !== 'sonde-tuned-lens') throw new TunedLensError(`'${dir}/${META}' is not a tuned lens`);
  const f = SafetensorsFile.open(path.join(dir, WEIGHTS));
  try {
    const { nLayers: L, dModel: d } = meta.architecture;
    const A = new Tensor(f.readFloat32('A'), [L, d, d]);
    const b = new Tensor(f.readFloat32('b'), [L, 1, d]);
    const lens: TunedLens = { layers: meta.hooks, A, b, meta };
    if (model) checkModel(model, lens);
    return lens;
  } finally {
    f.close();
  }
}

export interface TrainedTunedLens {
  lens: TunedLens;
  /** The held-out KL after training (also saved in lens.meta.heldOutKL). */
  kl: LensKL;
  /** The last step's training loss (KL summed over layers). */
  finalTrainLoss: number;
}

/**
 * What `sonde tuned-lens train` and the explorer's tuned-lens job do: tokenize a text file, train on its
 * first 90% and measure the held-out KL of the logit and tuned lenses on the rest.
 */
export async function trainTunedLensOnText(
  model: HookedTransformer,
  textFile: string,
  opts: Omit<TunedLensTrainOptions, 'data'> = {},
): Promise<TrainedTunedLens> {
  const data = lensDataset(model, textFile);
  let finalTrainLoss = NaN;
  const lens = await trainTunedLens(model, data, {
    ...opts,
    data: textFile,
    onStep: (step, loss, perLayer) => {
      finalTrainLoss = loss;
      opts.onStep?.(step, loss, perLayer);
    },
  });
  const kl = await lensKL(model, data, lens, { ctx: opts.ctx, evalFraction: opts.evalFraction });
  lens.meta.heldOutKL = { logit: kl.logit, tuned: kl.tuned! };
  return { lens, kl, finalTrainLoss };
}
