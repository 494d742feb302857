// Long jobs run in worker threads, so the server keeps answering while one computes; cancelling one
// stops it at its next progress report, then terminates its worker. Events go to every listener (the SSE
// streams).
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import type { ErrorBody } from '../errors.js';
import { ApiError } from '../errors.js';
import { parse } from '../validate.js';
import type { JobProgress } from './kind.js';
import { JOB_KINDS } from './kinds.js';
import type { WorkerInput, WorkerMessage } from './protocol.js';

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** A job as GET /api/jobs/:id shows it. */
export interface JobState {
  id: string;
  kind: string;
  status: JobStatus;
  progress: JobProgress | null;
  result?: unknown;
  error?: ErrorBody['error'];
  /** Milliseconds since the epoch. */
  created: number;
  finished: number | null;
}

/** What an SSE stream sends: the job's state after each change. */
export type JobEvent = { type: 'state'; state: JobState };

export interface JobManagerOptions {
  /** Jobs that run at once; more wait in a queue (each job's worker uses ONNX Runtime's threads). */
  concurrency?: number;
  /** Finished jobs kept for GET (the oldest are forgotten). */
  keep?: number;
  /** Folders of the open models and SAEs, by id, for the workers. */
  models: () => [string, string][];
  saes: () => [string, string][];
}

interface Job {
  state: JobState;
  input: WorkerInput;
  worker: Worker | null;
  events: EventEmitter;
}

const TERMINAL: ReadonlySet<JobStatus> = new Set(['done', 'failed', 'cancelled']);

export class JobManager {
  private readonly jobs = new Map<string, Job>();
  private readonly concurrency: number;
  private readonly keep: number;
  /** Workers of cancelled jobs that are still unwinding. */
  private readonly stopping = new Set<Promise<void>>();

  constructor(private readonly opts: JobManagerOptions) {
    this.concurrency = opts.concurrency ?? 1;
    this.keep = opts.keep ?? 50;
  }

  /** Validates the params against the kind's schema (a 400 when wrong) and queues the job. */
  start(kind: string, params: unknown): JobState {
    const k = JOB_KINDS[kind];
    if (k === undefined)
      throw new ApiError(400, `unknown job kind '${kind}' (known: ${Object.keys(JOB_KINDS).join(', ')})`);
    const parsed = parse(k.params, params);
    const id = randomUUID();
    const job: Job = {
      state: { id, kind, status: 'queued', progress: null, created: Date.now(), finished: null },
      input: {
        kind,
        params: parsed,
        models: this.opts.models(),
        saes: this.opts.saes(),
        cancel: new Int32Array(new SharedArrayBuffer(4)),
      },
      worker: null,
      events: new EventEmitter(),
    };
    this.jobs.set(id, job);
    this.forgetOld();
    this.pump();
    return job.state;
  }

  get(id: string): JobState {
    return this.job(id).state;
  }

  list(): JobState[] {
    return [...this.jobs.values()].map((j) => ({ ...j.state, result: undefined }));
  }

  /** Stops a queued or running job (its worker is terminated); a finished job is left as it is. */
  async cancel(id: string): Promise<JobState> {
    const job = this.job(id);
    if (TERMINAL.has(job.state.status)) return job.state;
    const worker = job.worker;
    this.finish(job, { status: 'cancelled' });
    if (worker) {
      const stopped = stopWorker(worker, job.input.cancel);
      this.stopping.add(stopped);
      void stopped.finally(() => this.stopping.delete(stopped));
    }
    return job.state;
  }

  /** Calls `fn` with the job's state now and after every change until it ends; returns the unsubscribe. */
  subscribe(id: string, fn: (e: JobEvent) => void): () => void {
    const job = this.job(id);
    fn({ type: 'state', state: job.state });
    if (TERMINAL.has(job.state.status)) return () => {};
    job.events.on('event', fn);
    return () => job.events.off('event', fn);
  }

  /** Cancels every job and waits for their workers to end (server shutdown). */
  async close(): Promise<void> {
    await Promise.all([...this.jobs.keys()].map((id) => this.cancel(id)));
    await Promise.all([...this.stopping]);
  }

  private job(id: string): Job {
    const job = this.jobs.get(id);
    if (job === undefined) throw new ApiError(404, `no job '${id}'`);
    return job;
  }

  private pump(): void {
    const running = [...this.jobs.values()].filter((j) => j.state.status === 'running').length;
    const next = [...this.jobs.values()].find((j) => j.state.status === 'queued');
    if (next === undefined || running >= this.concurrency) return;
    this.launch(next);
    this.pump();
  }

  private launch(job: Job): void {
    const worker = spawnWorker(job.input);
    job.worker = worker;
    this.update(job, { status: 'running' });
    worker.on('message', (m: WorkerMessage) => {
      if (TERMINAL.has(job.state.status)) return;
      if (m.type === 'progress') this.update(job, { progress: m.progress });
      else if (m.type === 'result') this.finish(job, { status: 'done', result: m.result });
      else this.finish(job, { status: 'failed', error: m.error.error });
    });
    worker.on('error', (e) =>
      this.finish(job, { status: 'failed', error: { type: 'internal', message: e.message } }),
    );
    worker.on('exit', (code) => {
      if (!TERMINAL.has(job.state.status))
        this.finish(job, {
          status: 'failed',
          error: { type: 'internal', message: `the job's worker exited (code ${code})` },
        });
    });
  }

  private update(job: Job, change: Partial<JobState>): void {
    Object.assign(job.state, change);
    job.events.emit('event', { type: 'state', state: job.state } satisfies JobEvent);
  }

  private finish(job: Job, change: Partial<JobState>): void {
    if (TERMINAL.has(job.state.status)) return;
    const worker = job.worker;
    job.worker = null;
    this.update(job, { ...change, finished: Date.now() });
    job.events.removeAllListeners();
    if (worker && change.status !== 'cancelled') void worker.terminate();
    this.pump();
  }

  private forgetOld(): void {
    const done = [...this.jobs.values()].filter((j) => TERMINAL.has(j.state.status));
    for (const j of done.slice(0, Math.max(0, done.length - this.keep))) this.jobs.delete(j.state.id);
  }
}

/**
 * How long a cancelled job may take to reach its next progress report before its worker is killed (a
 * step can include compiling the model, seconds on a busy machine).
 */
const CANCEL_GRACE_MS = 60_000;

/**
 * Asks the worker's job to stop (its next ctx.progress throws) and terminates the worker once the job has
 * unwound (it answers with an error), or after CANCEL_GRACE_MS; the job shows as cancelled at once. Terminating a worker in the middle of a
 * native call (ONNX Runtime, DuckDB) can abort the whole process ("terminate called after throwing
 * Napi::Error").
 */
async function stopWorker(worker: Worker, cancel: Int32Array): Promise<void> {
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, CANCEL_GRACE_MS);
    const done = () => {
      clearTimeout(timer);
      resolve();
    };
    worker.once('exit', done);
    worker.on('message', (m: WorkerMessage) => m.type !== 'progress' && done());
    Atomics.store(cancel, 0, 1);
  });
  await worker.terminate();
}

/**
 * The worker runs the compiled module next to this one; from TypeScript sources (tests, tsx) it goes
 * through tsx's loader, which a worker does not inherit from its parent.
 */
function spawnWorker(input: WorkerInput): Worker {
  const here = import.meta.url;
  if (here.endsWith('.js')) return new Worker(new URL('./worker.js', here), { workerData: input });
  const file = new URL('./worker.ts', here).href;
  const boot = `import('tsx/esm/api').then(({ register }) => { register(); return import(${JSON.stringify(file)}); });`;
  return new Worker(boot, { eval: true, workerData: input });
}
