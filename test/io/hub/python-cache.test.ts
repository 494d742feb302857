// A cache laid out by hand exactly as Python's huggingface_hub leaves it (blobs, relative symlinks,
// refs/main without a newline, its leftover flock files) is used as is, without any network.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { cachedModel, downloadFile, downloadModel, resolveModel } from '../../../src/io/hub/index.js';
import { ROOT } from '../../helpers/cli.js';
import { gitBlobSha1, sha256 } from '../../helpers/mock-hub.js';
import { clearHfEnv, freshCache } from './hub-env.js';

const FIXTURE = path.join(ROOT, 'test/fixtures/llama-tiny');
const COMMIT = createHash('sha1').update('python-made').digest('hex');

/** What hf_hub_download would have written for each fixture file. */
function layPythonCache(cache: string, repoId: string, fixture: string): string {
  const root = path.join(cache, `models--${repoId.replace('/', '--')}`);
  const snapshot = path.join(root, 'snapshots', COMMIT);
  fs.mkdirSync(path.join(root, 'blobs'), { recursive: true });
  fs.mkdirSync(snapshot, { recursive: true });
  fs.mkdirSync(path.join(root, 'refs'), { recursive: true });
  fs.writeFileSync(path.join(root, 'refs', 'main'), COMMIT);
  const locks = path.join(cache, '.locks', `models--${repoId.replace('/', '--')}`);
  fs.mkdirSync(locks, { recursive: true });
  for (const name of fs.readdirSync(fixture)) {
    if (name === 'reference.json') continue;
    const content = fs.readFileSync(path.join(fixture, name));
    const etag = name.endsWith('.safetensors') ? sha256(content) : gitBlobSha1(content);
    fs.writeFileSync(path.join(root, 'blobs', etag), content);
    fs.symlinkSync(`../../blobs/${etag}`, path.join(snapshot, name));
    fs.writeFileSync(path.join(locks, `${etag}.lock`), ''); // filelock leaves these behind
  }
  return snapshot;
}

let cache: string;

beforeEach(() => {
  clearHfEnv();
  cache = freshCache();
  // Nothing listens here: any request would fail.
  process.env.HF_ENDPOINT = 'http://127.0.0.1:59999';
});

afterEach(clearHfEnv);

describe('a cache written by Python', () => {
  it('offline: resolves refs/main and serves files through the symlinks', async () => {
    const snapshot = layPythonCache(cache, 'test-org/llama-tiny', FIXTURE);
    process.env.HF_HUB_OFFLINE = '1';
    expect(await resolveModel('test-org/llama-tiny')).toBe(snapshot);
    const config = await downloadFile('test-org/llama-tiny', 'config.json');
    expect(fs.readFileSync(config, 'utf8')).toBe(fs.readFileSync(path.join(FIXTURE, 'config.json'), 'utf8'));
    const snap = await downloadModel('test-org/llama-tiny');
    expect(snap.commit).toBe(COMMIT);
    expect(snap.files.map((f) => f.filename)).toEqual([
      'config.json',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
    ]);
    expect(cachedModel('test-org/llama-tiny')).toEqual({ commit: COMMIT, path: snapshot });
  });

  it('a commit sha as revision needs neither refs nor network', async () => {
    const snapshot = layPythonCache(cache, 'test-org/llama-tiny', FIXTURE);
    fs.rmSync(path.join(cache, 'models--test-org--llama-tiny', 'refs'), { recursive: true });
    const file = await downloadFile('test-org/llama-tiny', 'model.safetensors.index.json', {
      revision: COMMIT,
    });
    expect(file).toBe(path.join(snapshot, 'model.safetensors.index.json'));
  });

  it('online but the Hub unreachable: the complete cached snapshot answers', async () => {
    const snapshot = layPythonCache(cache, 'test-org/llama-tiny', FIXTURE);
    expect(await resolveModel('test-org/llama-tiny')).toBe(snapshot);
  });

  it('an incomplete cached snapshot is not used offline: the missing shard is named', async () => {
    const snapshot = layPythonCache(cache, 'test-org/llama-tiny', FIXTURE);
    fs.rmSync(path.join(snapshot, 'model-00002-of-00002.safetensors'));
    process.env.HF_HUB_OFFLINE = '1';
    await expect(resolveModel('test-org/llama-tiny')).rejects.toThrow(
      /'model-00002-of-00002\.safetensors' of 'test-org\/llama-tiny' at revision 'main'.*HF_HUB_OFFLINE=1/,
    );
    expect(cachedModel('test-org/llama-tiny')).toBeNull();
  });
});
