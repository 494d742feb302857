// A stand-in for the Hugging Face Hub on 127.0.0.1, with the endpoints and headers huggingface_hub and
// Sonde rely on:
//   GET  /api/models/{org}/{name}/revision/{rev}   { sha, siblings: [{ rfilename }], ... }
//   HEAD /{org}/{name}/resolve/{rev}/{file}        LFS: 302 to /cdn/{sha256} with X-Linked-Etag/-Size;
//   GET  (same)                                    git files: 200 with ETag = git blob sha1
//   GET  /cdn/{sha256}?sig=...                     the LFS bytes, with Range support
// Every answer carries X-Repo-Commit; errors carry X-Error-Code / X-Error-Message as the Hub's do.
// Faults for tests: drop the connection mid-body once, send corrupt bytes, ignore Range, go slowly.
//
// Serve a model folder:  hub.addFolder('test-org/llama-tiny', 'test/fixtures/llama-tiny')
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';

export interface MockFile {
  content: Buffer;
  lfs: boolean;
  sha256: string;
  gitSha1: string;
}

export interface MockRepo {
  id: string;
  commit: string;
  /** Branches and tags → commit (main is always there). */
  refs: Record<string, string>;
  files: Map<string, MockFile>;
  /** Requests for files need `Authorization: Bearer {hub.token}`. */
  gated: boolean;
}

export interface RepoOptions {
  commit?: string;
  gated?: boolean;
  refs?: Record<string, string>;
  /** Which files are stored in LFS (served through the CDN redirect). Default: *.safetensors and > 10 KB. */
  lfs?: (name: string, content: Buffer) => boolean;
}

export interface LoggedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

export const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');
export const gitBlobSha1 = (b: Buffer) =>
  createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex');

export class MockHub {
  readonly repos = new Map<string, MockRepo>();
  readonly requests: LoggedRequest[] = [];
  /** The token gated repos accept. */
  token = 'hf_mock_token';
  /** file name → bytes to send before destroying the socket (once, then the entry is removed). */
  readonly dropAfter = new Map<string, number>();
  /** file names whose bytes are served with one byte flipped. */
  readonly corrupt = new Set<string>();
  /** Answer 200 with the whole file to Range requests, as some proxies do. */
  ignoreRange = false;
  /** Pause between 16 KiB pieces of a body, in ms (0: send at once). */
  chunkDelayMs = 0;
  private server: http.Server | null = null;

  get url(): string {
    const addr = this.server?.address() as AddressInfo | null;
    if (!addr) throw new Error('mock hub not started');
    return `http://127.0.0.1:${addr.port}`;
  }

  addRepo(id: string, files: Record<string, string | Buffer>, opts: RepoOptions = {}): MockRepo {
    const isLfs = opts.lfs ?? ((n, c) => n.endsWith('.safetensors') || c.length > 10_240);
    const map = new Map<string, MockFile>();
    for (const [name, raw] of Object.entries(files)) {
      const content = Buffer.isBuffer(raw) ? raw : Buffer.from(raw);
      map.set(name, {
        content,
        lfs: isLfs(name, content),
        sha256: sha256(content),
        gitSha1: gitBlobSha1(content),
      });
    }
    const commit =
      opts.commit ??
      createHash('sha1')
        .update(id + [...map.keys()].sort().join('\n'))
        .digest('hex');
    const repo: MockRepo = {
      id,
      commit,
      refs: { main: commit, ...opts.refs },
      files: map,
      gated: opts.gated ?? false,
    };
    this.repos.set(id, repo);
    return repo;
  }

  /** Serves every file of a folder (recursively) as repo `id`. */
  addFolder(id: string, dir: string, opts: RepoOptions = {}): MockRepo {
    const files: Record<string, Buffer> = {};
    const walk = (sub: string) => {
      for (const e of fs.readdirSync(path.join(dir, sub), { withFileTypes: true })) {
        const rel = sub ? `${sub}/${e.name}` : e.name;
        if (e.isDirectory()) walk(rel);
        else files[rel] = fs.readFileSync(path.join(dir, rel));
      }
    };
    walk('');
    return this.addRepo(id, files, opts);
  }

  async start(): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((e: Error) => {
        res.writeHead(500, { 'x-error-message': e.message });
        res.end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return this.url;
  }

  async stop(): Promise<void> {
    const s = this.server;
    if (!s) return;
    s.closeAllConnections();
    await new Promise<void>((resolve) => s.close(() => resolve()));
    this.server = null;
  }

  /** Requests whose method and path match. */
  count(method: string, pathPattern: RegExp): number {
    return this.requests.filter((r) => r.method === method && pathPattern.test(r.path)).length;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const method = req.method ?? 'GET';
    this.requests.push({
      method,
      path: decodeURIComponent(url.pathname),
      range: req.headers.range,
      authorization: req.headers.authorization,
    });
    const auth = req.headers.authorization;
    if (auth !== undefined && auth !== `Bearer ${this.token}` && !url.pathname.startsWith('/cdn/')) {
      // The Hub refuses an unknown token outright, whatever the repo.
      res.writeHead(401, { 'x-error-message': 'Invalid credentials in Authorization header' });
      res.end();
      return;
    }
    const api = /^\/api\/models\/([^/]+\/[^/]+)\/revision\/([^/]+)$/.exec(url.pathname);
    if (api) return this.revisionInfo(res, decodeURIComponent(api[1]!), decodeURIComponent(api[2]!));
    const resolve = /^\/([^/]+\/[^/]+)\/resolve\/([^/]+)\/(.+)$/.exec(url.pathname);
    if (resolve) {
      const [repoId, rev, file] = [resolve[1]!, resolve[2]!, resolve[3]!].map(decodeURIComponent) as [
        string,
        string,
        string,
      ];
      return this.resolveFile(req, res, repoId, rev, file);
    }
    const cdn = /^\/cdn\/([0-9a-f]{64})$/.exec(url.pathname);
    if (cdn) {
      for (const repo of this.repos.values()) {
        for (const [name, f] of repo.files) {
          if (f.sha256 === cdn[1]) return this.sendBytes(req, res, name, f, `"${f.sha256}"`, {});
        }
      }
    }
    res.writeHead(404).end();
  }

  private error(res: http.ServerResponse, status: number, code: string, message: string, extra = {}): void {
    res.writeHead(status, { 'x-error-code': code, 'x-error-message': message, ...extra });
    res.end(JSON.stringify({ error: message }));
  }

  private repoAt(
    res: http.ServerResponse,
    repoId: string,
    rev: string,
  ): { repo: MockRepo; commit: string } | null {
    const repo = this.repos.get(repoId);
    if (!repo) {
      this.error(res, 404, 'RepoNotFound', 'Repository not found');
      return null;
    }
    const commit = repo.refs[rev] ?? (rev === repo.commit ? rev : undefined);
    if (!commit) {
      this.error(res, 404, 'RevisionNotFound', 'Invalid rev id: ' + rev);
      return null;
    }
    return { repo, commit };
  }

  private revisionInfo(res: http.ServerResponse, repoId: string, rev: string): void {
    const at = this.repoAt(res, repoId, rev);
    if (!at) return;
    const body = {
      _id: at.commit.slice(0, 24),
      id: repoId,
      modelId: repoId,
      sha: at.commit,
      private: false,
      gated: at.repo.gated ? 'manual' : false,
      disabled: false,
      lastModified: '2024-01-01T00:00:00.000Z',
      siblings: [...at.repo.files.keys()].map((rfilename) => ({ rfilename })),
    };
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  }

  private resolveFile(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    repoId: string,
    rev: string,
    file: string,
  ): void {
    const at = this.repoAt(res, repoId, rev);
    if (!at) return;
    const commitHeader = { 'x-repo-commit': at.commit };
    if (at.repo.gated && req.headers.authorization !== `Bearer ${this.token}`) {
      const message = `Access to model ${repoId} is restricted. You must have access to it and be authenticated to access it. Please log in.`;
      return this.error(res, 401, 'GatedRepo', message, commitHeader);
    }
    const f = at.repo.files.get(file);
    if (!f) return this.error(res, 404, 'EntryNotFound', `${file} does not exist on "${rev}"`, commitHeader);
    if (f.lfs) {
      res.writeHead(302, {
        ...commitHeader,
        location: `${this.url}/cdn/${f.sha256}?sig=mock`,
        'x-linked-etag': `"${f.sha256}"`,
        'x-linked-size': String(f.content.length),
        etag: `"${gitBlobSha1(Buffer.from(`pointer ${f.sha256}`))}"`,
        'content-length': '0',
      });
      res.end();
      return;
    }
    this.sendBytes(req, res, file, f, `"${f.gitSha1}"`, commitHeader);
  }

  private sendBytes(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    name: string,
    f: MockFile,
    etag: string,
    extra: Record<string, string>,
  ): void {
    let body = f.content;
    if (this.corrupt.has(name) && body.length > 0) {
      body = Buffer.from(body);
      body[body.length >> 1] ^= 0xff;
    }
    const headers: Record<string, string> = { ...extra, etag, 'accept-ranges': 'bytes' };
    let status = 200;
    const range = /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range && !this.ignoreRange) {
      const start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { ...headers, 'content-range': `bytes */${body.length}` }).end();
        return;
      }
      headers['content-range'] = `bytes ${start}-${body.length - 1}/${body.length}`;
      body = body.subarray(start);
      status = 206;
    }
    headers['content-length'] = String(body.length);
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();
    const drop = this.dropAfter.get(name);
    if (drop !== undefined) {
      this.dropAfter.delete(name);
      res.write(body.subarray(0, Math.min(drop, body.length)), () => res.destroy());
      return;
    }
    this.writeSlowly(res, body);
  }

  private writeSlowly(res: http.ServerResponse, body: Buffer): void {
    if (this.chunkDelayMs <= 0) return void res.end(body);
    let at = 0;
    const next = () => {
      if (res.destroyed) return;
      const piece = body.subarray(at, at + 16_384);
      at += piece.length;
      if (at >= body.length) return void res.end(piece);
      res.write(piece);
      setTimeout(next, this.chunkDelayMs);
    };
    next();
  }
}
