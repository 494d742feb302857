// Training data for the SAE trainer from activation stores (harvested folders or .npy/.safetensors
// files). A transcoder's targets come from a second store with the same row order: two streams with
// the same seed and row count shuffle identically, so their batches stay row-aligned.
import type { ActivationStore, StreamState } from './activation-store.js';
import { SaeTrainError, type TrainingData } from './train.js';

/** Trains on the first `trainRows` rows (default: all); the rest stay out of training (held out). */
export function storeTrainingData(
  input: ActivationStore,
  target?: ActivationStore,
  trainRows = input.rows,
): TrainingData {
  if (target && target.rows !== input.rows) {
    throw new SaeTrainError(
      `transcoder inputs have ${input.rows} rows but targets have ${target.rows}: they must be row-aligned`,
    );
  }
  const stream = (store: ActivationStore) => (batchSize: number, seed: number, state?: unknown) =>
    store.stream({ batchSize, seed, rows: trainRows }, state as StreamState | undefined);
  return {
    dIn: input.dim,
    dOut: target?.dim ?? input.dim,
    input: stream(input),
    target: target ? stream(target) : undefined,
    sample: (n) => {
      const rows = Math.min(n, trainRows);
      return { input: input.readAll(rows), target: target?.readAll(rows) };
    },
  };
}
