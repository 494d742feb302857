// Data hooks the views share: a request keyed by its parameters, and a long job with progress.
import { useCallback, useEffect, useRef, useState } from 'react';
import { api, type JobState } from './api';

export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
}

/**
 * Runs `fetcher` whenever `key` changes (null: nothing to run yet), keeping the last answer; an answer
 * to an older key is dropped.
 */
export function useRequest<T>(key: string | null, fetcher: () => Promise<T>): Loaded<T> {
  const [state, setState] = useState<Loaded<T>>({ data: null, error: null, loading: false });
  const latest = useRef(key);
  useEffect(() => {
    latest.current = key;
    if (key === null) return;
    setState((s) => ({ ...s, loading: true, error: null }));
    fetcher().then(
      (data) => latest.current === key && setState({ data, error: null, loading: false }),
      (e: Error) => latest.current === key && setState({ data: null, error: e.message, loading: false }),
    );
    // The key stands for everything the fetcher reads.
  }, [key]);
  return state;
}

export interface JobHandle<R> {
  job: JobState | null;
  result: R | null;
  error: string | null;
  running: boolean;
  start(params: unknown): void;
  cancel(): void;
}

/** A long job of one kind: start it, follow its progress, cancel it; the last result stays shown. */
export function useJob<R>(kind: string): JobHandle<R> {
  const [job, setJob] = useState<JobState | null>(null);
  const [error, setError] = useState<string | null>(null);
  const stop = useRef<(() => void) | null>(null);
  /** The job followed now, to cancel it when a new one replaces it (it would hold the queue). */
  const current = useRef<JobState | null>(null);
  useEffect(() => () => stop.current?.(), []);
  const start = useCallback(
    (params: unknown) => {
      stop.current?.();
      const prev = current.current;
      if (prev && (prev.status === 'queued' || prev.status === 'running'))
        api.cancelJob(prev.id).catch(() => {});
      setError(null);
      api.startJob(kind, params).then(
        (j) => {
          setJob((current.current = j));
          stop.current = api.followJob(j.id, (s) => {
            setJob((current.current = s));
            if (s.status === 'failed') setError(s.error?.message ?? 'the job failed');
          });
        },
        (e: Error) => setError(e.message),
      );
    },
    [kind],
  );
  const cancel = useCallback(() => {
    if (job) api.cancelJob(job.id).then(setJob, (e: Error) => setError(e.message));
  }, [job]);
  const running = job?.status === 'queued' || job?.status === 'running';
  const result = job?.status === 'done' ? (job.result as R) : null;
  return { job, result, error, running, start, cancel };
}

/**
 * Starts a job whenever `key` (its params as JSON; null: nothing to run) changes: the address holds the
 * request, so opening a shared address runs it again. Once per key, even where effects run twice.
 */
export function useStartOnce(key: string | null, start: (params: unknown) => void): void {
  const started = useRef<string | null>(null);
  useEffect(() => {
    if (key === null || started.current === key) return;
    started.current = key;
    start(JSON.parse(key));
  }, [key]);
}
