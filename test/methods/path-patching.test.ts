import '../../src/engine/node.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { HookedTransformer, UsageError, type Tensor } from '../../src/index.js';
import { Rng } from '../../src/engine/random.js';
import { activationPatching } from '../../src/methods/patching.js';
import { pathPatching, pathPatchingSweep } from '../../src/methods/path-patching.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const induction = HookedTransformer.load(path.join(ROOT, 'test/fixtures/induction-2l'));
const H = induction.cfg.nHeads;
const V = induction.cfg.vocabSize;
const T = 16;
const SEEDS = [0, 1, 2, 3];
const LAYER1 = Array.from({ length: H }, (_, h) => ({ layer: 1, head: h }));

/**
 * Clean [BOS, r, r], corrupt [BOS, r', r] with r, r' random ids in 259..511: the first repeat differs, so the
 * previous-token heads write different "previous token" information at the positions the induction heads'
 * keys read, while the second repeat (the induction heads' queries) is the same.
 */
function pair(seed: number): { clean: number[]; corrupt: number[] } {
  const rng = new Rng(seed);
  const rand = () => Array.from({ length: T }, () => 259 + rng.int(253));
  const r = rand();
  const r2 = rand();
  return { clean: [1, ...r, ...r], corrupt: [1, ...r2, ...r] };
}

/** Mean log-probability of the clean sequence's next token over the second repeat. */
function copyingMetric(clean: number[]): (logits: Tensor) => number {
  return (logits) => {
    const d = logits.f32Sync();
    let total = 0;
    for (let i = T + 1; i < 2 * T; i++) {
      const row = d.subarray(i * V, (i + 1) * V);
      let m = -Infinity;
      for (const x of row) m = Math.max(m, x);
      let s = 0;
      for (const x of row) s += Math.exp(x - m);
      total += row[clean[i + 1]!]! - m - Math.log(s);
    }
    return total / (T - 1);
  };
}

/** 1 - value, averaged over the seeds: the damage done through the path by each layer-0 head. */
async function layer0Damage(receiverInput: 'q' | 'k' | 'v'): Promise<number[]> {
  const damage = new Array<number>(H).fill(0);
  for (const seed of SEEDS) {
    const { clean, corrupt } = pair(seed);
    const r = await pathPatchingSweep(induction, {
      clean,
      corrupt,
      metric: copyingMetric(clean),
      receivers: LAYER1,
      receiverInput,
    });
    expect(r.senderLayers).toBe(1);
    r.values[0]!.forEach((v, h) => (damage[h]! += (1 - v) / SEEDS.length));
    expect(r.values[1]!.every(Number.isNaN)).toBe(true);
  }
  return damage;
}

// Measured (T 16, seeds 0-3): via k, damage 0.74 (L0H1), 0.57 (L0H2) against 0.02 (L0H0), 0.07 (L0H3);
// via q, |damage| < 0.01 for every layer-0 head.
const k = await layer0Damage('k');
describe('pathPatching on the induction organism', () => {
  it('K-composition: previous-token heads L0H1, L0H2 reach the induction heads through their keys', async () => {
    const prev = [k[1]!, k[2]!];
    const other = [k[0]!, k[3]!];
    expect(Math.min(...prev)).toBeGreaterThan(0.35);
    expect(Math.max(...other)).toBeLessThan(0.2);
    expect(Math.min(...prev)).toBeGreaterThan(Math.max(...other) + 0.3);
  });

  it('through the queries the previous-token heads do far less than through the keys', async () => {
    const q = await layer0Damage('q');
    for (const h of [1, 2]) expect(Math.abs(q[h]!)).toBeLessThan(k[h]! / 3);
  });

  it('the sweep (batched) equals pathPatching of each sender alone, and two senders act together', async () => {
    const { clean, corrupt } = pair(7);
    const base = { clean, corrupt, metric: copyingMetric(clean), receivers: LAYER1 };
    const sweep = await pathPatchingSweep(induction, { ...base, receiverInput: 'k', batchSize: 3 });
    for (let h = 0; h < H; h++) {
      const one = await pathPatching(induction, {
        ...base,
        receiverInput: 'k',
        senders: [{ layer: 0, head: h }],
      });
      expect(one.value).toBeCloseTo(sweep.values[0]![h]!, 4);
      expect(one.cleanMetric).toBe(sweep.cleanMetric);
    }
    const both = await pathPatching(induction, {
      ...base,
      receiverInput: 'k',
      senders: [
        { layer: 0, head: 1 },
        { layer: 0, head: 2 },
      ],
    });
    expect(both.value).toBeLessThan(Math.min(sweep.values[0]![1]!, sweep.values[0]![2]!));
  });

  it("senders in the last layer with receivers 'logits' equal activation patching of their z (noise)", async () => {
    const { clean, corrupt } = pair(3);
    const metric = copyingMetric(clean);
    const act = await activationPatching(induction, {
      clean,
      corrupt,
      metric,
      target: 'z',
      direction: 'noise',
    });
    for (let h = 0; h < H; h++) {
      const r = await pathPatching(induction, {
        clean,
        corrupt,
        metric,
        senders: [{ layer: 1, head: h }],
        receivers: 'logits',
      });
      expect(Math.abs(r.value - act.values[1]![h]![0]!)).toBeLessThan(1e-4);
    }
    // And the sweep over all layers agrees on layer 1.
    const sweep = await pathPatchingSweep(induction, { clean, corrupt, metric, receivers: 'logits' });
    expect(sweep.senderLayers).toBe(2);
    for (let h = 0; h < H; h++)
      expect(Math.abs(sweep.values[1]![h]! - act.values[1]![h]![0]!)).toBeLessThan(1e-4);
  });

  it('rejects senders that cannot reach the receivers, and bad arguments', async () => {
    const { clean, corrupt } = pair(0);
    const base = { clean, corrupt, metric: copyingMetric(clean) };
    await expect(
      pathPatching(induction, {
        ...base,
        senders: [{ layer: 1, head: 0 }],
        receivers: LAYER1,
        receiverInput: 'k',
      }),
    ).rejects.toThrow(UsageError);
    await expect(
      pathPatching(induction, { ...base, senders: [{ layer: 0, head: 0 }], receivers: LAYER1 }),
    ).rejects.toThrow(/receiverInput/);
    await expect(
      pathPatching(induction, { ...base, senders: [{ layer: 0, head: 9 }], receivers: 'logits' }),
    ).rejects.toThrow(UsageError);
    await expect(pathPatching(induction, { ...base, senders: [], receivers: 'logits' })).rejects.toThrow(
      UsageError,
    );
    await expect(
      pathPatchingSweep(induction, { ...base, receivers: [{ layer: 0, head: 0 }], receiverInput: 'q' }),
    ).rejects.toThrow(/layer 0/);
  });
});

describe('pathPatching on a model with MLPs (stories260K)', () => {
  const stories = HookedTransformer.load();
  const NAME = {
    clean: 'Once upon a time, there was a little girl named Lily. One day,',
    corrupt: 'Once upon a time, there was a little girl named Tim. One day,',
    answer: 'Lily',
    wrong: 'Tim',
  };

  it('the batched sweep equals single runs; MLPs frozen; values finite', async () => {
    const L = stories.cfg.nLayers;
    const receivers = [{ layer: L - 1, head: 0 }];
    const sweep = await pathPatchingSweep(stories, { ...NAME, receivers, receiverInput: 'v', batchSize: 5 });
    expect(sweep.senderLayers).toBe(L - 1);
    expect(sweep.metric).toBe('logit_diff');
    for (const [l, h] of [
      [0, 0],
      [L - 2, stories.cfg.nHeads - 1],
    ] as const) {
      const one = await pathPatching(stories, {
        ...NAME,
        receivers,
        receiverInput: 'v',
        senders: [{ layer: l, head: h }],
      });
      expect(Number.isFinite(one.value)).toBe(true);
      expect(one.value).toBeCloseTo(sweep.values[l]![h]!, 4);
    }
  });
});
