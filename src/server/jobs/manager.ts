// Long jobs run in worker threads, so the server keeps answering while one computes; cancelling one
// terminates its worker at once. Events go to every listener (the SSE streams).
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
  /** Worker threads not yet exited (a terminated worker leaves this set when it has stopped). */
  private readonly workers = new Set<Worker>();
  private readonly concurrency: number;
  private readonly keep: number;
  private closed = false;

  constructor(private readonly opts: JobManagerOptions) {
    this.concurrency = opts.concurrency ?? 1;
    this.keep = opts.keep ?? 50;
  }

  /** Validates the params against the kind's schema (a 400 when wrong) and queues the job. */
  start(kind: string, params: unknown): JobState {
    if (this.closed) throw new ApiError(503, 'the server is shutting down');
    const k = JOB_KINDS[kind];
    if (k === undefined)
      throw new ApiError(400, `unknown job kind '${kind}' (known: ${Object.keys(JOB_KINDS).join(', ')})`);
    const parsed = parse(k.params, params);
    const id = randomUUID();
    const job: Job = {
      state: { id, kind, status: 'queued', progress: null, created: Date.now(), finished: null },
      input: { kind, params: parsed, models: this.opts.models(), saes: this.opts.saes() },
      worker: null,
      events: new EventEmitter().setMaxListeners(100),
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
      await worker.terminate();
      this.workers.delete(worker);
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

  /** Worker threads alive now (one per running job; a cancelled job's is gone once cancel() resolves). */
  runningWorkers(): number {
    return this.workers.size;
  }

  /** Cancels every queued and running job and waits for their workers to stop (server shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.jobs.keys()].map((id) => this.cancel(id)));
    await Promise.all([...this.workers].map((w) => w.terminate()));
    this.workers.clear();
  }

  private job(id: string): Job {
    const job = this.jobs.get(id);
    if (job === undefined) throw new ApiError(404, `no job '${id}'`);
    return job;
  }

  private pump(): void {
    if (this.closed) return;
    const running = [...this.jobs.values()].filter((j) => j.state.status === 'running').length;
    const next = [...this.jobs.values()].find((j) => j.state.status === 'queued');
    if (next === undefined || running >= this.concurrency) return;
    this.launch(next);
    this.pump();
  }

  private launch(job: Job): void {
    const worker = spawnWorker(job.input);
    job.worker = worker;
    this.workers.add(worker);
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
      this.workers.delete(worker);
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
    this.forgetOld();
    this.pump();
  }

  /** Keeps the newest `keep` finished jobs (queued and running ones are never forgotten). */
  private forgetOld(): void {
    const done = [...this.jobs.values()]
      .filter((j) => TERMINAL.has(j.state.status))
      .sort((a, b) => a.state.finished! - b.state.finished!);
    for (const j of done.slice(0, Math.max(0, done.length - this.keep))) this.jobs.delete(j.state.id);
  }
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
