// The HEAD request that tells which commit a revision is at, the file's etag (its content hash) and size,
// and where to GET it: LFS files answer with a redirect to a CDN, plain git files answer directly.
import { HubProtocolError } from './errors.js';
import { errorForResponse, hubFetch, hubHeaders, type RequestContext } from './http.js';

export interface FileMetadata {
  /** The commit the revision resolved to (X-Repo-Commit). */
  commit: string;
  /** sha256 of the content for LFS files, git blob sha1 otherwise; without quotes or W/. */
  etag: string;
  size: number;
  /** The URL to GET: the CDN location of an LFS file, else the resolve URL. */
  location: string;
}

/** {endpoint}/{repo}/resolve/{revision}/{file}, with the revision and each path segment escaped. */
export function resolveUrl(endpoint: string, repoId: string, revision: string, filename: string): string {
  const file = filename.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/** W/"abc" or "abc" → abc. */
export function normalizeEtag(etag: string | null): string | null {
  return etag === null ? null : etag.replace(/^W\//, '').replace(/^"|"$/g, '');
}

/**
 * HEAD the resolve URL. Relative redirects (a renamed repo, the resolve cache) are followed, as
 * huggingface_hub does; a redirect to another host (the LFS CDN) is not: its headers carry the linked
 * etag and size, and its Location is where to download from.
 */
export async function fileMetadata(ctx: RequestContext & { filename: string }): Promise<FileMetadata> {
  let url = resolveUrl(ctx.endpoint, ctx.repoId, ctx.revision, ctx.filename);
  const headers = hubHeaders(ctx.token);
  for (let hop = 0; ; hop++) {
    const res = await hubFetch(url, { method: 'HEAD', headers, redirect: 'manual' }, ctx);
    const location = res.headers.get('location');
    const redirect = res.status >= 300 && res.status < 400 && location !== null;
    if (redirect && hop < 10 && isRelative(location)) {
      url = new URL(location, url).toString();
      continue;
    }
    if (!redirect && !res.ok) throw errorForResponse(res, ctx);
    const commit = res.headers.get('x-repo-commit');
    if (!commit) throw new HubProtocolError(url, 'an X-Repo-Commit header');
    const etag = normalizeEtag(res.headers.get('x-linked-etag') ?? res.headers.get('etag'));
    if (!etag) throw new HubProtocolError(url, 'an ETag header');
    const sizeHeader =
      res.headers.get('x-linked-size') ?? (redirect ? null : res.headers.get('content-length'));
    const size = sizeHeader === null ? NaN : Number(sizeHeader);
    if (!Number.isSafeInteger(size) || size < 0)
      throw new HubProtocolError(url, 'a file size (X-Linked-Size)');
    return { commit, etag, size, location: redirect ? new URL(location, url).toString() : url };
  }
}

function isRelative(location: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(location) && !location.startsWith('//');
}
