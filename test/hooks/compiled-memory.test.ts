// Models above 2 GB: compiled graphs take big weights by reference, so a second `run` neither copies the
// weights nor hits ORT's 2 GB protobuf limit. scripts/compiled-memory.ts builds a 3.2 GB float32 Llama in
// a child process (so the peak RSS is its own, not this worker's) and runs it.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  BAKE_WEIGHTS_MAX_BYTES,
  compiledGraphBytes,
  compiledInlineLimit,
  estimateLoadMemory,
} from '../../src/models/memory.js';
import { loadModelDir } from '../../src/models/load.js';

const FIXTURES = path.resolve('test/fixtures');

describe('compiled graphs and big weights', () => {
  it('bake the weights of small models only, and the estimate counts the baked copies', () => {
    expect(compiledInlineLimit(BAKE_WEIGHTS_MAX_BYTES)).toBe(Infinity);
    expect(compiledInlineLimit(BAKE_WEIGHTS_MAX_BYTES + 1)).toBe(65536);
    expect(compiledGraphBytes(3.2e9)).toBe(0);
    const dir = path.join(FIXTURES, 'llama-tiny');
    const est = estimateLoadMemory(dir, loadModelDir(dir).cfg);
    // Up to 4 graphs, each 2.5 copies of the weights.
    expect(est.compiledBytes).toBe(10 * est.weightsBytes);
  });

  it('three runs, runWithCache and gradients on a 3.2 GB model peak under 1.3x the weights', () => {
    const t0 = performance.now();
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', 'scripts/compiled-memory.ts', '--gb', '3.2', '--tokens', '4'],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 300_000 },
    );
    const r = JSON.parse(out.trim().split('\n').pop()!) as {
      weightsBytes: number;
      peakRssBytes: number;
      peakOverWeights: number;
      seconds: Record<string, number>;
    };
    expect(r.weightsBytes).toBeGreaterThan(3e9);
    // Before: the second run baked a copy of the weights into a > 2 GB graph and threw.
    expect(Object.keys(r.seconds)).toEqual(['run1', 'run2', 'run3', 'runWithCache', 'gradients']);
    expect(r.peakRssBytes / r.weightsBytes).toBeLessThanOrEqual(1.3);
    console.log(`compiled-memory: ${JSON.stringify(r)} in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }, 300_000);
});
