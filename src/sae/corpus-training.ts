// Training data from a model reading a corpus: the training documents' activations harvested into a
// store on disk, the held-out documents kept to evaluate the trained SAE on. What `sonde sae train
// --hook` and the explorer's sae-train job both run.
import path from 'node:path';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { ActivationStore, harvestActivations, type StoreManifest } from './activation-store.js';
import { readCorpus } from './corpus.js';
import { evaluateSae, type SaeEvaluation } from './evaluate.js';
import { modelName, splitData, type TrainingSplit } from './provenance.js';
import type { SparseAutoencoder } from './sae.js';
import type { TrainingData } from './train.js';
import { storeTrainingData } from './training-data.js';

/** Held-out tokens an SAE trained here is evaluated on. */
export const HELD_OUT_EVAL_TOKENS = 16384;

export interface CorpusTrainingOptions {
  hook: string;
  /** A transcoder's output hook (its targets are harvested too). */
  hookOut?: string | null;
  /** A corpus file (readCorpus). */
  corpus: string;
  ctx: number;
  /** Fraction of the documents held out (0: none, the numbers are then in-sample). */
  testFraction: number;
  /** Rows harvested (the store stops there). */
  maxRows: number;
  /** The store's folder; a transcoder's are `${storeDir}-in` and `${storeDir}-out`. */
  storeDir: string;
  dtype?: 'float32' | 'float16';
  onHarvest?: (hook: string, rowsDone: number) => void;
}

export interface CorpusTraining {
  data: TrainingData;
  /** Rows in the training store. */
  rows: number;
  split: TrainingSplit;
  /** The stores harvested (input, then target for a transcoder). */
  stores: { hook: string; dir: string; manifest: StoreManifest }[];
  /** Provenance for the SAE's cfg.json (SAELens's metadata names). */
  metadata: Record<string, unknown>;
  /** Evaluates an SAE on the held-out documents (null when none are held out). */
  evaluate: ((sae: SparseAutoencoder) => Promise<SaeEvaluation & { on: string }>) | null;
}

export async function corpusTrainingData(
  model: HookedTransformer,
  o: CorpusTrainingOptions,
): Promise<CorpusTraining> {
  const docs = readCorpus(o.corpus);
  const split = splitData(docs.length, o.testFraction, 'documents', docs);
  const texts = docs.slice(0, split.train);
  const stores: CorpusTraining['stores'] = [];
  const harvest = async (hook: string, dir: string) => {
    const manifest = await harvestActivations(model, {
      hook,
      texts,
      outDir: dir,
      ctx: o.ctx,
      dtype: o.dtype,
      maxRows: o.maxRows,
      onProgress: (done) => o.onHarvest?.(hook, done),
    });
    stores.push({ hook, dir, manifest });
    return ActivationStore.open(dir);
  };
  const input = await harvest(o.hook, o.hookOut ? `${o.storeDir}-in` : o.storeDir);
  const target = o.hookOut ? await harvest(o.hookOut, `${o.storeDir}-out`) : undefined;
  const evaluate =
    split.train === split.total
      ? null
      : async (sae: SparseAutoencoder) => {
          const ev = await evaluateSae(model, sae, docs.slice(split.train), {
            ctx: o.ctx,
            maxTokens: HELD_OUT_EVAL_TOKENS,
          });
          const on = `held-out documents ${split.train + 1}-${split.total} of ${split.total} (${ev.rows} tokens)`;
          return { ...ev, on };
        };
  return {
    data: storeTrainingData(input, target),
    rows: input.rows,
    split,
    stores,
    metadata: {
      model_name: modelName(model.source),
      model_path: model.source,
      dataset_path: path.resolve(o.corpus),
      context_size: o.ctx,
      prepend_bos: true,
    },
    evaluate,
  };
}
