// Messages between the job manager and a job's worker thread.
import type { ErrorBody } from '../errors.js';
import type { JobProgress } from './kind.js';

/** workerData of a job's worker. */
export interface WorkerInput {
  kind: string;
  params: unknown;
  /** Folders of the open models and SAEs, by id (the first model is the default). */
  models: [string, string][];
  saes: [string, string][];
  /** Int32 flag the manager sets to cancel: the job stops at its next progress report. */
  cancel: SharedArrayBuffer;
}

export type WorkerMessage =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'result'; result: unknown }
  | { type: 'error'; status: number; error: ErrorBody }
  /** The job saw the cancel flag and stopped: the worker is idle and can be terminated safely. */
  | { type: 'cancelled' };
