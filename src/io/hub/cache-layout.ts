// The on-disk layout of huggingface_hub's cache, so that Python and Sonde share downloads:
//
//   {cache}/models--{org}--{name}/
//     blobs/{etag}                     file contents, named by sha256 (LFS) or git blob sha1
//     blobs/{etag}.incomplete          a download in progress (resumable)
//     refs/{revision}                  the commit sha a branch or tag pointed to, no newline
//     snapshots/{commit}/{path}        relative symlink to ../../blobs/{etag} (one more ../ per folder)
//   {cache}/.locks/models--{org}--{name}/   lock files
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../../errors.js';

export const COMMIT_RE = /^[0-9a-f]{40}$/;

const REPO_ID_RE = /^[A-Za-z0-9][\w.-]*\/[\w.-]+$/;

export function isCommitHash(revision: string): boolean {
  return COMMIT_RE.test(revision);
}

export function isRepoId(s: string): boolean {
  return REPO_ID_RE.test(s) && !s.includes('..') && !s.endsWith('.');
}

export function checkRepoId(repoId: string): void {
  if (!isRepoId(repoId)) {
    throw new UsageError(
      `'${repoId}' is not a Hub repo id: expected org/name (letters, digits, '-', '_', '.')`,
    );
  }
}

/** models--org--name, as huggingface_hub names a model repo's folder. */
export function repoFolderName(repoId: string): string {
  return ['models', ...repoId.split('/')].join('--');
}

/** Relative paths inside a repo: no absolute paths, no '..', no backslashes. */
export function checkRepoPath(what: string, p: string): void {
  const parts = p.split('/');
  if (
    p === '' ||
    p.startsWith('/') ||
    p.includes('\\') ||
    parts.some((s) => s === '' || s === '.' || s === '..')
  ) {
    throw new UsageError(`invalid ${what} '${p}': expected a relative path without '.', '..' or '\\'`);
  }
}

/** The cache folders of one repo. */
export class RepoCache {
  readonly root: string;
  readonly lockDir: string;

  constructor(
    readonly cacheDir: string,
    readonly repoId: string,
  ) {
    checkRepoId(repoId);
    this.root = path.join(cacheDir, repoFolderName(repoId));
    this.lockDir = path.join(cacheDir, '.locks', repoFolderName(repoId));
  }

  blobPath(etag: string): string {
    return path.join(this.root, 'blobs', etag);
  }

  snapshotDir(commit: string): string {
    return path.join(this.root, 'snapshots', commit);
  }

  pointerPath(commit: string, filename: string): string {
    checkRepoPath('file name', filename);
    return path.join(this.snapshotDir(commit), ...filename.split('/'));
  }

  refPath(revision: string): string {
    checkRepoPath('revision', revision); // branches like refs/pr/1 nest, as in Python
    return path.join(this.root, 'refs', ...revision.split('/'));
  }

  /** Sonde's lock for one blob; see lock.ts for why it is not Python's {etag}.lock file. */
  lockPath(etag: string): string {
    return path.join(this.lockDir, `${etag}.sonde.lock`);
  }

  /** The commit a revision resolves to from the cache alone: itself if a sha, else refs/{revision}. */
  cachedCommit(revision: string): string | null {
    if (isCommitHash(revision)) return revision;
    try {
      const sha = fs.readFileSync(this.refPath(revision), 'utf8').trim();
      return isCommitHash(sha) ? sha : null;
    } catch {
      return null;
    }
  }

  /** Records revision → commit, atomically (temp file + rename), when it is a branch or tag. */
  writeRef(revision: string, commit: string): void {
    if (revision === commit) return;
    const ref = this.refPath(revision);
    try {
      if (fs.readFileSync(ref, 'utf8') === commit) return; // unchanged: leave read-only caches alone
    } catch {
      // no ref yet
    }
    fs.mkdirSync(path.dirname(ref), { recursive: true });
    const tmp = `${ref}.${randomBytes(4).toString('hex')}.tmp`;
    fs.writeFileSync(tmp, commit);
    fs.renameSync(tmp, ref);
  }
}

/** Whether a path exists, following symlinks (a dangling snapshot link counts as missing). */
export function existsFollowing(p: string): boolean {
  try {
    fs.statSync(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * snapshots/{commit}/{file} → a relative link to blobs/{etag}. Where symlinks are not allowed (Windows
 * without developer mode) the blob is copied instead, as huggingface_hub does.
 */
export function linkPointer(blob: string, pointer: string): void {
  fs.mkdirSync(path.dirname(pointer), { recursive: true });
  const target = path.relative(path.dirname(pointer), blob);
  try {
    fs.unlinkSync(pointer);
  } catch {
    // not there yet
  }
  try {
    fs.symlinkSync(target, pointer);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    // A concurrent call made the same link between unlink and symlink: fine if it points at our blob.
    if (code === 'EEXIST' && fs.realpathSync(pointer) === fs.realpathSync(blob)) return;
    if (code === 'EPERM' || code === 'ENOTSUP') return fs.copyFileSync(blob, pointer);
    throw e;
  }
}
