// HookedTransformer.fromPretrained: a Hub id served by the mock Hub loads the same model as its folder,
// and the cache then answers with the Hub gone (offline).
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import '../../../src/engine/node.js';
import { HookedTransformer } from '../../../src/hooks/hooked-transformer.js';
import { ROOT } from '../../helpers/cli.js';
import { clearHfEnv, freshCache, MockHub } from './hub-env.js';

const FIXTURES = ['pythia-tiny', 'gemma2-tiny'];

describe('HookedTransformer.fromPretrained', () => {
  const hub = new MockHub();
  let endpoint = '';
  let cacheDir = '';
  beforeAll(async () => {
    clearHfEnv();
    cacheDir = freshCache();
    for (const f of FIXTURES) hub.addFolder(`test-org/${f}`, path.join(ROOT, 'test/fixtures', f));
    endpoint = await hub.start();
  });
  afterAll(async () => {
    await hub.stop();
    clearHfEnv();
  });

  it.each(FIXTURES)('test-org/%s gives the logits of the fixture folder, then works offline', async (f) => {
    const ids = [[1, 5, 9, 2, 7, 3, 11, 4]];
    const want = HookedTransformer.load(path.join(ROOT, 'test/fixtures', f))
      .run(ids)
      .f32Sync();
    const online = await HookedTransformer.fromPretrained(`test-org/${f}`, { hub: { endpoint, cacheDir } });
    expect(online.source.startsWith(cacheDir)).toBe(true);
    expect(Array.from(online.run(ids).f32Sync())).toEqual(Array.from(want));
    const offline = await HookedTransformer.fromPretrained(`test-org/${f}`, {
      hub: { endpoint: 'http://127.0.0.1:9', cacheDir, offline: true },
    });
    expect(Array.from(offline.run(ids).f32Sync())).toEqual(Array.from(want));
  });

  it('a sharded repo too big for the memory limit is refused from its index, before any shard is fetched', async () => {
    const saved = process.env.SONDE_MAX_MEMORY;
    process.env.SONDE_MAX_MEMORY = '50KB'; // pythia-tiny: 93,184 bytes of float32 shards
    const fresh = path.join(cacheDir, '..', 'hub-too-big');
    try {
      hub.requests.length = 0;
      await expect(
        HookedTransformer.fromPretrained('test-org/pythia-tiny', { hub: { endpoint, cacheDir: fresh } }),
      ).rejects.toThrow(/test-org\/pythia-tiny has 93\.2 KB of float32 weights.*No weights were downloaded/);
      const fetched = hub.requests.filter((r) => r.method === 'GET').map((r) => r.path);
      expect(fetched.some((p) => p.endsWith('.safetensors'))).toBe(false);
      expect(fetched.some((p) => p.endsWith('model.safetensors.index.json'))).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.SONDE_MAX_MEMORY;
      else process.env.SONDE_MAX_MEMORY = saved;
    }
  });
});
