// What a long job is: a validated request and a function that runs it in a worker, reporting progress.
import type { z } from 'zod';
import type { HookedTransformer } from '../../hooks/hooked-transformer.js';
import type { SparseAutoencoder } from '../../sae/sae.js';
import type { Registry } from '../registry.js';

export interface JobProgress {
  done: number;
  total: number;
  /** What is being done now ('acdc 0.01', 'training', …). */
  stage?: string;
}

/** What a job's function gets inside its worker. */
export interface JobContext {
  /** The open model `id` names (undefined = the first), loaded once per worker from its folder. */
  model(id: string | undefined): HookedTransformer;
  sae(id: string): SparseAutoencoder;
  /** The open SAE's folder (where its feature store lives). */
  saeDir(id: string): string;
  progress(p: JobProgress): void;
}

export interface JobKind<S extends z.ZodType = z.ZodType> {
  /** The request's params (validated in the server before a worker starts). */
  params: S;
  run(ctx: JobContext, params: z.output<S>): Promise<unknown>;
  /** In the server, before the job is queued: refuses what the schema cannot see (an ApiError). */
  check?: (params: z.output<S>, registry: Registry) => void;
  /** In the server, when the job is done: opens what it made and returns the answer to show. */
  adopt?: (result: unknown, registry: Registry) => unknown;
}

/** Declares a job kind with its params' type inferred from the schema. */
export function jobKind<S extends z.ZodType>(
  params: S,
  run: (ctx: JobContext, p: z.output<S>) => Promise<unknown>,
  more: Pick<JobKind<S>, 'check' | 'adopt'> = {},
): JobKind<S> {
  return { params, run, ...more };
}
