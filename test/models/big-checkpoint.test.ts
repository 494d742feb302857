// Big checkpoints: sharded BF16 streams in tensor by tensor, the memory it needs is estimated from the
// headers and checked before any tensor is read, and progress covers every tensor. The fixtures are
// generated here from test/fixtures/llama-tiny (BF16 in 3 shards with an index) into a temp folder.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import '../../src/engine/node.js';
import { MemoryError, SafetensorsError, UsageError } from '../../src/errors.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import {
  CONVERT_CHUNK_BYTES,
  MAX_TYPED_ARRAY_LENGTH,
  SafetensorsCheckpoint,
  SafetensorsFile,
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/io/safetensors.js';
import type { LoadProgress } from '../../src/models/load-progress.js';
import { loadModelDir } from '../../src/models/load.js';
import {
  availableMemory,
  checkLoadMemory,
  estimateLoadMemory,
  memoryAvailability,
  parseMemorySize,
  resolveMemoryLimit,
  type MemoryEstimate,
} from '../../src/models/memory.js';

const FIXTURES = path.resolve('test/fixtures');
const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-big-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));

const bf16Round = (x: Float32Array) => bfloat16ToFloat32(float32ToBfloat16(x));
/** Bit-for-bit equality (fast on millions of elements, unlike toEqual). */
const sameBits = (a: Float32Array, b: Float32Array) =>
  a.length === b.length &&
  Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));

/** The fixture's tensors, rounded to BF16 and back to float32. */
let rounded: Map<string, { shape: number[]; data: Float32Array }>;
/** BF16 in 3 shards + model.safetensors.index.json. */
let bf16Dir: string;
/** The same rounded values stored as F32 in one file. */
let f32Dir: string;

/** Writes `tensors` as `dtype` into `shards` files with an index; returns the folder. */
function writeSharded(
  name: string,
  tensors: Map<string, { shape: number[]; data: Float32Array }>,
  dtype: 'F32' | 'BF16',
  shards: number,
  config = path.join(FIXTURES, 'llama-tiny', 'config.json'),
): string {
  const dir = fs.mkdtempSync(path.join(tmpRoot, `${name}-`));
  fs.copyFileSync(config, path.join(dir, 'config.json'));
  const names = [...tensors.keys()].sort();
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < shards; s++) {
    const file = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const part: Record<string, TensorToWrite> = {};
    names.forEach((n, i) => {
      if (i % shards !== s) return;
      const t = tensors.get(n)!;
      part[n] = { dtype, shape: t.shape, data: t.data };
      weightMap[n] = file;
    });
    writeSafetensors(path.join(dir, file), part);
  }
  fs.writeFileSync(
    path.join(dir, 'model.safetensors.index.json'),
    JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }),
  );
  return dir;
}

beforeAll(() => {
  const ck = SafetensorsCheckpoint.open(path.join(FIXTURES, 'llama-tiny'));
  rounded = new Map(
    ck.names().map((n) => [n, { shape: ck.info(n).shape, data: bf16Round(ck.readFloat32(n)) }]),
  );
  ck.close();
  bf16Dir = writeSharded('bf16', rounded, 'BF16', 3);
  f32Dir = writeSharded('f32', rounded, 'F32', 1);
});

afterEach(() => {
  vi.restoreAllMocks();
  delete process.env.SONDE_MAX_MEMORY;
});

// Hand count for llama-tiny (d_model 48, d_mlp 64, vocab 96, 6 heads and 2 KV heads of 8, 2 layers):
// per layer q 48x48 + k 16x48 + v 16x48 + o 48x48 + gate/up 64x48 + down 48x64 + 2 norms of 48.
const PER_LAYER = 2304 + 768 + 768 + 2304 + 3 * 3072 + 2 * 48; // 15456
const PARAMS = 2 * PER_LAYER + 96 * 48 /* embed */ + 96 * 48 /* lm_head */ + 48; /* norm */ // 40176
const LARGEST = 96 * 48; // embed_tokens and lm_head

describe('sharded BF16 checkpoints', () => {
  it('load to exactly the BF16-rounded float32 values, with the logits of an F32 copy', () => {
    const ck = SafetensorsCheckpoint.open(bf16Dir);
    expect(new Set(ck.names().map((n) => path.basename(ck.info(n).file))).size).toBe(3);
    expect(ck.info('model.embed_tokens.weight').dtype).toBe('BF16');
    ck.close();

    const bf = HookedTransformer.load(bf16Dir, { compile: 'never' });
    const f32 = HookedTransformer.load(f32Dir, { compile: 'never' });
    expect(bf.weights.get('embed.W_E')!.f32Sync()).toEqual(rounded.get('model.embed_tokens.weight')!.data);
    // W_Q is q_proj transposed: [in, out] from [out, in].
    const q = rounded.get('model.layers.1.self_attn.q_proj.weight')!.data;
    const wq = bf.weights.get('blocks.1.attn.W_Q')!.f32Sync();
    for (let r = 0; r < 48; r++) for (let c = 0; c < 48; c++) expect(wq[c * 48 + r]).toBe(q[r * 48 + c]);
    expect([...bf.weights.keys()].sort()).toEqual([...f32.weights.keys()].sort());
    for (const [name, t] of bf.weights) expect(t.f32Sync(), name).toEqual(f32.weights.get(name)!.f32Sync());

    const ids = [[1, 5, 9, 17, 33, 65, 2, 40]];
    expect(bf.run(ids).f32Sync()).toEqual(f32.run(ids).f32Sync());
  });

  it('converts tensors larger than one conversion chunk exactly (BF16 and F16)', () => {
    const n = Math.floor(CONVERT_CHUNK_BYTES / 2) + 4097; // two chunks, the second partial
    const x = new Float32Array(n);
    for (let i = 0; i < n; i++) x[i] = Math.sin(i * 0.37) * 10 ** ((i % 9) - 4);
    const file = path.join(tmpRoot, 'chunks.safetensors');
    writeSafetensors(file, {
      b: { dtype: 'BF16', shape: [n], data: x },
      h: { dtype: 'F16', shape: [n], data: x },
    });
    const f = SafetensorsFile.open(file);
    expect(f.info('b').byteLength).toBeGreaterThan(CONVERT_CHUNK_BYTES);
    expect(sameBits(f.readFloat32('b'), bf16Round(x))).toBe(true);
    expect(sameBits(f.readFloat32('h'), float16ToFloat32(float32ToFloat16(x)))).toBe(true);
    f.close();
  });
});

describe('the memory estimate', () => {
  it('matches the hand count for llama-tiny in BF16 and F32', () => {
    const cfg = loadModelDir(f32Dir).cfg;
    const bf = estimateLoadMemory(bf16Dir, cfg);
    expect(bf.parameters).toBe(40176);
    expect(PARAMS).toBe(40176);
    expect(bf.tensors).toBe(21);
    expect(bf.checkpointBytes).toBe(PARAMS * 2);
    expect(bf.checkpointDtypes).toEqual({ BF16: PARAMS * 2 });
    expect(bf.weightsBytes).toBe(PARAMS * 4); // untied: lm_head is in the file, no extra copy
    // The largest tensor's float32 copy before its transpose + its BF16 staging buffer.
    expect(bf.transientBytes).toBe(LARGEST * 4 + LARGEST * 2);
    expect(bf.totalBytes).toBe(PARAMS * 4 + LARGEST * 6); // 188352
    expect(bf.largestTensor).toMatchObject({ elements: LARGEST, dtype: 'BF16' });

    const f = estimateLoadMemory(f32Dir, cfg);
    expect(f.checkpointDtypes).toEqual({ F32: PARAMS * 4 });
    expect(f.transientBytes).toBe(LARGEST * 4); // F32 is read straight into the array that gets transposed
  });

  it('adds the unembedding copy of a tied model, and equals what the load holds', () => {
    // stories260K: d_model 64, d_mlp 172, vocab 512, 8 heads / 4 KV heads of 8, 5 layers, tied, no lm_head.
    const dir = path.join(path.resolve('assets'), 'stories260K');
    const perLayer = 4096 + 2048 + 2048 + 4096 + 3 * 172 * 64 + 2 * 64;
    const params = 5 * perLayer + 512 * 64 + 64;
    let seen: MemoryEstimate | null = null;
    const m = HookedTransformer.load(dir, { compile: 'never', onEstimate: (e) => (seen = e) });
    const est = seen as MemoryEstimate | null;
    expect(est?.parameters).toBe(params);
    expect(est?.weightsBytes).toBe(params * 4 + 512 * 64 * 4);
    const held = (w: HookedTransformer) =>
      [...w.weights.values()].reduce((s, t) => s + t.f32Sync().byteLength, 0);
    expect(held(m)).toBe(est?.weightsBytes);
    for (const d of [bf16Dir, path.join(FIXTURES, 'gpt2-tiny')]) {
      const loaded = loadModelDir(d);
      const total = [...loaded.weights.values()].reduce((s, t) => s + t.f32Sync().byteLength, 0);
      expect(total, d).toBe(loaded.memory.weightsBytes);
    }
  });

  it('refuses a load over memoryLimitBytes before reading any tensor, with the figures', () => {
    const reads = vi.spyOn(SafetensorsFile.prototype, 'readFloat32');
    const progress = vi.fn();
    const estimates = vi.fn();
    const total = PARAMS * 4 + LARGEST * 6;
    const load = (limit: number) =>
      HookedTransformer.load(bf16Dir, {
        memoryLimitBytes: limit,
        onProgress: progress,
        onEstimate: estimates,
      });
    expect(() => load(total - 1)).toThrow(MemoryError);
    expect(() => load(total - 1)).toThrow(/188,352 bytes of memory.*over the limit of 188,351 bytes/);
    let message = '';
    try {
      load(100_000);
    } catch (e) {
      message = (e as Error).message;
    }
    expect(message).toContain(`model folder '${bf16Dir}'`);
    expect(message).toContain(
      'needs 188 KB of memory to load, over the limit of 100 KB set by memoryLimitBytes',
    );
    expect(message).toContain('40.2K parameters, stored as 80.4 KB of BF16, which Sonde holds as float32');
    expect(message).toContain(
      'as float32: 161 KB of weights plus 27.6 KB while the largest tensor is converted',
    );
    expect(message).toMatch(/smaller model, free some memory, .*raise memoryLimitBytes/);
    expect(progress).not.toHaveBeenCalled();
    expect(reads).not.toHaveBeenCalled();
    expect(estimates).toHaveBeenCalledWith(expect.objectContaining({ totalBytes: total }), {
      bytes: 100_000,
      source: 'memoryLimitBytes',
    });
    // At the estimate it loads.
    expect(load(total).cfg.nLayers).toBe(2);
  });

  it('refuses with the available memory named, suggesting SONDE_MAX_MEMORY', () => {
    const est = estimateLoadMemory(bf16Dir, loadModelDir(f32Dir).cfg);
    expect(() => checkLoadMemory('/m', est, { bytes: 50_000, source: 'MemAvailable' })).toThrow(
      /needs 188 KB of memory to load, but only 50.0 KB is available \(MemAvailable in \/proc\/meminfo\).*raise the limit with SONDE_MAX_MEMORY=188352$/,
    );
    const huge = {
      ...est,
      largestTensor: {
        name: 'lm_head.weight',
        dtype: 'BF16' as const,
        shape: [2 ** 20, 2 ** 12 + 1],
        elements: 2 ** 32 + 2 ** 20,
      },
    };
    expect(() => checkLoadMemory('/m', huge, { bytes: Infinity, source: 'memoryLimitBytes' })).toThrow(
      new RegExp(
        `tensor 'lm_head.weight' \\[1048576, 4097\\] has 4296015872 elements, more than the ${MAX_TYPED_ARRAY_LENGTH}`,
      ),
    );
  });
});

describe('SONDE_MAX_MEMORY', () => {
  it('parses bytes and sizes with units', () => {
    expect(parseMemorySize('8GB')).toBe(8e9);
    expect(parseMemorySize('512MB')).toBe(512e6);
    expect(parseMemorySize('123456')).toBe(123456);
    expect(parseMemorySize(' 16 gb ')).toBe(16e9);
    expect(parseMemorySize('1.5GiB')).toBe(1.5 * 2 ** 30);
    expect(parseMemorySize('64k')).toBe(64e3);
    expect(parseMemorySize('2TiB')).toBe(2 * 2 ** 40);
    expect(parseMemorySize('unlimited')).toBe(Infinity);
  });

  it('rejects what is not a size, naming the variable', () => {
    for (const bad of ['8 gigs', 'GB', '-1GB', '1e9', '0', '', 'lots']) {
      expect(() => parseMemorySize(bad), bad).toThrow(UsageError);
      expect(() => parseMemorySize(bad), bad).toThrow(/SONDE_MAX_MEMORY=/);
    }
  });

  it('sets the limit of a load unless memoryLimitBytes is given', () => {
    process.env.SONDE_MAX_MEMORY = '100KB';
    expect(resolveMemoryLimit()).toEqual({ bytes: 100e3, source: 'SONDE_MAX_MEMORY' });
    expect(() => HookedTransformer.load(bf16Dir)).toThrow(
      /over the limit of 100 KB set by SONDE_MAX_MEMORY.*raise the limit with SONDE_MAX_MEMORY=188352$/,
    );
    expect(HookedTransformer.load(bf16Dir, { memoryLimitBytes: 1e9 }).cfg.nLayers).toBe(2);
    process.env.SONDE_MAX_MEMORY = '1GB';
    expect(HookedTransformer.load(bf16Dir).cfg.nLayers).toBe(2);
    process.env.SONDE_MAX_MEMORY = 'lots';
    expect(() => HookedTransformer.load(bf16Dir)).toThrow(
      "SONDE_MAX_MEMORY='lots' is not a memory size; expected bytes or a number with a unit",
    );
    process.env.SONDE_MAX_MEMORY = '';
    expect(resolveMemoryLimit().source).not.toBe('SONDE_MAX_MEMORY');
  });
});

describe('progress', () => {
  it('reports every tensor once and ends at bytesTotal', () => {
    const events: LoadProgress[] = [];
    let est: MemoryEstimate | null = null;
    HookedTransformer.load(bf16Dir, {
      onEstimate: (e) => (est = e),
      onProgress: (p) => events.push({ ...p }),
    });
    const names = SafetensorsCheckpoint.open(bf16Dir).names();
    expect(events.length).toBe(names.length);
    expect(new Set(events.map((e) => e.name))).toEqual(new Set(names));
    events.forEach((e, i) => {
      expect(e.tensorsDone).toBe(i + 1);
      expect(e.tensorsTotal).toBe(21);
      if (i > 0) expect(e.bytesDone).toBeGreaterThan(events[i - 1]!.bytesDone);
    });
    expect(events.at(-1)).toMatchObject({ bytesDone: PARAMS * 2, bytesTotal: PARAMS * 2 });
    expect((est as MemoryEstimate | null)?.checkpointBytes).toBe(PARAMS * 2); // a progress bar's total
  });

  it('closes with a null-named event when some tensors go unread', () => {
    const withExtra = new Map(rounded);
    withExtra.set('model.layers.0.self_attn.rotary_emb.inv_freq', { shape: [4], data: new Float32Array(4) });
    const dir = writeSharded('extra', withExtra, 'BF16', 2);
    const events: LoadProgress[] = [];
    HookedTransformer.load(dir, { onProgress: (p) => events.push({ ...p }) });
    expect(events.length).toBe(22);
    expect(events.at(-2)).toMatchObject({ tensorsDone: 21, tensorsTotal: 22 });
    expect(events.at(-1)).toEqual({
      tensorsDone: 22,
      tensorsTotal: 22,
      bytesDone: PARAMS * 2 + 8,
      bytesTotal: PARAMS * 2 + 8,
      name: null,
    });
  });
});

describe('broken shards', () => {
  const shard2 = (dir: string) => path.join(dir, 'model-00002-of-00003.safetensors');
  const copy = () => {
    const dir = fs.mkdtempSync(path.join(tmpRoot, 'broken-'));
    for (const f of fs.readdirSync(bf16Dir)) fs.copyFileSync(path.join(bf16Dir, f), path.join(dir, f));
    return dir;
  };

  it('a truncated shard gives a SafetensorsError naming it', () => {
    const dir = copy();
    fs.truncateSync(shard2(dir), fs.statSync(shard2(dir)).size - 10);
    expect(() => HookedTransformer.load(dir)).toThrow(SafetensorsError);
    expect(() => HookedTransformer.load(dir)).toThrow(/model-00002-of-00003\.safetensors.*truncated/);
  });

  it('a shard truncated after its header was read gives a SafetensorsError too', () => {
    const dir = copy();
    let err: unknown;
    try {
      HookedTransformer.load(dir, {
        onEstimate: () => fs.truncateSync(shard2(dir), fs.statSync(shard2(dir)).size - 10),
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SafetensorsError);
    expect((err as Error).message).toMatch(
      /model-00002-of-00003\.safetensors: unexpected end of file while reading tensor .*truncated after it was opened/,
    );
  });

  // Only where the limit is 2^32 (Node 20); later engines allow arrays too big to fake with a sparse file.
  it.skipIf(MAX_TYPED_ARRAY_LENGTH > 2 ** 33)(
    'a tensor over the typed-array limit is refused by name before anything is read',
    () => {
      // A sparse file: the header claims a BF16 embedding of 2^32 + 16 elements, the data is a hole.
      const dir = fs.mkdtempSync(path.join(tmpRoot, 'huge-'));
      fs.copyFileSync(path.join(FIXTURES, 'llama-tiny', 'config.json'), path.join(dir, 'config.json'));
      const elements = MAX_TYPED_ARRAY_LENGTH + 16;
      const header = JSON.stringify({
        'model.embed_tokens.weight': {
          dtype: 'BF16',
          shape: [elements / 16, 16],
          data_offsets: [0, elements * 2],
        },
      }).padEnd(128, ' ');
      const file = path.join(dir, 'model.safetensors');
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(header.length));
      fs.writeFileSync(file, Buffer.concat([len, Buffer.from(header)]));
      fs.truncateSync(file, 8 + header.length + elements * 2);
      const reads = vi.spyOn(SafetensorsFile.prototype, 'readFloat32');
      expect(() => HookedTransformer.load(dir)).toThrow(MemoryError);
      expect(() => HookedTransformer.load(dir)).toThrow(
        /tensor 'model\.embed_tokens\.weight' \[268435457, 16\] has 4294967312 elements, more than the 4294967296 one JavaScript typed array can hold/,
      );
      expect(reads).not.toHaveBeenCalled();
      reads.mockRestore();
      const f = SafetensorsFile.open(file);
      expect(() => f.readFloat32('model.embed_tokens.weight')).toThrow(/4294967312 elements, more than/);
      f.close();
    },
  );
});

describe('available memory', () => {
  const tree = (files: Record<string, string>) => {
    const root = fs.mkdtempSync(path.join(tmpRoot, 'probe-'));
    for (const [p, text] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
      fs.writeFileSync(path.join(root, p), text);
    }
    return root;
  };
  const meminfo = 'MemTotal:       32000000 kB\nMemFree:         1000000 kB\nMemAvailable:    8000000 kB\n';

  it('is MemAvailable without a cgroup limit', () => {
    const root = tree({
      'proc/meminfo': meminfo,
      'proc/self/cgroup': '0::/\n',
      'sys/fs/cgroup/memory.max': 'max\n',
    });
    expect(memoryAvailability({ root, platform: 'linux' })).toEqual({
      bytes: 8000000 * 1024,
      source: 'MemAvailable',
    });
  });

  it('is the cgroup v2 limit less unreclaimable usage when that is smaller, here or above', () => {
    const root = tree({
      'proc/meminfo': meminfo,
      'proc/self/cgroup': '0::/app.slice/job\n',
      'sys/fs/cgroup/app.slice/job/memory.max': '2000000000\n',
      'sys/fs/cgroup/app.slice/job/memory.current': '500000000\n',
      'sys/fs/cgroup/app.slice/job/memory.stat': 'anon 400000000\ninactive_file 100000000\n',
      'sys/fs/cgroup/app.slice/memory.max': 'max\n',
    });
    expect(memoryAvailability({ root, platform: 'linux' })).toEqual({ bytes: 1.6e9, source: 'cgroup' });
    fs.writeFileSync(path.join(root, 'sys/fs/cgroup/app.slice/memory.max'), '1000000000\n');
    fs.writeFileSync(path.join(root, 'sys/fs/cgroup/app.slice/memory.current'), '700000000\n');
    expect(availableMemory({ root, platform: 'linux' })).toBe(3e8);
  });

  it('reads cgroup v1 limits (and ignores the "no limit" value)', () => {
    const root = tree({
      'proc/meminfo': meminfo,
      'proc/self/cgroup': '4:memory:/docker/abc\n0::/\n',
      'sys/fs/cgroup/memory/memory.limit_in_bytes': '3000000000\n',
      'sys/fs/cgroup/memory/memory.usage_in_bytes': '1200000000\n',
      'sys/fs/cgroup/memory/memory.stat': 'cache 300000000\ntotal_inactive_file 200000000\n',
    });
    expect(memoryAvailability({ root, platform: 'linux' })).toEqual({ bytes: 2e9, source: 'cgroup' });
    fs.writeFileSync(path.join(root, 'sys/fs/cgroup/memory/memory.limit_in_bytes'), '9223372036854771712\n');
    expect(memoryAvailability({ root, platform: 'linux' }).source).toBe('MemAvailable');
  });

  it('is os.freemem() elsewhere, and positive here', () => {
    expect(memoryAvailability({ platform: 'darwin' }).source).toBe('os.freemem');
    expect(availableMemory()).toBeGreaterThan(0);
    expect(availableMemory()).toBeLessThanOrEqual(os.totalmem());
  });
});
