// Every long job the server knows (running, queued, recently finished), with progress and Cancel: where
// a job started from a view that was left can be followed or stopped.
import { useCallback, useEffect, useState } from 'react';
import { api, type JobState } from '../api';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { useUrlParam } from '../url-state';

/** How often the list is read again while the view is open. */
const POLL_MS = 1000;

const ACTIVE = new Set(['queued', 'running']);

/** The server's job list, read now and every POLL_MS; `refresh` reads it at once. */
function useJobList(): { jobs: JobState[] | null; error: string | null; refresh: () => void } {
  const [jobs, setJobs] = useState<JobState[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const refresh = useCallback(() => {
    api.get<JobState[]>('jobs').then(
      (list) => {
        setJobs(list);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  }, []);
  useEffect(() => {
    refresh();
    const timer = setInterval(refresh, POLL_MS);
    return () => clearInterval(timer);
  }, [refresh]);
  return { jobs, error, refresh };
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

export function JobsView() {
  const { jobs, error, refresh } = useJobList();
  const [show, setShow] = useUrlParam('show', 'all');
  const [cancelError, setCancelError] = useState<string | null>(null);
  const cancel = (id: string) =>
    api.cancelJob(id).then(
      () => {
        setCancelError(null);
        refresh();
      },
      (e: Error) => setCancelError(e.message),
    );
  const listed = (jobs ?? [])
    .filter((j) => show === 'all' || ACTIVE.has(j.status))
    .sort((a, b) => b.created - a.created);
  return (
    <section aria-label="jobs view" className="jobs-view">
      <div className="jobs-controls">
        <label>
          Show{' '}
          <select value={show} onChange={(e) => setShow(e.target.value)}>
            <option value="all">all jobs</option>
            <option value="active">running and queued</option>
          </select>
        </label>
        <button type="button" onClick={refresh}>
          Refresh
        </button>
        <ExportBar name="jobs" data={listed} />
      </div>
      <ErrorBanner error={error ?? cancelError} />
      {jobs !== null && listed.length === 0 && (
        <p className="summary">
          No {show === 'all' ? '' : 'running or queued '}jobs. Long computations started from a view appear
          here.
        </p>
      )}
      {listed.length > 0 && (
        <table className="jobs-table">
          <caption>Jobs, newest first (the server keeps the last finished ones)</caption>
          <thead>
            <tr>
              <th scope="col">Kind</th>
              <th scope="col">Model</th>
              <th scope="col">Status</th>
              <th scope="col">Progress</th>
              <th scope="col">Time</th>
              <th scope="col">
                <span className="visually-hidden">Actions</span>
              </th>
            </tr>
          </thead>
          <tbody>
            {listed.map((j) => {
              const p = j.progress;
              const active = ACTIVE.has(j.status);
              return (
                <tr
                  key={j.id}
                  data-job={j.id}
                  data-status={j.status}
                  data-done={p?.done ?? ''}
                  data-total={p?.total ?? ''}
                  title={`job ${j.id} · started ${new Date(j.created).toLocaleTimeString()}`}
                >
                  <td>{j.kind}</td>
                  <td>{j.model ?? '—'}</td>
                  <td className={`job-status-${j.status}`}>
                    {j.status}
                    {j.error && <div className="job-error">{j.error.message}</div>}
                  </td>
                  <td>
                    {p ? (
                      <>
                        <progress max={p.total} value={p.done} aria-label={`progress of ${j.kind}`} />{' '}
                        {p.stage ? `${p.stage} ` : ''}
                        {p.done}/{p.total}
                      </>
                    ) : j.status === 'queued' ? (
                      'waiting for a free worker'
                    ) : (
                      '—'
                    )}
                  </td>
                  <td>{seconds((j.finished ?? Date.now()) - j.created)}</td>
                  <td>
                    {active && (
                      <button
                        type="button"
                        onClick={() => void cancel(j.id)}
                        aria-label={`Cancel ${j.kind} job`}
                      >
                        Cancel
                      </button>
                    )}
                  </td>
                </tr>
              );
            })}
          </tbody>
        </table>
      )}
    </section>
  );
}
