// snapshot_download's semantics: the files of a repo at a revision (optionally filtered by patterns) in
// snapshots/{commit}/, with refs/{revision} recording the commit; offline, refs/ alone finds the folder.
import fs from 'node:fs';
import { existsFollowing, RepoCache } from './cache-layout.js';
import {
  cacheMayAnswer,
  fetchFiles,
  settingsOf,
  type CachedFile,
  type HubOptions,
  type Settings,
} from './download.js';
import { HubOfflineError, HubProtocolError } from './errors.js';
import { errorForResponse, hubFetch, hubHeaders } from './http.js';
import { filterPatterns } from './patterns.js';

export interface RepoListing {
  /** The commit the revision points to. */
  commit: string;
  /** Every file of the repo at that commit, as paths relative to its root. */
  files: string[];
}

/** The commit a revision points to and the repo's files there (one request to the Hub). */
export function listRepoFiles(repoId: string, opts: HubOptions = {}): Promise<RepoListing> {
  return fetchListing(repoId, settingsOf(opts));
}

/** GET {endpoint}/api/models/{repo}/revision/{revision}: { sha, siblings: [{ rfilename }], ... }. */
async function fetchListing(repoId: string, s: Settings): Promise<RepoListing> {
  const url = `${s.endpoint}/api/models/${repoId}/revision/${encodeURIComponent(s.revision)}`;
  const ctx = { endpoint: s.endpoint, repoId, revision: s.revision, token: s.token };
  const res = await hubFetch(url, { headers: hubHeaders(s.token, { accept: 'application/json' }) }, ctx);
  if (!res.ok) throw errorForResponse(res, ctx);
  let body: { sha?: unknown; siblings?: { rfilename?: unknown }[] };
  try {
    body = (await res.json()) as typeof body;
  } catch {
    throw new HubProtocolError(url, 'a JSON body');
  }
  if (typeof body.sha !== 'string' || !Array.isArray(body.siblings)) {
    throw new HubProtocolError(url, "the fields 'sha' and 'siblings'");
  }
  const files = body.siblings.map((f) => f.rfilename).filter((f): f is string => typeof f === 'string');
  return { commit: body.sha, files };
}

export interface SnapshotOptions extends HubOptions {
  /** fnmatch patterns (as in huggingface_hub: '*' crosses '/'); only matching files are downloaded. */
  allowPatterns?: string[];
  ignorePatterns?: string[];
}

export interface Snapshot {
  repoId: string;
  revision: string;
  commit: string;
  /** snapshots/{commit} */
  path: string;
  /** The files this call made sure of (all cached ones when offline). */
  files: CachedFile[];
}

/** The snapshot folder of a revision from the cache alone, or null. */
export function cachedSnapshot(repoId: string, s: Settings): { commit: string; path: string } | null {
  const cache = new RepoCache(s.cacheDir, repoId);
  const commit = cache.cachedCommit(s.revision);
  if (!commit || !existsFollowing(cache.snapshotDir(commit))) return null;
  return { commit, path: cache.snapshotDir(commit) };
}

/** How syncSnapshot picks files, and how it judges a cached snapshot. */
export interface SnapshotPlan {
  /** The files to download, from the listing. */
  select: (listing: RepoListing) => Promise<string[]> | string[];
  /** The files to report for a snapshot answered from the cache. */
  cachedFiles?: (dir: string, commit: string) => CachedFile[];
  /** Files a cached snapshot lacks to be usable; a snapshot lacking some is not used. */
  missing?: (dir: string) => string[];
}

/**
 * Lists the repo at the revision (or, when the Hub cannot answer, falls back to a usable cached snapshot
 * as huggingface_hub does) and downloads the files the plan selects.
 */
export async function syncSnapshot(repoId: string, s: Settings, plan: SnapshotPlan): Promise<Snapshot> {
  const cache = new RepoCache(s.cacheDir, repoId);
  const fromCache = (): { snap: Snapshot | null; missing: string[] } => {
    const hit = cachedSnapshot(repoId, s);
    if (!hit) return { snap: null, missing: [] };
    const missing = plan.missing?.(hit.path) ?? [];
    if (missing.length) return { snap: null, missing };
    const files = plan.cachedFiles?.(hit.path, hit.commit) ?? [];
    return { snap: { repoId, revision: s.revision, ...hit, files }, missing };
  };
  if (s.offline) {
    const { snap, missing } = fromCache();
    if (!snap) throw new HubOfflineError(repoId, s.revision, missing[0] ?? null, s.cacheDir);
    return snap;
  }
  let listing: RepoListing;
  try {
    listing = await fetchListing(repoId, s);
  } catch (e) {
    const snap = cacheMayAnswer(e) ? fromCache().snap : null;
    if (snap) return snap;
    throw e;
  }
  const names = await plan.select(listing);
  const files = await fetchFiles(repoId, listing.commit, names, s);
  fs.mkdirSync(cache.snapshotDir(listing.commit), { recursive: true });
  cache.writeRef(s.revision, listing.commit);
  return {
    repoId,
    revision: s.revision,
    commit: listing.commit,
    path: cache.snapshotDir(listing.commit),
    files,
  };
}

/** The files of a repo (those matching allowPatterns, if given) in the cache; returns the snapshot folder. */
export async function snapshotDownload(repoId: string, opts: SnapshotOptions = {}): Promise<string> {
  const s = settingsOf(opts);
  const select = (l: RepoListing) => filterPatterns(l.files, opts.allowPatterns, opts.ignorePatterns);
  return (await syncSnapshot(repoId, s, { select })).path;
}
