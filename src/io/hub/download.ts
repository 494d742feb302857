// hf_hub_download's cache semantics: one file of a repo at a revision, from the cache when it is there,
// else downloaded once (under a lock), verified, stored as blobs/{etag} and linked from
// snapshots/{commit}/{file}.
import fs from 'node:fs';
import path from 'node:path';
import { checkRepoPath, existsFollowing, isCommitHash, linkPointer, RepoCache } from './cache-layout.js';
import {
  GatedRepoError,
  HubAuthError,
  HubHttpError,
  HubNetworkError,
  HubOfflineError,
  HubProtocolError,
} from './errors.js';
import { fileMetadata } from './file-metadata.js';
import { hubHeaders, type RequestContext } from './http.js';
import { withLock } from './lock.js';
import { hubCacheDir, hubEndpoint, hubOffline, hubToken } from './settings.js';
import { transferBlob } from './transfer.js';

export interface DownloadProgress {
  repoId: string;
  filename: string;
  /** Bytes of this file on disk so far (resumed bytes included). */
  bytes: number;
  total: number;
  /** Position of this file among those a snapshot downloads (0 and 1 for a single file). */
  index: number;
  count: number;
}

export interface HubOptions {
  /** Branch, tag or commit sha; default 'main'. */
  revision?: string;
  /** Default: $HF_HUB_CACHE, $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub or ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: $HF_ENDPOINT or https://huggingface.co. */
  endpoint?: string;
  /** Default: $HF_TOKEN, else the token file $HF_HOME/token; false sends none. */
  token?: string | false;
  /** Use only the cache, never the network. Default: HF_HUB_OFFLINE=1. */
  offline?: boolean;
  onProgress?: (p: DownloadProgress) => void;
}

export interface Settings {
  revision: string;
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
  onProgress?: (p: DownloadProgress) => void;
}

export function settingsOf(o: HubOptions = {}): Settings {
  return {
    revision: o.revision ?? 'main',
    cacheDir: o.cacheDir ?? hubCacheDir(),
    endpoint: (o.endpoint ?? hubEndpoint()).replace(/\/+$/, ''),
    token: o.token === false ? undefined : (o.token ?? hubToken()),
    offline: o.offline ?? hubOffline(),
    onProgress: o.onProgress,
  };
}

/** A file in the cache. */
export interface CachedFile {
  filename: string;
  /** snapshots/{commit}/{filename} */
  path: string;
  commit: string;
  size: number;
  /** Whether this call downloaded its bytes (false: they were in the cache). */
  downloaded: boolean;
}

/**
 * Errors after which the cached copy is used, as huggingface_hub does: the Hub unreachable or failing,
 * or refusing the token. Not-found answers are not: they mean the request itself is wrong.
 */
export function cacheMayAnswer(e: unknown): boolean {
  return (
    e instanceof HubNetworkError ||
    e instanceof HubHttpError ||
    e instanceof HubProtocolError ||
    e instanceof GatedRepoError ||
    e instanceof HubAuthError
  );
}

function cachedFile(cache: RepoCache, revision: string, filename: string): CachedFile | null {
  const commit = cache.cachedCommit(revision);
  if (!commit) return null;
  const p = cache.pointerPath(commit, filename);
  if (!existsFollowing(p)) return null;
  return { filename, path: p, commit, size: fs.statSync(p).size, downloaded: false };
}

/**
 * One file of a Hub model repo as a local path, snapshots/{commit}/{filename}, downloading it if needed.
 * With offline (HF_HUB_OFFLINE=1) only the cache is read.
 */
export async function downloadFile(repoId: string, filename: string, opts: HubOptions = {}): Promise<string> {
  return (await fetchFile(repoId, filename, settingsOf(opts))).path;
}

/** downloadFile with the details: commit, size, whether it was downloaded. */
export async function fetchFile(
  repoId: string,
  filename: string,
  s: Settings,
  position: { index: number; count: number } = { index: 0, count: 1 },
): Promise<CachedFile> {
  checkRepoPath('file name', filename);
  const cache = new RepoCache(s.cacheDir, repoId);
  // A commit sha names immutable content: a file already linked from its snapshot needs no network.
  if (isCommitHash(s.revision) || s.offline) {
    const hit = cachedFile(cache, s.revision, filename);
    if (hit) return hit;
    if (s.offline) throw new HubOfflineError(repoId, s.revision, filename, s.cacheDir);
  }
  const ctx: RequestContext & { filename: string } = {
    endpoint: s.endpoint,
    repoId,
    revision: s.revision,
    filename,
    token: s.token,
  };
  let meta;
  try {
    meta = await fileMetadata(ctx);
  } catch (e) {
    const hit = cacheMayAnswer(e) ? cachedFile(cache, s.revision, filename) : null;
    if (hit) return hit;
    throw e;
  }
  if (!/^[\w.-]+$/.test(meta.etag))
    throw new HubProtocolError(meta.location, `a usable ETag (got ${meta.etag})`);
  const pointer = cache.pointerPath(meta.commit, filename);
  if (existsFollowing(pointer)) {
    try {
      cache.writeRef(s.revision, meta.commit);
    } catch {
      // a read-only cache still serves files
    }
    return {
      filename,
      path: pointer,
      commit: meta.commit,
      size: fs.statSync(pointer).size,
      downloaded: false,
    };
  }
  cache.writeRef(s.revision, meta.commit);
  const blob = cache.blobPath(meta.etag);
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  // A signed CDN URL on another host must not receive the Hub token.
  const sameHost = new URL(meta.location).origin === new URL(s.endpoint).origin;
  let downloaded = false;
  await withLock(cache.lockPath(meta.etag), async () => {
    // Another process may have finished this blob while we waited for the lock.
    if (!existsFollowing(blob)) {
      await transferBlob({
        url: meta.location,
        headers: hubHeaders(sameHost ? s.token : undefined),
        partial: `${blob}.incomplete`,
        blob,
        size: meta.size,
        etag: meta.etag,
        ctx,
        onBytes: (bytes, total) => s.onProgress?.({ repoId, filename, bytes, total, ...position }),
      });
      downloaded = true;
    }
    if (!existsFollowing(pointer)) linkPointer(blob, pointer);
  });
  return { filename, path: pointer, commit: meta.commit, size: meta.size, downloaded };
}

/** Several files of one commit, one after the other (so that a progress bar shows one file at a time). */
export async function fetchFiles(
  repoId: string,
  commit: string,
  names: string[],
  s: Settings,
): Promise<CachedFile[]> {
  const out: CachedFile[] = [];
  for (let i = 0; i < names.length; i++) {
    out.push(
      await fetchFile(repoId, names[i]!, { ...s, revision: commit }, { index: i, count: names.length }),
    );
  }
  return out;
}
