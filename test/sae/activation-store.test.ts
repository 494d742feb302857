import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { float16ToFloat32, float32ToFloat16 } from '../../src/io/safetensors.js';
import {
  ActivationStore,
  harvestActivations,
  type HarvestOptions,
  type StoreManifest,
} from '../../src/sae/activation-store.js';
import { ActivationDataError, writeNpy } from '../../src/sae/row-source.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-acts-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const dir = (name: string) => path.join(tmp, name);

// Eager everywhere, so the reference forward runs exactly the kernels the harvest runs.
const model = HookedTransformer.load(undefined, { compile: 'never' });
const BOS = model.tokenizer!.bosId!;
const HOOK = 'blocks.1.hook_resid_post';
const CTX = 24;
const BATCH = 6;
// Four short stories (first two lines each) of the built-in corpus: ~30 contexts, ~650 rows of 64.
const texts = fs
  .readFileSync('assets/corpus/stories260K-samples.txt', 'utf8')
  .split('\n\n')
  .slice(0, 4)
  .map((s) => s.split('\n').slice(0, 2).join('\n'));

/** Independent statement of the chunking: documents encoded with BOS as the tokenizer does, concatenated,
 * cut into contexts of CTX; a context that does not start at a BOS gets one prepended. */
function referenceContexts(): number[][] {
  const stream = texts.flatMap((t) => model.encode(t));
  expect(stream[0]).toBe(BOS);
  const out: number[][] = [];
  let i = 0;
  for (;;) {
    const c = stream[i] === BOS ? stream.slice(i, i + CTX) : [BOS, ...stream.slice(i, i + CTX - 1)];
    i += stream[i] === BOS ? CTX : CTX - 1;
    if (c.length < CTX) return out;
    out.push(c);
  }
}

/** The hook's rows at non-BOS positions, from runWithCache on the same batches. */
async function referenceRows(
  contexts: number[][],
  hook = HOOK,
): Promise<{ rows: Float32Array[]; d: number }> {
  const rows: Float32Array[] = [];
  let d = 0;
  for (let b = 0; b < contexts.length; b += BATCH) {
    const batch = contexts.slice(b, b + BATCH);
    const act = model.runWithCache(batch, { names: [hook] }).cache.get(hook);
    d = act.shape.slice(2).reduce((x, y) => x * y, 1);
    const data = await act.f32();
    batch.forEach((c, i) =>
      c.forEach((tok, p) => {
        if (tok !== BOS) rows.push(data.slice((i * CTX + p) * d, (i * CTX + p + 1) * d));
      }),
    );
  }
  return { rows, d };
}

const base = (outDir: string, extra: Partial<HarvestOptions> = {}): HarvestOptions => ({
  hook: HOOK,
  texts,
  outDir,
  ctx: CTX,
  batchSize: BATCH,
  shardRows: 100,
  ...extra,
});

const contexts = referenceContexts();
const ref = await referenceRows(contexts);
const full = await harvestActivations(model, base(dir('full')));

function storeRows(d: string): Float32Array {
  const s = ActivationStore.open(d);
  const all = s.readAll();
  s.close();
  return all;
}

function shardBytes(d: string, m: StoreManifest): Buffer[] {
  return m.shards.map((s) => fs.readFileSync(path.join(d, s.file)));
}

describe('harvestActivations', () => {
  it('stores the hook activation at every non-BOS position, in order', async () => {
    const nonBos = contexts.flat().filter((t) => t !== BOS).length;
    expect(contexts.length).toBeGreaterThan(20);
    expect(full.rows).toBe(nonBos);
    expect(full.rows).toBe(ref.rows.length);
    expect(full.d).toBe(64);
    expect(full.complete).toBe(true);
    expect(full.position.contexts).toBe(contexts.length);
    expect(full.shards.map((s) => s.file).slice(0, 2)).toEqual([
      'shard-00000.safetensors',
      'shard-00001.safetensors',
    ]);
    expect(full.shards.slice(0, -1).every((s) => s.rows === 100)).toBe(true);
    expect(full.shards.reduce((a, s) => a + s.rows, 0)).toBe(full.rows);
    const m = JSON.parse(fs.readFileSync(path.join(dir('full'), 'manifest.json'), 'utf8')) as StoreManifest;
    expect(m).toEqual(full);
    expect([m.hook, m.model, m.ctx, m.dtype]).toEqual([HOOK, model.source, CTX, 'float32']);

    const got = storeRows(dir('full'));
    const want = new Float32Array(full.rows * 64);
    ref.rows.forEach((r, i) => want.set(r, i * 64));
    expect(got).toEqual(want); // exactly
  });

  it('stores float16 within float16 rounding, and flattens heads', async () => {
    const m = await harvestActivations(
      model,
      base(dir('half'), { dtype: 'float16', texts: () => texts.values() }),
    );
    const got = storeRows(dir('half'));
    const want = new Float32Array(m.rows * 64);
    ref.rows.forEach((r, i) => want.set(float16ToFloat32(float32ToFloat16(r)), i * 64));
    expect(got).toEqual(want);

    // With excludeBos off, every position is a row (BOS included).
    const withBos = await harvestActivations(
      model,
      base(dir('bos'), { excludeBos: false, maxRows: 2 * CTX }),
    );
    const firstTwo = await model
      .runWithCache(contexts.slice(0, BATCH), { names: [HOOK] })
      .cache.get(HOOK)
      .f32();
    expect(withBos.rows).toBe(2 * CTX);
    expect(storeRows(dir('bos'))).toEqual(firstTwo.slice(0, 2 * CTX * 64));

    const z = await harvestActivations(model, base(dir('z'), { hook: 'blocks.0.attn.hook_z', maxRows: 60 }));
    const zref = await referenceRows(contexts.slice(0, BATCH), 'blocks.0.attn.hook_z');
    expect(z.d).toBe(model.cfg.nHeads * model.cfg.dHead);
    const zrows = storeRows(dir('z'));
    expect(zrows.length).toBe(60 * z.d);
    for (let i = 0; i < 60; i++) expect(zrows.slice(i * z.d, (i + 1) * z.d)).toEqual(zref.rows[i]);
  });

  it('resumes after maxRows stops and after a crash, giving the same shards as one run', async () => {
    // maxRows mid-shard and mid-context, twice, then to the end.
    const a = await harvestActivations(model, base(dir('resume'), { maxRows: 130 }));
    expect([a.rows, a.complete, a.shards.map((s) => s.rows)]).toEqual([130, false, [100, 30]]);
    const b = await harvestActivations(model, base(dir('resume'), { maxRows: 257 }));
    expect([b.rows, b.shards.map((s) => s.rows)]).toEqual([257, [100, 100, 57]]);
    const c = await harvestActivations(model, base(dir('resume')));
    expect(c).toEqual(full);
    expect(shardBytes(dir('resume'), c)).toEqual(shardBytes(dir('full'), full));
    // Already complete: nothing to do.
    expect(await harvestActivations(model, base(dir('resume')))).toEqual(full);

    // A crash mid-run (the callback throws after some batches): listed shards are whole; continue.
    const progress: number[] = [];
    await expect(
      harvestActivations(
        model,
        base(dir('crash'), {
          onProgress: (done, total) => {
            expect(total).toBeNull();
            progress.push(done);
            if (done > 330) throw new Error('killed');
          },
        }),
      ),
    ).rejects.toThrow('killed');
    const partial = JSON.parse(
      fs.readFileSync(path.join(dir('crash'), 'manifest.json'), 'utf8'),
    ) as StoreManifest;
    // Every full shard of 100 rows before the crash is listed, nothing more.
    expect(partial.rows).toBe(Math.floor(progress[progress.length - 1]! / 100) * 100);
    expect(partial.rows).toBeGreaterThanOrEqual(300);
    expect(partial.complete).toBe(false);
    expect(progress.every((p, i) => i === 0 || p > progress[i - 1]!)).toBe(true);
    const d = await harvestActivations(model, base(dir('crash')));
    expect(d).toEqual(full);
    expect(shardBytes(dir('crash'), d)).toEqual(shardBytes(dir('full'), full));
  });

  it('refuses a folder harvested with other settings or from other texts', async () => {
    await expect(
      harvestActivations(model, base(dir('full'), { hook: 'blocks.0.hook_resid_post' })),
    ).rejects.toThrow(
      /other settings.*hook: "blocks\.1\.hook_resid_post" there, "blocks\.0\.hook_resid_post" now/,
    );
    await expect(harvestActivations(model, base(dir('full'), { dtype: 'float16' }))).rejects.toThrow(
      ActivationDataError,
    );
    await expect(harvestActivations(model, base(dir('full'), { ctx: 32 }))).rejects.toThrow(
      /ctx: 24 there, 32 now/,
    );
    const processed = HookedTransformer.load(undefined, { processWeights: true, compile: 'never' });
    await expect(harvestActivations(processed, base(dir('full')))).rejects.toThrow(/another model/);
    await harvestActivations(model, base(dir('texts'), { maxRows: 150 }));
    await expect(
      harvestActivations(model, base(dir('texts'), { texts: [...texts].reverse() })),
    ).rejects.toThrow(/texts differ/);
    await expect(
      harvestActivations(model, base(dir('x'), { hook: 'blocks.9.hook_resid_post' })),
    ).rejects.toThrow(/unknown hook/);
    await expect(
      harvestActivations(model, base(dir('x'), { hook: 'blocks.0.attn.hook_pattern' })),
    ).rejects.toThrow(/not one vector per position/);
    await expect(harvestActivations(model, base(dir('x'), { texts: ['Hi'] }))).rejects.toThrow(
      /single context/,
    );
  });
});

describe('ActivationStore', () => {
  it('reads across shards and computes streamed statistics', async () => {
    const s = ActivationStore.open(dir('full'));
    expect([s.rows, s.dim, s.hook, s.dtype]).toEqual([full.rows, 64, HOOK, 'float32']);
    const all = s.readAll();
    expect(s.read(95, 10)).toEqual(all.slice(95 * 64, 105 * 64));
    expect(s.readAll(7)).toEqual(all.slice(0, 7 * 64));
    const mean = new Float64Array(64);
    let norm = 0;
    for (let r = 0; r < s.rows; r++) {
      let sq = 0;
      for (let j = 0; j < 64; j++) {
        mean[j]! += all[r * 64 + j]! / s.rows;
        sq += all[r * 64 + j]! ** 2;
      }
      norm += Math.sqrt(sq) / s.rows;
    }
    const m = s.mean();
    for (let j = 0; j < 64; j++) expect(m[j]).toBeCloseTo(mean[j]!, 5);
    expect(s.meanNorm(1e9)).toBeCloseTo(norm, 4);
    expect(Math.abs(s.meanNorm(200) - norm) / norm).toBeLessThan(0.1);
    expect(() => s.read(s.rows - 1, 2)).toThrow(/out of range/);
    s.close();
    expect(() => ActivationStore.open(dir('nowhere'))).toThrow(/do not exist/);
    fs.mkdirSync(dir('empty'));
    expect(() => ActivationStore.open(dir('empty'))).toThrow(/no manifest\.json/);
  });

  // 1000 rows whose values are their own index, in a single .npy file.
  const N = 1000;
  const npy = dir('index.npy');
  writeNpy(
    npy,
    Float32Array.from({ length: N * 2 }, (_, i) => (i % 2 ? -1 : 1) * Math.floor(i / 2)),
    N,
    2,
  );
  const indices = (batches: Float32Array[]) =>
    batches.flatMap((b) => Array.from(b.filter((_, i) => i % 2 === 0)));

  it('covers every row exactly once per epoch, shuffled, within the buffer bound', async () => {
    const store = ActivationStore.open(npy);
    for (const [bufferRows, chunkRows] of [
      [200, 32],
      [100, 300], // buffer smaller than a chunk: chunks shrink to the buffer
      [130, 50], // not a multiple
      [5000, 64], // more buffer than rows
    ] as const) {
      const s = store.stream({ batchSize: 64, seed: 3, bufferRows, chunkRows });
      const batches = Array.from({ length: 47 }, () => s.next()); // 3008 rows: three epochs and a bit
      expect(batches.every((b) => b.length === 64 * 2)).toBe(true);
      expect(s.bufferCapacityRows).toBeGreaterThan(0);
      expect(s.bufferCapacityRows).toBeLessThanOrEqual(bufferRows);
      const idx = indices(batches);
      const sorted = Array.from({ length: N }, (_, i) => i);
      const epochs = [0, 1, 2].map((e) => idx.slice(e * N, (e + 1) * N));
      for (const e of epochs) expect([...e].sort((a, b) => a - b)).toEqual(sorted);
      expect(epochs[0]).not.toEqual(sorted);
      expect(epochs[1]).not.toEqual(epochs[0]);
      expect(s.epoch).toBe(3);
      // Rows stay whole: the second value is minus the first.
      expect(batches.every((b) => b.every((v, i) => i % 2 === 0 || v === -b[i - 1]!))).toBe(true);
    }
    // Same seed, same stream; another seed, another.
    const a = store.stream({ batchSize: 50, seed: 1, bufferRows: 256 }).next();
    expect(store.stream({ batchSize: 50, seed: 1, bufferRows: 256 }).next()).toEqual(a);
    expect(store.stream({ batchSize: 50, seed: 2, bufferRows: 256 }).next()).not.toEqual(a);
    store.close();
  });

  it('streams only the first `rows` rows when asked (the rest held out of training)', async () => {
    const store = ActivationStore.open(npy);
    const s = store.stream({ batchSize: 50, seed: 4, bufferRows: 200, chunkRows: 32, rows: 950 });
    const idx = indices(Array.from({ length: 57 }, () => s.next())); // three epochs of 950
    const firstEpoch = [...idx.slice(0, 950)].sort((a, b) => a - b);
    expect(firstEpoch).toEqual(Array.from({ length: 950 }, (_, i) => i));
    expect(Math.max(...idx)).toBe(949);
    expect(s.epoch).toBe(3);
    // A state saved with one split does not resume with another.
    expect(() => store.stream({ batchSize: 50, seed: 4, bufferRows: 200, chunkRows: 32 }, s.state())).toThrow(
      /it is for 950 rows, this stream has 1000/,
    );
    store.close();
  });

  it('covers a multi-shard store once per epoch', async () => {
    const s = ActivationStore.open(dir('full'));
    const all = s.readAll();
    const key = (v: Float32Array) => Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('base64');
    // Rows repeat (stories share their openings), so compare multisets.
    const count = (data: Float32Array) => {
      const m = new Map<string, number>();
      for (let r = 0; r < s.rows; r++) {
        const k = key(data.subarray(r * 64, (r + 1) * 64));
        m.set(k, (m.get(k) ?? 0) + 1);
      }
      return m;
    };
    const stream = s.stream({ batchSize: s.rows, seed: 9, bufferRows: 150, chunkRows: 40 });
    const b = stream.next();
    expect(b).not.toEqual(all);
    expect(count(b)).toEqual(count(all));
    expect(stream.bufferCapacityRows).toBeLessThanOrEqual(150);
    s.close();
  });

  it('resumes a stream exactly from its state', async () => {
    const store = ActivationStore.open(npy);
    const opts = { batchSize: 150, seed: 11, bufferRows: 300, chunkRows: 64 };
    const straight = store.stream(opts);
    const want = Array.from({ length: 12 }, () => straight.next()); // 1800 rows: crosses an epoch
    const first = store.stream(opts);
    const got = Array.from({ length: 7 }, () => first.next());
    const state = JSON.parse(JSON.stringify(first.state())) as ReturnType<typeof first.state>;
    expect(state.epoch).toBe(1);
    const again = store.stream(opts, state);
    for (let i = 0; i < 5; i++) got.push(again.next());
    expect(got).toEqual(want);
    // A state taken at a group boundary and at the start restores too.
    const fresh = store.stream(opts, store.stream(opts).state());
    expect(fresh.next()).toEqual(want[0]);
    expect(() => store.stream({ ...opts, seed: 12 }, state)).toThrow(/seed was 11, now 12/);
    expect(() => store.stream({ ...opts, bufferRows: 400 }, state)).toThrow(/bufferRows/);
    const other = ActivationStore.open(dir('full'));
    expect(() => other.stream(opts, state)).toThrow(/rows/);
    other.close();
    store.close();
  });

  it('opens one .safetensors file as a store', async () => {
    const s = ActivationStore.open(path.join(dir('full'), full.shards[1]!.file));
    expect([s.rows, s.dim, s.hook]).toEqual([100, 64, null]);
    expect(s.readAll()).toEqual(storeRows(dir('full')).slice(100 * 64, 200 * 64));
    s.close();
  });
});
