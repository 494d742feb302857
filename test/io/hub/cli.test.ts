// The CLI against a mock Hub serving the real fixture folders: `--model org/name` on an existing command,
// `sonde download`, `sonde models`, offline mode and one-line errors. Spawns run side by side.
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ROOT } from '../../helpers/cli.js';
import { clearHfEnv, freshCache, MockHub } from './hub-env.js';

const ENTRY = path.join(ROOT, 'src/cli/index.ts');
const LLAMA_TINY = path.join(ROOT, 'test/fixtures/llama-tiny');
const GPT2_TINY = path.join(ROOT, 'test/fixtures/gpt2-tiny');

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with the test's HF_* variables plus `env`. */
function sonde(env: Record<string, string>, ...args: string[]): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', ENTRY, ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1', ...env }, timeout: 120_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}

function oneLineError(r: Result): string {
  expect(r.code).toBe(1);
  expect(r.stdout).toBe('');
  const lines = r.stderr.trimEnd().split('\n');
  expect(lines).toHaveLength(1);
  return lines[0]!;
}

let hub: MockHub;
let cache: string;

beforeAll(async () => {
  clearHfEnv();
  cache = freshCache();
  hub = new MockHub();
  hub.addFolder('test-org/llama-tiny', LLAMA_TINY);
  hub.addFolder('openai-community/gpt2', GPT2_TINY); // what the alias gpt2 resolves to
  process.env.HF_ENDPOINT = await hub.start();
});

afterAll(async () => {
  await hub.stop();
  clearHfEnv();
});

describe('sonde with the Hub', () => {
  it('--model org/name downloads and runs exactly like the folder; download --json', async () => {
    const [fromHub, fromFolder, gpt2] = await Promise.all([
      sonde({}, '--model', 'test-org/llama-tiny', 'run', '--tokens', '1,2,3', '--json'),
      sonde({}, '--model', LLAMA_TINY, 'run', '--tokens', '1,2,3', '--json'),
      sonde({}, 'download', 'gpt2', '--json'),
    ]);
    expect(fromHub.stderr).toBe('');
    expect(fromHub.code).toBe(0);
    const a = JSON.parse(fromHub.stdout);
    const b = JSON.parse(fromFolder.stdout);
    const commit = hub.repos.get('test-org/llama-tiny')!.commit;
    expect(a.model).toBe(path.join(cache, 'models--test-org--llama-tiny', 'snapshots', commit));
    expect({ ...a, model: null }).toEqual({ ...b, model: null });
    // Every file came from the mock: its shards through the CDN redirect.
    expect(hub.count('GET', /^\/cdn\//)).toBe(2 + 1); // llama-tiny's two shards, gpt2's model.safetensors

    expect(gpt2.code).toBe(0);
    const doc = JSON.parse(gpt2.stdout);
    expect(doc).toMatchObject({ repo_id: 'openai-community/gpt2', revision: 'main' });
    expect(doc.commit).toBe(hub.repos.get('openai-community/gpt2')!.commit);
    expect(doc.files).toEqual(
      ['config.json', 'model.safetensors'].map((name) => ({
        name,
        size: fs.statSync(path.join(GPT2_TINY, name)).size,
      })),
    );
    expect(fs.readlinkSync(path.join(doc.path, 'model.safetensors'))).toMatch(
      /^\.\.\/\.\.\/blobs\/[0-9a-f]{64}$/,
    );
  });

  it('then: download is a cache hit, models shows what is cached, offline needs no Hub', async () => {
    const commit = hub.repos.get('test-org/llama-tiny')!.commit;
    const snapshot = path.join(cache, 'models--test-org--llama-tiny', 'snapshots', commit);
    hub.requests.length = 0;
    const offline = { HF_HUB_OFFLINE: '1' };
    const [again, models, info, absent] = await Promise.all([
      sonde({}, 'download', 'test-org/llama-tiny'),
      sonde({}, 'models', '--json'),
      sonde(offline, '--model', 'test-org/llama-tiny', 'info', '--json'),
      sonde(offline, 'download', 'test-org/other'),
    ]);
    expect(again.stdout).toBe(snapshot + '\n');
    expect(again.stderr).toMatch(/commit [0-9a-f]{12}\): 4 files, .* 0 downloaded, 4 from the cache/);
    // One listing call (the online download); no file request; nothing from the offline runs.
    expect(hub.requests.map((r) => `${r.method} ${r.path}`)).toEqual([
      'GET /api/models/test-org/llama-tiny/revision/main',
    ]);

    const rows = JSON.parse(models.stdout) as Record<string, unknown>[];
    const row = (alias: string) => rows.find((r) => r.alias === alias)!;
    expect(row('gpt2')).toMatchObject({ repo_id: 'openai-community/gpt2', cached: true, gated: false });
    expect(row('gpt2-medium')).toMatchObject({ cached: false, path: null });
    expect(row('stories260K')).toMatchObject({ repo_id: null, cached: true });
    expect(row('llama-3.2-1b')).toMatchObject({
      gated: true,
      params: 1_235_814_400,
      float32_bytes: 4_943_257_600,
    });

    expect(info.code).toBe(0);
    expect(JSON.parse(info.stdout).source).toBe(snapshot);
    expect(oneLineError(absent)).toMatch(
      /^sonde: a snapshot of 'test-org\/other' at revision 'main' is not in the cache .* HF_HUB_OFFLINE=1 is set/,
    );
  });
});
