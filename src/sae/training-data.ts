// Training data for the SAE trainer from activation stores (harvested folders or .npy/.safetensors
// files). A transcoder's targets come from a second store with the same row order: two streams with
// the same seed and row count shuffle identically, so their batches stay row-aligned.
import type { ActivationStore, StreamState } from './activation-store.js';
import { SaeTrainError, type TrainingData } from './train.js';

export function storeTrainingData(input: ActivationStore, target?: ActivationStore): TrainingData {
  if (target && target.rows !== input.rows) {
    throw new SaeTrainError(
      `transcoder inputs have ${input.rows} rows but targets have ${target.rows}: they must be row-aligned`,
    );
  }
  const stream = (store: ActivationStore) => (batchSize: number, seed: number, state?: unknown) =>
    store.stream({ batchSize, seed }, state as StreamState | undefined);
  return {
    dIn: input.dim,
    dOut: target?.dim ?? input.dim,
    input: stream(input),
    target: target ? stream(target) : undefined,
    sample: (n) => {
      const rows = Math.min(n, input.rows);
      return { input: input.readAll(rows), target: target?.readAll(rows) };
    },
  };
}
