// Model specs: folder > alias > org/name[@revision]; unknown names get close aliases.
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { MemoryError, UsageError } from '../../../src/errors.js';
import { parseModelSpec, resolveModel, UnknownModelError } from '../../../src/io/hub/index.js';
import { closeAliases, findAlias, float32Bytes, MODEL_ALIASES } from '../../../src/models/aliases.js';
import { defaultModelDir } from '../../../src/models/load.js';
import { ROOT } from '../../helpers/cli.js';

describe('aliases', () => {
  it('are unique, case-insensitive, and point at org/name ids', () => {
    const names = MODEL_ALIASES.map((a) => a.alias.toLowerCase());
    expect(new Set(names).size).toBe(names.length);
    expect(findAlias('GPT2')?.repoId).toBe('openai-community/gpt2');
    expect(findAlias('Pythia-70M-Deduped')?.repoId).toBe('EleutherAI/pythia-70m-deduped');
    expect(findAlias('gemma-3-1b')?.repoId).toBe('google/gemma-3-1b-pt');
    expect(findAlias('llama-3.2-1b')).toMatchObject({ repoId: 'meta-llama/Llama-3.2-1B', gated: true });
    for (const a of MODEL_ALIASES) if (a.repoId) expect(a.repoId).toMatch(/^[\w.-]+\/[\w.-]+$/);
    expect(float32Bytes(findAlias('gpt2')!)).toBe(124_439_808 * 4);
  });

  it('suggest close names', () => {
    expect(closeAliases('gpt3')).toContain('gpt2');
    expect(closeAliases('pythia-70')).toContain('pythia-70m');
    expect(closeAliases('qwen2.5-7b')[0]).toMatch(/^qwen2\.5-/);
  });
});

describe('parseModelSpec', () => {
  it('an existing folder wins, then aliases, then org/name[@revision]', () => {
    const fixture = path.join(ROOT, 'test/fixtures/llama-tiny');
    expect(parseModelSpec(fixture)).toEqual({ kind: 'folder', dir: fixture });
    expect(parseModelSpec(undefined)).toEqual({ kind: 'builtin', dir: defaultModelDir() });
    expect(parseModelSpec('stories260k')).toMatchObject({ kind: 'builtin', alias: 'stories260K' });
    expect(parseModelSpec('gpt2')).toMatchObject({
      kind: 'hub',
      repoId: 'openai-community/gpt2',
      alias: 'gpt2',
    });
    expect(parseModelSpec('gpt2@v1')).toMatchObject({ repoId: 'openai-community/gpt2', revision: 'v1' });
    expect(parseModelSpec('org/name@refs/pr/1')).toMatchObject({ repoId: 'org/name', revision: 'refs/pr/1' });
    expect(parseModelSpec('org/name', 'dev')).toMatchObject({ repoId: 'org/name', revision: 'dev' });
  });

  it('rejects what matches nothing, with suggestions', () => {
    expect(() => parseModelSpec('gpt3')).toThrow(UnknownModelError);
    expect(() => parseModelSpec('gpt3')).toThrow(
      /'gpt3' is not a model folder, a Sonde alias or a Hub id.*'gpt2'/,
    );
    expect(() => parseModelSpec('./no/such/dir')).toThrow(/model folder '.\/no\/such\/dir' does not exist/);
    expect(() => parseModelSpec('org/name@a', 'b')).toThrow(UsageError);
  });
});

describe('resolveModel refuses an alias too big to load before downloading it', () => {
  it('names the size and the limit, and makes no request', async () => {
    const saved = process.env.SONDE_MAX_MEMORY;
    process.env.SONDE_MAX_MEMORY = '4GB';
    try {
      // The endpoint is closed: reaching the network would give a network error, not MemoryError.
      const opts = { endpoint: 'http://127.0.0.1:9', cacheDir: path.join(ROOT, 'no-such-cache') };
      await expect(resolveModel('gemma-2-2b', opts)).rejects.toThrow(MemoryError);
      await expect(resolveModel('gemma-2-2b', opts)).rejects.toThrow(
        /gemma-2-2b \(google\/gemma-2-2b\) has 2\.61B parameters.*10\.5 GB.*SONDE_MAX_MEMORY sets \(4\.00 GB\)\. No weights were downloaded/,
      );
    } finally {
      if (saved === undefined) delete process.env.SONDE_MAX_MEMORY;
      else process.env.SONDE_MAX_MEMORY = saved;
    }
  });
});
