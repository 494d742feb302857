// Streams one file into blobs/{etag}.incomplete, resuming with a Range request, hashing as it goes, and
// renames it to blobs/{etag} only once its size and hash match the etag: unverified bytes never become a
// blob.
import { createHash, type Hash } from 'node:crypto';
import fs from 'node:fs';
import { HubIntegrityError, HubNetworkError } from './errors.js';
import { describe, errorForResponse, hubFetch, isRetryableStatus, type RequestContext } from './http.js';

export interface TransferOptions {
  url: string;
  headers: Record<string, string>;
  /** blobs/{etag}.incomplete */
  partial: string;
  /** blobs/{etag} */
  blob: string;
  size: number;
  etag: string;
  ctx: RequestContext & { filename: string };
  /** Bytes on disk so far (including resumed ones) and the total. */
  onBytes?: (done: number, total: number) => void;
  /** Consecutive failed attempts (no new bytes) before giving up. */
  retries?: number;
}

/** sha256 for LFS etags (64 hex), git's blob sha1 ("blob <size>\0" + bytes) for 40-hex etags. */
export function contentHasher(etag: string, size: number): { hash: Hash; kind: string } | null {
  if (/^[0-9a-f]{64}$/.test(etag)) return { hash: createHash('sha256'), kind: 'sha256' };
  if (/^[0-9a-f]{40}$/.test(etag)) {
    const hash = createHash('sha1');
    hash.update(`blob ${size}\0`);
    return { hash, kind: 'git blob sha1' };
  }
  return null; // an etag that is not a content hash: only the size can be checked
}

function fileSize(p: string): number {
  try {
    return fs.statSync(p).size;
  } catch {
    return 0;
  }
}

async function hashFile(p: string, hash: Hash): Promise<void> {
  if (fileSize(p) === 0) return;
  for await (const chunk of fs.createReadStream(p)) hash.update(chunk as Buffer);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function transferBlob(o: TransferOptions): Promise<void> {
  const retries = o.retries ?? 5;
  const fail = (detail: string): never => {
    fs.rmSync(o.partial, { force: true });
    throw new HubIntegrityError(o.ctx.repoId, o.ctx.revision, o.ctx.filename, detail);
  };
  let hasher: ReturnType<typeof contentHasher> = null;
  let hashed = -1; // bytes of the partial file that `hasher` has seen
  let failures = 0;
  const retry = async (why: string) => {
    if (++failures > retries) {
      throw new HubNetworkError(o.url, describe(o.ctx), `${why}; gave up after ${retries} retries`);
    }
    await sleep(100 * failures);
  };

  for (;;) {
    let offset = fileSize(o.partial);
    if (offset > o.size) {
      fs.truncateSync(o.partial, 0); // longer than the file: not a prefix of it
      offset = 0;
    }
    if (hashed !== offset) {
      // A partial left by an earlier run (or changed under us): its bytes must be hashed too.
      hasher = contentHasher(o.etag, o.size);
      if (hasher) await hashFile(o.partial, hasher.hash);
      hashed = offset;
    }
    o.onBytes?.(offset, o.size);
    if (offset === o.size) break;

    const headers = offset > 0 ? { ...o.headers, range: `bytes=${offset}-` } : o.headers;
    let res: Response;
    try {
      res = await hubFetch(o.url, { headers, redirect: 'follow' }, o.ctx);
    } catch (e) {
      if (!(e instanceof HubNetworkError)) throw e;
      await retry(e.message);
      continue;
    }
    if (res.status === 416) {
      // Range not satisfiable: the partial is not a prefix of this file. Start again.
      await res.body?.cancel();
      fs.truncateSync(o.partial, 0);
      await retry('the server refused to resume (HTTP 416)');
      continue;
    }
    if (!res.ok) {
      await res.body?.cancel();
      if (!isRetryableStatus(res.status)) throw errorForResponse(res, o.ctx);
      await retry(`HTTP ${res.status}`);
      continue;
    }

    const fh = await fs.promises.open(o.partial, 'a');
    let dropped: unknown = null;
    const before = offset;
    try {
      const start = res.status === 206 ? rangeStart(res.headers.get('content-range')) : 0;
      if (start !== offset) {
        // A server that ignores Range sends the whole file (200): restart cleanly from byte 0.
        if (start !== 0) {
          await res.body?.cancel();
          await fh.truncate(0);
          hashed = -1;
          await retry(`the server resumed at byte ${start}, not ${offset}`);
          continue;
        }
        await fh.truncate(0);
        hasher = contentHasher(o.etag, o.size);
        hashed = offset = 0;
      }
      const reader = res.body!.getReader();
      for (;;) {
        let chunk: ReadableStreamReadResult<Uint8Array>;
        try {
          chunk = await reader.read();
        } catch (e) {
          dropped = e;
          break;
        }
        if (chunk.done) break;
        await fh.write(chunk.value);
        hasher?.hash.update(chunk.value);
        hashed += chunk.value.length;
        if (hashed > o.size) fail(`the server sent more than the ${o.size} bytes the Hub announced`);
        o.onBytes?.(hashed, o.size);
      }
    } finally {
      await fh.close();
    }
    if (hashed > before) failures = 0; // progress was made: the retry budget starts over
    if (dropped !== null || hashed < o.size) {
      await retry(`connection lost after ${hashed} of ${o.size} bytes`);
      continue;
    }
    break;
  }

  if (hashed !== o.size) fail(`got ${hashed} bytes, expected ${o.size}`);
  if (hasher) {
    const digest = hasher.hash.digest('hex');
    if (digest !== o.etag) fail(`its ${hasher.kind} is ${digest}, the Hub's etag is ${o.etag}`);
  }
  fs.renameSync(o.partial, o.blob);
}

/** "bytes 100-999/1000" → 100. */
function rangeStart(contentRange: string | null): number {
  const m = /^bytes (\d+)-/.exec(contentRange ?? '');
  return m ? Number(m[1]) : -1;
}
