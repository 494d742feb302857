import type { JobHandle } from '../hooks';

/** A running job's progress bar and its Cancel button; after it, how it ended. */
export function JobProgress({ handle }: { handle: JobHandle<unknown> }) {
  const { job, running, cancel } = handle;
  if (job === null) return null;
  const p = job.progress;
  return (
    <div className="job" data-status={job.status}>
      {running ? (
        <>
          <progress max={p?.total ?? 1} value={p?.done ?? 0} aria-label="progress" />
          <span>
            {p ? `${p.stage ?? ''} ${p.done}/${p.total}` : job.status === 'queued' ? 'queued' : 'starting'}
          </span>
          <button type="button" onClick={cancel}>
            Cancel
          </button>
        </>
      ) : (
        <span className="job-status">
          {job.status === 'done'
            ? `done in ${((job.finished! - job.created) / 1000).toFixed(1)} s`
            : job.status}
        </span>
      )}
    </div>
  );
}
