// The page's only way to the server: JSON calls, long jobs followed over server-sent events.
import type { JobState } from '../../src/server/jobs/manager.js';
import type { RegistryInfo } from '../../src/server/registry.js';

export type { JobState };
export type Info = RegistryInfo & { auth: boolean };

/** The server's message for a refused request (shown in the page as is). */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The token a non-loopback server printed, taken from the page address (?token=…). */
const token = new URLSearchParams(location.search).get('token');

function withToken(url: string): string {
  return token === null ? url : `${url}${url.includes('?') ? '&' : '?'}token=${encodeURIComponent(token)}`;
}

async function call<T>(method: string, url: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let res: Response;
  try {
    res = await fetch(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch {
    throw new ApiError(0, 'the server does not answer (is sonde serve still running?)');
  }
  const data = (await res.json().catch(() => null)) as { error?: { message: string } } | null;
  if (!res.ok) throw new ApiError(res.status, data?.error?.message ?? `${res.status} ${res.statusText}`);
  return data as T;
}

export const api = {
  info: () => call<Info>('GET', '/api/info'),
  post: <T>(path: string, body: unknown) => call<T>('POST', `/api/${path}`, body),
  get: <T>(path: string) => call<T>('GET', `/api/${path}`),
  startJob: (kind: string, params: unknown) => call<JobState>('POST', '/api/jobs', { kind, params }),
  cancelJob: (id: string) => call<JobState>('DELETE', `/api/jobs/${id}`),
  /** Calls `onState` with each change of the job until it ends; returns a function that stops listening. */
  followJob(id: string, onState: (s: JobState) => void): () => void {
    const source = new EventSource(withToken(`/api/jobs/${id}/events`));
    source.addEventListener('state', (e) => {
      const state = JSON.parse((e as MessageEvent<string>).data) as JobState;
      onState(state);
      if (state.status !== 'queued' && state.status !== 'running') source.close();
    });
    source.onerror = () => source.close();
    return () => source.close();
  },
};
