// Who may call the API: a loopback server answers its own pages only; any other address needs the token.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

const LOOPBACK = new Set(['127.0.0.1', '::1', 'localhost']);

export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host);
}

/** The token a request carries: `Authorization: Bearer T`, or `?token=T` (EventSource cannot set headers). */
function tokenOf(req: FastifyRequest): string | undefined {
  const auth = req.headers.authorization;
  if (auth?.startsWith('Bearer ')) return auth.slice(7);
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' ? q : undefined;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/**
 * Checks one API request. Pages of other origins get no CORS headers, so browsers never show them an
 * answer; on top of that a request whose Origin is another site, or whose Host is not this server's
 * (DNS rebinding onto a loopback server), is refused, and POSTs must be JSON (a cross-site form cannot
 * send that without a preflight this server never grants).
 */
export function checkRequest(req: FastifyRequest, opts: { token: string | null }): void {
  const host = req.headers.host ?? '';
  const origin = req.headers.origin;
  if (origin !== undefined && origin !== `http://${host}`)
    throw new ApiError(403, `requests from ${origin} are not allowed`);
  if (opts.token === null) {
    const name = host.replace(/:\d+$/, '').replace(/^\[(.*)\]$/, '$1');
    if (!isLoopback(name)) throw new ApiError(403, `host '${host}' is not this server's`);
  } else {
    const given = tokenOf(req);
    if (given === undefined)
      throw new ApiError(
        401,
        'this server needs its token (printed when it started): add ?token=… to the page address',
      );
    if (!sameToken(given, opts.token)) throw new ApiError(401, 'wrong token');
  }
  if (req.method === 'POST' && !(req.headers['content-type'] ?? '').startsWith('application/json'))
    throw new ApiError(415, 'send the request body as application/json');
}
