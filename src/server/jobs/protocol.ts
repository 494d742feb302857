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
  /**
   * Set to 1 by the manager when the job is cancelled (shared memory: a busy job may not turn its event
   * loop, so a message would not arrive); ctx.progress then throws.
   */
  cancel: Int32Array;
}

export type WorkerMessage =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'result'; result: unknown }
  | { type: 'error'; status: number; error: ErrorBody };
