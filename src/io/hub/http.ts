// HTTP with the Hub: request headers, network failures as HubNetworkError, and error responses mapped
// to one error class each from the Hub's X-Error-Code / X-Error-Message headers.
import {
  EntryNotFoundError,
  GatedRepoError,
  HubAuthError,
  HubError,
  HubHttpError,
  HubNetworkError,
  RepoNotFoundError,
  RevisionNotFoundError,
} from './errors.js';

/** What a request is for, to word its errors. */
export interface RequestContext {
  endpoint: string;
  repoId: string;
  revision: string;
  filename?: string;
  token?: string;
}

export function describe(ctx: RequestContext): string {
  return ctx.filename
    ? `'${ctx.filename}' of '${ctx.repoId}' (revision ${ctx.revision})`
    : `'${ctx.repoId}' (revision ${ctx.revision})`;
}

/** Headers for Hub requests; identity encoding so that sizes and byte ranges mean file bytes. */
export function hubHeaders(
  token: string | undefined,
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    'user-agent': `sonde; node/${process.versions.node}`,
    'accept-encoding': 'identity',
    ...(token ? { authorization: `Bearer ${token}` } : {}),
    ...extra,
  };
}

/** fetch, with connection failures turned into HubNetworkError. */
export async function hubFetch(url: string, init: RequestInit, ctx: RequestContext): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (e) {
    throw new HubNetworkError(url, describe(ctx), networkCause(e));
  }
}

/** The most specific reason undici gives for a failed request: ECONNREFUSED, ENOTFOUND, "bad port"... */
export function networkCause(e: unknown): string {
  let err = e as { code?: unknown; message?: unknown; cause?: unknown } | undefined;
  let message = String(e);
  for (let i = 0; i < 5 && err; i++) {
    if (typeof err.code === 'string' && !err.code.startsWith('UND_ERR_')) return err.code;
    if (typeof err.message === 'string' && err.message !== '') message = err.message;
    err = err.cause as typeof err;
  }
  return message;
}

/** A non-2xx/3xx Hub response as the matching error class. */
export function errorForResponse(res: Response, ctx: RequestContext): HubError {
  const code = res.headers.get('x-error-code');
  const message = res.headers.get('x-error-message') ?? undefined;
  const hasToken = ctx.token !== undefined;
  if (code === 'RevisionNotFound') return new RevisionNotFoundError(ctx.repoId, ctx.revision);
  if (code === 'EntryNotFound') {
    return new EntryNotFoundError(ctx.repoId, ctx.revision, ctx.filename ?? '(unknown file)');
  }
  if (code === 'GatedRepo') return new GatedRepoError(ctx.repoId, res.status, hasToken, message);
  if (res.status === 401 && message === 'Invalid credentials in Authorization header') {
    return new HubAuthError(ctx.repoId);
  }
  // Without a token the Hub answers 401 RepoNotFound for private repos as for missing ones: the message
  // covers both.
  if (code === 'RepoNotFound' || (res.status === 404 && !ctx.filename)) {
    return new RepoNotFoundError(ctx.repoId, ctx.endpoint, hasToken);
  }
  if (res.status === 401 || res.status === 403)
    return new GatedRepoError(ctx.repoId, res.status, hasToken, message);
  if (res.status === 404 && ctx.filename)
    return new EntryNotFoundError(ctx.repoId, ctx.revision, ctx.filename);
  return new HubHttpError(res.status, res.url, describe(ctx), message);
}

/** Statuses worth another try: timeouts, rate limits, server errors. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}
