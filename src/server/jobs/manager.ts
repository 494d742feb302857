// Long jobs run in worker processes, so the server keeps answering while one computes; cancelling one
// kills its worker at once. Processes, not worker threads: terminating a thread inside an ONNX Runtime
// call aborts the whole server (the binding throws a C++ exception nobody catches); SIGKILL to a
// process is safe at any moment. Events go to every listener (the SSE streams).
import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { removeLeftoversOf } from '../../io/leftovers.js';
import { fileURLToPath } from 'node:url';
import { ApiError, errorAnswer, type ErrorBody } from '../errors.js';
import { parse } from '../validate.js';
import type { JobProgress } from './kind.js';
import { JOB_KINDS } from './kinds.js';
import type { WorkerInput, WorkerMessage } from './protocol.js';

export type JobStatus = 'queued' | 'running' | 'done' | 'failed' | 'cancelled';

/** A job as GET /api/jobs/:id shows it. */
export interface JobState {
  id: string;
  kind: string;
  /** The model it runs on (its params' `model`, else the default one). */
  model: string | null;
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
  /**
   * Called in the server with a job's result when it is done, before anyone sees it: what the job made
   * (an SAE's folder) is opened here, and the answer says under which id.
   */
  adopt?: (kind: string, result: unknown) => unknown;
  /**
   * Called in the server with a job's validated params before it is queued: refuses (an ApiError) a
   * model that is not open, or what its kind checks.
   */
  check?: (kind: string, params: unknown) => void;
}

interface Job {
  state: JobState;
  input: WorkerInput;
  worker: ChildProcess | null;
  events: EventEmitter;
}

const TERMINAL: ReadonlySet<JobStatus> = new Set(['done', 'failed', 'cancelled']);

export class JobManager {
  private readonly jobs = new Map<string, Job>();
  /** Worker processes not yet exited (a killed worker leaves this set when it has exited). */
  private readonly workers = new Set<ChildProcess>();
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
    this.opts.check?.(kind, parsed);
    const id = randomUUID();
    const job: Job = {
      state: {
        id,
        kind,
        model: modelOf(parsed) ?? this.opts.models()[0]?.[0] ?? null,
        status: 'queued',
        progress: null,
        created: Date.now(),
        finished: null,
      },
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

  /** Stops a queued or running job (its worker is killed); a finished job is left as it is. */
  async cancel(id: string): Promise<JobState> {
    const job = this.job(id);
    await this.stop(job);
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

  /** Worker processes alive now (one per running job; a cancelled job's is gone once cancel() resolves). */
  runningWorkers(): number {
    return this.workers.size;
  }

  /** Process ids of the live workers (to check from outside that they are gone). */
  workerPids(): number[] {
    return [...this.workers].map((w) => w.pid!);
  }

  /** Cancels every queued and running job and waits for their workers to exit (server shutdown). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.jobs.values()].map((job) => this.stop(job)));
    await Promise.all([...this.workers].map(kill));
  }

  /**
   * Kills every worker at once, synchronously (a signal handler's last act before the process exits),
   * and removes what they were writing once they are dead (nobody else will: they are not the
   * launcher's children).
   */
  killAll(): void {
    this.closed = true;
    const pids = [...this.workers].flatMap((w) => (w.kill('SIGKILL') && w.pid !== undefined ? [w.pid] : []));
    for (const pid of pids) if (waitDeadSync(pid, 2000)) removeLeftoversOf(pid);
  }

  private async stop(job: Job): Promise<void> {
    if (TERMINAL.has(job.state.status)) return;
    const worker = job.worker;
    this.finish(job, { status: 'cancelled' });
    if (worker) await kill(worker);
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
    const worker = spawnWorker();
    job.worker = worker;
    this.workers.add(worker);
    this.update(job, { status: 'running' });
    worker.send(job.input);
    worker.on('message', (m: WorkerMessage) => {
      if (TERMINAL.has(job.state.status)) return;
      if (m.type === 'progress') this.update(job, { progress: m.progress });
      else if (m.type === 'result') this.finish(job, { status: 'done', result: m.result });
      else this.finish(job, { status: 'failed', error: m.error.error });
    });
    worker.on('error', (e) =>
      this.finish(job, { status: 'failed', error: { type: 'internal', message: e.message } }),
    );
    worker.on('exit', (code, signal) => {
      this.workers.delete(worker);
      // A killed job leaves what it was writing (a feature store's temp file): its journal names it.
      if (signal !== null && worker.pid !== undefined) removeLeftoversOf(worker.pid);
      if (!TERMINAL.has(job.state.status))
        this.finish(job, {
          status: 'failed',
          error: { type: 'internal', message: `the job's worker exited (${signal ?? `code ${code}`})` },
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
    if (change.status === 'done' && this.opts.adopt) {
      try {
        change = { ...change, result: this.opts.adopt(job.state.kind, change.result) };
      } catch (e) {
        change = { status: 'failed', error: errorAnswer(e).body.error };
      }
    }
    this.update(job, { ...change, finished: Date.now() });
    job.events.removeAllListeners();
    if (worker && change.status !== 'cancelled') void kill(worker);
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

export function modelOf(params: unknown): string | undefined {
  const m = (params as { model?: unknown } | null)?.model;
  return typeof m === 'string' ? m : undefined;
}

/**
 * Waits (blocking) until child `pid` is dead or a zombie: no event loop turns in a signal handler, so
 * an unreaped child stays a zombie, which kill(pid, 0) would still call alive. Linux reads /proc; where
 * there is none it waits a fixed 200 ms, long enough for a SIGKILL to land.
 */
function waitDeadSync(pid: number, ms: number): boolean {
  const nap = (t: number) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, t);
  if (!fs.existsSync('/proc/self/stat')) return (nap(200), true);
  for (const end = Date.now() + ms; Date.now() < end; nap(10)) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      return true;
    }
    // State is the field after the parenthesised command name.
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return true;
  }
  return false;
}

/** Kills a worker process and resolves once it has exited. */
function kill(worker: ChildProcess): Promise<void> {
  if (worker.exitCode !== null || worker.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    worker.once('exit', () => resolve());
    worker.kill('SIGKILL');
  });
}

/**
 * A worker process runs the compiled module next to this one, or from TypeScript sources (tests, tsx)
 * the .ts file through tsx's loader. Its stdout is dropped (`--json` keeps one line on the server's);
 * it reads its job from the first message.
 */
function spawnWorker(): ChildProcess {
  const here = import.meta.url;
  const compiled = here.endsWith('.js');
  const file = fileURLToPath(new URL(compiled ? './worker.js' : './worker.ts', here));
  return fork(file, [], {
    execArgv: compiled ? [] : ['--import', import.meta.resolve('tsx')],
    serialization: 'advanced',
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
}
