// Hub downloads against a mock Hub: cache layout, cache hits, resume, verification, errors, gating,
// offline mode and concurrent downloads.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  downloadFile,
  downloadModel,
  EntryNotFoundError,
  GatedRepoError,
  HubAuthError,
  HubIntegrityError,
  HubNetworkError,
  HubOfflineError,
  NoSafetensorsError,
  RepoNotFoundError,
  resolveModel,
  RevisionNotFoundError,
  snapshotDownload,
} from '../../../src/io/hub/index.js';
import { gitBlobSha1, sha256 } from '../../helpers/mock-hub.js';
import { addTinyRepo, bytes, clearHfEnv, freshCache, MockHub } from './hub-env.js';

let hub: MockHub;
let cache: string;

beforeEach(async () => {
  clearHfEnv();
  cache = freshCache();
  hub = new MockHub();
  process.env.HF_ENDPOINT = await hub.start();
});

afterEach(async () => {
  await hub.stop();
  clearHfEnv();
});

const repoDir = (id: string) => path.join(cache, `models--${id.replace('/', '--')}`);
const listBlobs = (id: string) => fs.readdirSync(path.join(repoDir(id), 'blobs')).sort();

describe('snapshot download', () => {
  it('lays the cache out as huggingface_hub does: blobs by etag, refs/main, relative symlinks', async () => {
    const repo = addTinyRepo(hub);
    const snap = await downloadModel('test-org/tiny');
    const root = repoDir('test-org/tiny');
    expect(snap.commit).toBe(repo.commit);
    expect(snap.path).toBe(path.join(root, 'snapshots', repo.commit));
    // refs/main: the 40-hex commit, no newline.
    expect(fs.readFileSync(path.join(root, 'refs', 'main'), 'utf8')).toBe(repo.commit);
    // Only what a model needs: no .bin, no onnx/, no README.
    expect(fs.readdirSync(snap.path).sort()).toEqual(['config.json', 'model.safetensors', 'tokenizer.json']);
    expect(snap.files.map((f) => f.filename)).toEqual(['config.json', 'tokenizer.json', 'model.safetensors']);
    const weights = repo.files.get('model.safetensors')!;
    const config = repo.files.get('config.json')!;
    // LFS blobs are named by sha256, git files by their git blob sha1.
    expect(listBlobs('test-org/tiny')).toEqual(
      [weights.sha256, config.gitSha1, repo.files.get('tokenizer.json')!.gitSha1].sort(),
    );
    for (const [name, etag] of [
      ['model.safetensors', weights.sha256],
      ['config.json', config.gitSha1],
    ] as const) {
      const link = path.join(snap.path, name);
      expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
      expect(fs.readlinkSync(link)).toBe(`../../blobs/${etag}`);
      expect(fs.readFileSync(link).equals(repo.files.get(name)!.content)).toBe(true);
    }
    expect(snap.files.find((f) => f.filename === 'model.safetensors')).toMatchObject({
      size: 300_000,
      downloaded: true,
    });
    // The HEAD of an LFS file was answered with a redirect to the CDN, then the CDN served the bytes.
    expect(hub.count('GET', /^\/cdn\//)).toBe(1);
    expect(fs.existsSync(path.join(cache, '.locks', 'models--test-org--tiny'))).toBe(true);
  });

  it('a second call downloads nothing', async () => {
    addTinyRepo(hub);
    const first = await downloadModel('test-org/tiny');
    hub.requests.length = 0;
    const second = await downloadModel('test-org/tiny');
    expect(second.path).toBe(first.path);
    expect(second.files.every((f) => !f.downloaded)).toBe(true);
    // One listing call to learn where main points; no HEAD or GET of any file.
    expect(hub.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/models/test-org/tiny/revision/main',
    ]);
  });

  it('nested files link with one more ../ per folder; patterns select files', async () => {
    const repo = addTinyRepo(hub);
    const dir = await snapshotDownload('test-org/tiny', { allowPatterns: ['onnx/*', '*.json'] });
    const link = path.join(dir, 'onnx', 'model.onnx');
    expect(fs.readlinkSync(link)).toBe(`../../../blobs/${repo.files.get('onnx/model.onnx')!.gitSha1}`);
    expect(fs.readFileSync(link).equals(repo.files.get('onnx/model.onnx')!.content)).toBe(true);
    expect(fs.readdirSync(dir).sort()).toEqual(['config.json', 'onnx', 'tokenizer.json']);
  });

  it('downloads only the shards a sharded index names', async () => {
    const index = {
      metadata: {},
      weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' },
    };
    hub.addRepo('test-org/sharded', {
      'config.json': '{}',
      'model.safetensors.index.json': JSON.stringify(index),
      'model-00001-of-00002.safetensors': bytes(1000, 1),
      'model-00002-of-00002.safetensors': bytes(1000, 2),
      'consolidated.safetensors': bytes(2000, 3),
    });
    const snap = await downloadModel('test-org/sharded');
    expect(fs.readdirSync(snap.path).sort()).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
  });

  it('refuses a repo without safetensors, naming what it has', async () => {
    hub.addRepo('test-org/bin-only', { 'config.json': '{}', 'pytorch_model.bin': bytes(100) });
    const err = await downloadModel('test-org/bin-only').catch((e: Error) => e);
    expect(err).toBeInstanceOf(NoSafetensorsError);
    expect((err as Error).message).toMatch(
      /test-org\/bin-only.*no \.safetensors.*pytorch_model\.bin.*safetensors only/,
    );
  });
});

describe('resume', () => {
  it('continues with Range after the connection drops mid-body', async () => {
    const repo = addTinyRepo(hub);
    hub.dropAfter.set('model.safetensors', 100_000);
    const snap = await downloadModel('test-org/tiny');
    const gets = hub.requests.filter((r) => r.method === 'GET' && r.path.startsWith('/cdn/'));
    expect(gets.map((r) => r.range)).toEqual([undefined, 'bytes=100000-']);
    const weights = fs.readFileSync(path.join(snap.path, 'model.safetensors'));
    expect(sha256(weights)).toBe(repo.files.get('model.safetensors')!.sha256);
    expect(listBlobs('test-org/tiny').some((b) => b.endsWith('.incomplete'))).toBe(false);
  });

  it('continues a partial .incomplete left by an earlier run', async () => {
    const repo = addTinyRepo(hub);
    const f = repo.files.get('model.safetensors')!;
    const blobs = path.join(repoDir('test-org/tiny'), 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${f.sha256}.incomplete`), f.content.subarray(0, 123_456));
    const file = await downloadFile('test-org/tiny', 'model.safetensors');
    expect(hub.requests.filter((r) => r.path.startsWith('/cdn/')).map((r) => r.range)).toEqual([
      'bytes=123456-',
    ]);
    expect(sha256(fs.readFileSync(file))).toBe(f.sha256);
  });

  it('restarts cleanly when the server ignores Range (200 instead of 206)', async () => {
    const repo = addTinyRepo(hub);
    const f = repo.files.get('model.safetensors')!;
    const blobs = path.join(repoDir('test-org/tiny'), 'blobs');
    fs.mkdirSync(blobs, { recursive: true });
    fs.writeFileSync(path.join(blobs, `${f.sha256}.incomplete`), f.content.subarray(0, 5000));
    hub.ignoreRange = true;
    const file = await downloadFile('test-org/tiny', 'model.safetensors');
    expect(sha256(fs.readFileSync(file))).toBe(f.sha256);
    expect(fs.statSync(file).size).toBe(f.content.length);
  });
});

describe('verification', () => {
  it('corrupt LFS bytes: an error, nothing in blobs/ or snapshots/', async () => {
    const repo = addTinyRepo(hub);
    hub.corrupt.add('model.safetensors');
    const err = await downloadFile('test-org/tiny', 'model.safetensors').catch((e: Error) => e);
    expect(err).toBeInstanceOf(HubIntegrityError);
    expect((err as Error).message).toMatch(/model\.safetensors.*test-org\/tiny.*sha256/);
    expect(listBlobs('test-org/tiny')).toEqual([]);
    const snapshot = path.join(repoDir('test-org/tiny'), 'snapshots', repo.commit);
    expect(fs.existsSync(path.join(snapshot, 'model.safetensors'))).toBe(false);
  });

  it('corrupt git file: the git blob sha1 does not match', async () => {
    addTinyRepo(hub);
    hub.corrupt.add('config.json');
    const err = await downloadFile('test-org/tiny', 'config.json').catch((e: Error) => e);
    expect(err).toBeInstanceOf(HubIntegrityError);
    expect((err as Error).message).toMatch(/git blob sha1/);
    expect(listBlobs('test-org/tiny')).toEqual([]);
  });
});

describe('errors', () => {
  it('404 repo, file and revision name what was asked for', async () => {
    addTinyRepo(hub);
    const repo = await downloadModel('test-org/nope').catch((e: Error) => e);
    expect(repo).toBeInstanceOf(RepoNotFoundError);
    expect((repo as Error).message).toMatch(/'test-org\/nope' was not found/);
    const file = await downloadFile('test-org/tiny', 'missing.json').catch((e: Error) => e);
    expect(file).toBeInstanceOf(EntryNotFoundError);
    expect((file as Error).message).toMatch(/'missing\.json' is not in 'test-org\/tiny' at revision 'main'/);
    const rev = await downloadModel('test-org/tiny', { revision: 'v9' }).catch((e: Error) => e);
    expect(rev).toBeInstanceOf(RevisionNotFoundError);
    expect((rev as Error).message).toMatch(/revision 'v9'.*test-org\/tiny/);
  });

  it('gated: 401 without a token says to accept the terms and set HF_TOKEN; HF_TOKEN works', async () => {
    addTinyRepo(hub, 'test-org/gated', { gated: true });
    const err = await downloadModel('test-org/gated').catch((e: Error) => e);
    expect(err).toBeInstanceOf(GatedRepoError);
    expect((err as Error).message).toMatch(
      /accept the model's terms at https:\/\/huggingface\.co\/test-org\/gated.*HF_TOKEN/,
    );
    process.env.HF_TOKEN = hub.token;
    const snap = await downloadModel('test-org/gated');
    expect(fs.existsSync(path.join(snap.path, 'model.safetensors'))).toBe(true);
    const heads = hub.requests.filter((r) => r.method === 'HEAD' && r.path.includes('/resolve/'));
    expect(heads.at(-1)!.authorization).toBe(`Bearer ${hub.token}`);
  });

  it('an invalid token is named as the problem', async () => {
    addTinyRepo(hub);
    process.env.HF_TOKEN = 'hf_wrong';
    const err = await downloadModel('test-org/tiny').catch((e: Error) => e);
    expect(err).toBeInstanceOf(HubAuthError);
    expect((err as Error).message).toMatch(/rejected your token.*test-org\/tiny/);
  });

  it('a token in $HF_HOME/token is used too', async () => {
    addTinyRepo(hub, 'test-org/gated', { gated: true });
    fs.mkdirSync(process.env.HF_HOME!, { recursive: true });
    fs.writeFileSync(path.join(process.env.HF_HOME!, 'token'), `${hub.token}\n`);
    await expect(downloadFile('test-org/gated', 'config.json')).resolves.toMatch(/config\.json$/);
  });

  it('network failure: a clear error when nothing is cached', async () => {
    await hub.stop();
    const err = await downloadModel('test-org/tiny').catch((e: Error) => e);
    expect(err).toBeInstanceOf(HubNetworkError);
    expect((err as Error).message).toMatch(
      /cannot reach http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\).*HF_HUB_OFFLINE=1/,
    );
  });
});

describe('offline', () => {
  it('HF_HUB_OFFLINE=1 resolves refs/main to the snapshot with the server stopped', async () => {
    const repo = addTinyRepo(hub);
    const online = await downloadModel('test-org/tiny');
    await hub.stop();
    process.env.HF_HUB_OFFLINE = '1';
    const offline = await downloadModel('test-org/tiny');
    expect(offline.path).toBe(online.path);
    expect(offline.files.map((f) => f.filename)).toEqual([
      'config.json',
      'model.safetensors',
      'tokenizer.json',
    ]);
    expect(await resolveModel('test-org/tiny')).toBe(online.path);
    expect(await resolveModel(`test-org/tiny@${repo.commit}`)).toBe(online.path);
    expect(await downloadFile('test-org/tiny', 'config.json')).toBe(path.join(online.path, 'config.json'));
  });

  it('a cached snapshot also answers when the Hub is unreachable (not offline)', async () => {
    addTinyRepo(hub);
    const online = await downloadModel('test-org/tiny');
    await hub.stop();
    expect((await downloadModel('test-org/tiny')).path).toBe(online.path);
  });

  it('a file missing offline: names the repo, revision and file, and HF_HUB_OFFLINE=1', async () => {
    addTinyRepo(hub);
    await downloadModel('test-org/tiny');
    process.env.HF_HUB_OFFLINE = '1';
    const err = await downloadFile('test-org/tiny', 'README.md').catch((e: Error) => e);
    expect(err).toBeInstanceOf(HubOfflineError);
    expect((err as Error).message).toMatch(
      /'README\.md' of 'test-org\/tiny' at revision 'main'.*HF_HUB_OFFLINE=1 is set/,
    );
    const none = await downloadModel('test-org/other').catch((e: Error) => e);
    expect(none).toBeInstanceOf(HubOfflineError);
    expect(hub.requests.filter((r) => r.path.includes('README') || r.path.includes('other'))).toEqual([]);
  });
});

describe('locking', () => {
  it('two concurrent downloads of one file make one correct blob', async () => {
    const repo = addTinyRepo(hub);
    hub.chunkDelayMs = 2;
    const [a, b] = await Promise.all([
      downloadFile('test-org/tiny', 'model.safetensors'),
      downloadFile('test-org/tiny', 'model.safetensors'),
    ]);
    expect(a).toBe(b);
    expect(hub.count('GET', /^\/cdn\//)).toBe(1);
    expect(listBlobs('test-org/tiny')).toEqual([repo.files.get('model.safetensors')!.sha256]);
    expect(sha256(fs.readFileSync(a))).toBe(repo.files.get('model.safetensors')!.sha256);
  });

  it('two processes downloading one file make one correct blob', async () => {
    const repo = addTinyRepo(hub);
    hub.chunkDelayMs = 25; // ~0.5 s of transfer, so that the two overlap despite start-up skew
    const script = path.join(import.meta.dirname, 'download-one.ts');
    const run = () =>
      new Promise<string>((resolve, reject) =>
        execFile(
          process.execPath,
          ['--import', 'tsx', script, 'test-org/tiny', 'model.safetensors'],
          (err, out) => (err ? reject(err) : resolve(out)),
        ),
      );
    const [a, b] = await Promise.all([run(), run()]);
    expect(a).toBe(b);
    expect(listBlobs('test-org/tiny')).toEqual([repo.files.get('model.safetensors')!.sha256]);
    expect(sha256(fs.readFileSync(a))).toBe(repo.files.get('model.safetensors')!.sha256);
    // Both asked where the file is; at most one fetched it (the other found the blob after the lock).
    expect(hub.count('HEAD', /\/resolve\//)).toBe(2);
    expect(hub.count('GET', /^\/cdn\//)).toBe(1);
  });

  it('a stale lock left by a killed process does not block', async () => {
    const repo = addTinyRepo(hub);
    const etag = repo.files.get('config.json')!.gitSha1;
    const lock = path.join(cache, '.locks', 'models--test-org--tiny', `${etag}.sonde.lock`);
    fs.mkdirSync(lock, { recursive: true });
    const old = new Date(Date.now() - 60_000);
    fs.utimesSync(lock, old, old);
    const t0 = performance.now();
    const file = await downloadFile('test-org/tiny', 'config.json');
    expect(performance.now() - t0).toBeLessThan(3000);
    expect(gitBlobSha1(fs.readFileSync(file))).toBe(etag);
    expect(fs.existsSync(lock)).toBe(false);
  });
});
