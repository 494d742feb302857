// Who may call the API: a loopback server answers its own pages only; any other address needs the token.
import { timingSafeEqual } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

/** Host names that reach this machine only (brackets of IPv6 literals removed, lower case). */
const LOOPBACK = new Set(['localhost', '127.0.0.1', '::1']);

/** Whether an address (`--host`, or a Host header's name) reaches this machine only. */
export function isLoopback(host: string): boolean {
  return LOOPBACK.has(host.toLowerCase().replace(/^\[(.*)\]$/, '$1'));
}

/** What a server accepts: its token (null: none), and whether it is bound to a loopback address. */
export interface SecurityPolicy {
  token: string | null;
  /** A loopback server refuses any Host name but its own, token or not (DNS rebinding). */
  loopback: boolean;
}

/**
 * The host name (without port; IPv6 without brackets) of a Host header, or null when it is not a bare
 * `name[:port]` (user info, paths and junk are refused rather than guessed at).
 */
export function hostName(header: string): string | null {
  if (header === '' || /[\s/\\?#@]/.test(header)) return null;
  try {
    const u = new URL(`http://${header}`);
    if (u.host !== header.toLowerCase().replace(/:80$/, '')) return null;
    return u.hostname.replace(/^\[(.*)\]$/, '$1');
  } catch {
    return null;
  }
}

/** The token a request carries: `Authorization: Bearer T`, or `?token=T` (EventSource cannot set headers). */
function tokenOf(req: FastifyRequest): string | undefined {
  const auth = /^bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '');
  if (auth) return auth[1];
  const q = (req.query as Record<string, unknown> | undefined)?.token;
  return typeof q === 'string' ? q : undefined;
}

function sameToken(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

/** Methods that carry a body, which must be JSON. */
const WITH_BODY = new Set(['POST', 'PUT', 'PATCH']);

/**
 * Checks one API request. Pages of other origins get no CORS headers, so browsers never show them an
 * answer; on top of that a request from another site (its Origin, or Sec-Fetch-Site for requests that
 * carry no Origin), or whose Host is not this server's (DNS rebinding onto a loopback server), is refused
 * before any work, and bodies must be JSON (a cross-site form cannot send that without a preflight, which
 * this server never grants).
 */
export function checkRequest(req: FastifyRequest, policy: SecurityPolicy): void {
  const host = req.headers.host ?? '';
  const name = hostName(host);
  if (name === null) throw new ApiError(400, `the Host header '${host}' is not a host name`);
  if (policy.loopback && !isLoopback(name))
    throw new ApiError(403, `host '${host}' is not this server's (it answers on localhost only)`);
  const origin = req.headers.origin;
  if (origin !== undefined && !sameOrigin(origin, host))
    throw new ApiError(403, `requests from ${origin} are not allowed`);
  if (req.headers['sec-fetch-site'] === 'cross-site')
    throw new ApiError(403, 'requests from other sites are not allowed');
  if (policy.token !== null) {
    const given = tokenOf(req);
    if (given === undefined)
      throw new ApiError(
        401,
        'this server needs its token (printed when it started): open the address it printed, with ?token=…',
      );
    if (!sameToken(given, policy.token)) throw new ApiError(401, 'wrong token');
  }
  const hasBody = WITH_BODY.has(req.method) || Number(req.headers['content-length'] ?? 0) > 0;
  if (hasBody && mediaType(req.headers['content-type']) !== 'application/json')
    throw new ApiError(415, 'send the request body as application/json');
}

/** An Origin is this server's when it names the same host and port (http, or https behind a proxy). */
function sameOrigin(origin: string, host: string): boolean {
  try {
    const u = new URL(origin);
    return (u.protocol === 'http:' || u.protocol === 'https:') && u.host === new URL(`http://${host}`).host;
  } catch {
    return false; // 'null' (sandboxed frames, file://) and junk
  }
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}
