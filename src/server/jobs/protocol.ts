// Messages between the job manager and a job's worker process.
import type { ErrorBody } from '../errors.js';
import type { JobProgress } from './kind.js';

/** The job a worker runs (its first message). */
export interface WorkerInput {
  kind: string;
  params: unknown;
  /** Folders of the open models and SAEs, by id (the first model is the default). */
  models: [string, string][];
  saes: [string, string][];
}

export type WorkerMessage =
  | { type: 'progress'; progress: JobProgress }
  | { type: 'result'; result: unknown }
  | { type: 'error'; status: number; error: ErrorBody };
