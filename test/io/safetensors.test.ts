import { describe, it, expect, beforeEach, afterEach } from 'vitest';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsError } from '../../src/errors.js';
import {
  SafetensorsCheckpoint,
  SafetensorsFile,
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  writeSafetensors,
} from '../../src/io/safetensors.js';

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-st-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Builds a safetensors file by hand: header given as an object or raw string, then the data bytes. */
function rawFile(name: string, header: unknown, data: Uint8Array = new Uint8Array(0)): string {
  const text = typeof header === 'string' ? header : JSON.stringify(header);
  const h = Buffer.from(text, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  const p = path.join(dir, name);
  fs.writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}

/** Bits of float32 values, for exact comparisons (NaN included). */
const bits32 = (x: Float32Array): number[] => [...new Uint32Array(x.buffer, x.byteOffset, x.length)];
const f16 = (...xs: number[]): number[] => [...float32ToFloat16(new Float32Array(xs))];
const bf16 = (...xs: number[]): number[] => [...float32ToBfloat16(new Float32Array(xs))];

/** Asserts `fn` throws a SafetensorsError whose message contains every `parts` entry. */
function expectError(fn: () => unknown, ...parts: (string | RegExp)[]): SafetensorsError {
  let caught: unknown;
  try {
    fn();
  } catch (err) {
    caught = err;
  }
  expect(caught).toBeInstanceOf(SafetensorsError);
  const msg = (caught as Error).message;
  for (const p of parts) {
    if (typeof p === 'string') expect(msg).toContain(p);
    else expect(msg).toMatch(p);
  }
  return caught as SafetensorsError;
}

describe('float16 / bfloat16 conversions', () => {
  it('encodes known float16 bit patterns with round-to-nearest-even', () => {
    expect(f16(1, -2, 0, -0, 0.5, 0.1)).toEqual([0x3c00, 0xc000, 0x0000, 0x8000, 0x3800, 0x2e66]);
    expect(f16(65504, -65504)).toEqual([0x7bff, 0xfbff]); // max half
    expect(f16(65519.99, 65520, 1e6, -1e6)).toEqual([0x7bff, 0x7c00, 0x7c00, 0xfc00]); // 65520 ties up to Inf
    expect(f16(Infinity, -Infinity)).toEqual([0x7c00, 0xfc00]);
    const nan = f16(NaN)[0]!;
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x03ff).not.toBe(0);
    // ties: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 -> even (1); 1 + 3*2^-11 -> 1 + 2^-9 (even)
    expect(f16(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20)).toEqual([0x3c00, 0x3c02, 0x3c01]);
    // mantissa carry into the exponent: 2 - 2^-12 rounds to 2
    expect(f16(2 - 2 ** -12)).toEqual([0x4000]);
    // subnormals: smallest 2^-24, largest (1023 * 2^-24), smallest normal 2^-14
    expect(f16(2 ** -24, 1023 * 2 ** -24, 2 ** -14, -(2 ** -24))).toEqual([0x0001, 0x03ff, 0x0400, 0x8001]);
    // 2^-25 is a tie between 0 and 2^-24 -> 0 (even); just above rounds up; 3 * 2^-25 ties to 2 * 2^-24
    expect(f16(2 ** -25, 2 ** -25 * 1.0001, 3 * 2 ** -25, 2 ** -26)).toEqual([
      0x0000, 0x0001, 0x0002, 0x0000,
    ]);
    // largest subnormal + half ulp ties to even -> smallest normal
    expect(f16(1023.5 * 2 ** -24)).toEqual([0x0400]);
    // float32 subnormals round to signed zero
    expect(f16(1e-45, -1e-45)).toEqual([0x0000, 0x8000]);
  });

  it('decodes known float16 bit patterns exactly', () => {
    const out = float16ToFloat32(
      new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x0400, 0x3555, 0x8000]),
    );
    expect([...out]).toEqual([1, -2, 65504, 2 ** -24, 1023 * 2 ** -24, 2 ** -14, 0.333251953125, -0]);
    expect(Object.is(out[7], -0)).toBe(true);
    const special = float16ToFloat32(new Uint16Array([0x7c00, 0xfc00, 0x7e00, 0xfc01]));
    expect(special[0]).toBe(Infinity);
    expect(special[1]).toBe(-Infinity);
    expect(Number.isNaN(special[2])).toBe(true);
    expect(Number.isNaN(special[3])).toBe(true);
  });

  it('round-trips every finite float16 value exactly', () => {
    const all = new Uint16Array(65536).map((_, i) => i);
    const back = float32ToFloat16(float16ToFloat32(all));
    for (let i = 0; i < 65536; i++) {
      const isNaN16 = (i & 0x7c00) === 0x7c00 && (i & 0x3ff) !== 0;
      if (!isNaN16 && back[i] !== i) throw new Error(`0x${i.toString(16)} -> 0x${back[i]!.toString(16)}`);
    }
  });

  it('encodes known bfloat16 bit patterns with round-to-nearest-even', () => {
    expect(bf16(1, -2, 0, -0, Math.PI, 0.1)).toEqual([0x3f80, 0xc000, 0x0000, 0x8000, 0x4049, 0x3dcd]);
    // ties: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 -> 1; 1 + 3 * 2^-8 -> 1 + 2^-6 (even)
    expect(bf16(1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20)).toEqual([0x3f80, 0x3f82, 0x3f81]);
    expect(bf16(Infinity, -Infinity, 3.4028234663852886e38)).toEqual([0x7f80, 0xff80, 0x7f80]);
    const nan = bf16(NaN)[0]!;
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
    // a NaN whose payload is only in the low 16 bits must stay NaN, not become Inf
    const lowPayloadNaN = new Float32Array(new Uint32Array([0x7f800001]).buffer);
    expect(float32ToBfloat16(lowPayloadNaN)[0]! & 0x7f).not.toBe(0);
    // float32 subnormals keep their high bits: 2^-133 has bits 0x00010000 -> 0x0001
    expect(bf16(2 ** -133)).toEqual([0x0001]);
  });

  it('decodes bfloat16 as the high half of float32', () => {
    const out = bfloat16ToFloat32(new Uint16Array([0x3f80, 0xc000, 0x4049, 0x7f80, 0x0001]));
    expect(bits32(out)).toEqual([0x3f800000, 0xc0000000, 0x40490000, 0x7f800000, 0x00010000]);
  });
});

describe('writeSafetensors + SafetensorsFile round trip', () => {
  it('writes and reads F32/F16/BF16/I32/I64 with known values', () => {
    const p = path.join(dir, 'rt.safetensors');
    const floats = new Float32Array([
      1,
      -2,
      65504,
      65520,
      2 ** -24,
      2 ** -25,
      NaN,
      Infinity,
      1 + 2 ** -11,
      0.1,
    ]);
    writeSafetensors(
      p,
      {
        'b.f32': { dtype: 'F32', shape: [2, 5], data: floats },
        'a.f16': { dtype: 'F16', shape: [10], data: floats },
        'c.bf16': { dtype: 'BF16', shape: [5, 2], data: floats },
        'd.i32': { dtype: 'I32', shape: [4], data: new Int32Array([0, -1, 2147483647, -2147483648]) },
        'e.i64': { dtype: 'I64', shape: [3], data: new BigInt64Array([0n, -5n, 2147483647n]) },
        'f.i64w': { dtype: 'I64', shape: [2], data: new Int32Array([-2147483648, 7]) },
        'g.empty': { dtype: 'F32', shape: [3, 0], data: new Float32Array(0) },
        'h.scalar': { dtype: 'F32', shape: [], data: new Float32Array([42]) },
      },
      { format: 'pt', note: 'hé "quoted"' },
    );
    const f = SafetensorsFile.open(p);
    try {
      expect(f.names()).toEqual([
        'a.f16',
        'b.f32',
        'c.bf16',
        'd.i32',
        'e.i64',
        'f.i64w',
        'g.empty',
        'h.scalar',
      ]);
      expect(f.metadata).toEqual({ format: 'pt', note: 'hé "quoted"' });
      expect(bits32(f.readFloat32('b.f32'))).toEqual(bits32(floats));
      const half = f.readFloat32('a.f16');
      expect([...half.slice(0, 6)]).toEqual([1, -2, 65504, Infinity, 2 ** -24, 0]);
      expect(Number.isNaN(half[6])).toBe(true);
      expect([...half.slice(7)]).toEqual([Infinity, 1, 0.0999755859375]);
      const b = f.readFloat32('c.bf16');
      expect(bits32(b.slice(0, 6))).toEqual([
        0x3f800000, 0xc0000000, 0x47800000, 0x47800000, 0x33800000, 0x33000000,
      ]);
      expect(Number.isNaN(b[6])).toBe(true);
      expect([...b.slice(7)]).toEqual([Infinity, 1, 0.10009765625]);
      expect([...f.readInt32('d.i32')]).toEqual([0, -1, 2147483647, -2147483648]);
      expect([...f.readInt32('e.i64')]).toEqual([0, -5, 2147483647]);
      expect([...f.readInt32('f.i64w')]).toEqual([-2147483648, 7]);
      expect(f.readFloat32('g.empty').length).toBe(0);
      expect(f.info('g.empty')).toMatchObject({ shape: [3, 0], byteLength: 0 });
      expect([...f.readFloat32('h.scalar')]).toEqual([42]);
      expect(f.info('h.scalar').shape).toEqual([]);
      expect(f.info('b.f32')).toEqual({
        name: 'b.f32',
        dtype: 'F32',
        shape: [2, 5],
        byteOffset: f.info('a.f16').byteOffset + 20,
        byteLength: 40,
        file: p,
      });
    } finally {
      f.close();
    }
  });

  it('lays out tensors in sorted order with a space-padded header of a multiple of 8 bytes', () => {
    const p = path.join(dir, 'layout.safetensors');
    writeSafetensors(p, {
      zz: { dtype: 'I32', shape: [1], data: new Int32Array([3]) },
      aa: { dtype: 'I32', shape: [1], data: new Int32Array([1]) },
      mm: { dtype: 'I32', shape: [1], data: new Int32Array([2]) },
    });
    const bytes = fs.readFileSync(p);
    const n = Number(bytes.readBigUInt64LE(0));
    expect(n % 8).toBe(0);
    const header = bytes.subarray(8, 8 + n).toString('utf8');
    expect(header).toMatch(/^\{.*\} *$/);
    const parsed = JSON.parse(header);
    expect(parsed.aa.data_offsets).toEqual([0, 4]);
    expect(parsed.mm.data_offsets).toEqual([4, 8]);
    expect(parsed.zz.data_offsets).toEqual([8, 12]);
    expect(parsed).not.toHaveProperty('__metadata__');
    expect([...new Int32Array(new Uint8Array(bytes.subarray(8 + n)).buffer)]).toEqual([1, 2, 3]);
    expect(bytes.length).toBe(8 + n + 12);
  });

  it('handles tensor names that look special in JS', () => {
    const p = path.join(dir, 'names.safetensors');
    const names = ['__proto__', 'constructor', '0', '10', '2', 'ünï', ''];
    const tensors = Object.fromEntries(
      names.map((n, i) => [n, { dtype: 'I32' as const, shape: [1], data: new Int32Array([i]) }]),
    );
    writeSafetensors(p, tensors);
    const f = SafetensorsFile.open(p);
    expect(f.names()).toEqual([...names].sort());
    names.forEach((n, i) => expect([...f.readInt32(n)]).toEqual([i]));
    expect(f.has('toString')).toBe(false);
    f.close();
  });

  it('reads F64, I16, I8, U8 and BOOL tensors written by other tools', () => {
    const data = Buffer.alloc(8 * 2 + 2 * 2 + 2 + 2 + 3);
    data.writeDoubleLE(1.5, 0);
    data.writeDoubleLE(-1e300, 8);
    data.writeInt16LE(-300, 16);
    data.writeInt16LE(300, 18);
    data.writeInt8(-7, 20);
    data.writeInt8(7, 21);
    data.writeUInt8(200, 22);
    data.writeUInt8(1, 23);
    data.set([0, 1, 2], 24);
    const p = rawFile(
      'others.safetensors',
      {
        f64: { dtype: 'F64', shape: [2], data_offsets: [0, 16] },
        i16: { dtype: 'I16', shape: [2], data_offsets: [16, 20] },
        i8: { dtype: 'I8', shape: [2], data_offsets: [20, 22] },
        u8: { dtype: 'U8', shape: [2], data_offsets: [22, 24] },
        bool: { dtype: 'BOOL', shape: [3], data_offsets: [24, 27] },
      },
      data,
    );
    const f = SafetensorsFile.open(p);
    expect([...f.readFloat32('f64')]).toEqual([1.5, -Infinity]);
    expect([...f.readInt32('i16')]).toEqual([-300, 300]);
    expect([...f.readInt32('i8')]).toEqual([-7, 7]);
    expect([...f.readInt32('u8')]).toEqual([200, 1]);
    expect([...f.readInt32('bool')]).toEqual([0, 1, 1]);
    f.close();
  });

  it('rejects I64 values outside int32 and reads with the wrong method', () => {
    const p = path.join(dir, 'i64.safetensors');
    writeSafetensors(p, {
      big: { dtype: 'I64', shape: [3], data: new BigInt64Array([1n, 2147483648n, 3n]) },
      neg: { dtype: 'I64', shape: [1], data: new BigInt64Array([-2147483649n]) },
      w: { dtype: 'F32', shape: [1], data: new Float32Array([1]) },
    });
    const f = SafetensorsFile.open(p);
    expectError(() => f.readInt32('big'), p, '"big"', '2147483648', 'index 1', 'int32');
    expectError(() => f.readInt32('neg'), p, '"neg"', '-2147483649');
    expectError(() => f.readFloat32('big'), p, '"big"', 'I64', 'readInt32');
    expectError(() => f.readInt32('w'), p, '"w"', 'F32', 'readFloat32');
    expectError(() => f.info('nope'), p, '"nope"', 'no such tensor');
    expectError(() => f.readFloat32('nope'), p, '"nope"');
    f.close();
    f.close();
    expectError(() => f.readFloat32('w'), p, '"w"', 'closed');
  });

  it('reads tensors that sit beyond 4 GiB in a sparse file', () => {
    const big = 2 ** 32 + 24;
    const header = JSON.stringify({
      pad: { dtype: 'U8', shape: [big], data_offsets: [0, big] },
      tail: { dtype: 'F32', shape: [3], data_offsets: [big, big + 12] },
    });
    const h = Buffer.from(header);
    const p = path.join(dir, 'sparse.safetensors');
    const fd = fs.openSync(p, 'w');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    fs.writeSync(fd, len, 0, 8, 0);
    fs.writeSync(fd, h, 0, h.length, 8);
    const tail = new Float32Array([1.25, -3, 7e10]);
    fs.writeSync(fd, new Uint8Array(tail.buffer), 0, 12, 8 + h.length + big);
    fs.closeSync(fd);
    const f = SafetensorsFile.open(p);
    expect(f.info('tail').byteOffset).toBe(8 + h.length + big);
    expect([...f.readFloat32('tail')]).toEqual([...tail]);
    f.close();
  });
});

const sharedModel = path.resolve(process.cwd(), '../shared/models/stories260K/model.safetensors');
const assetModel = path.resolve(process.cwd(), 'assets/stories260K/model.safetensors');

describe.each([
  { label: 'shared', file: sharedModel },
  { label: 'assets', file: assetModel },
])('stories260K model.safetensors ($label)', ({ file }) => {
  it.skipIf(!fs.existsSync(file))('has 47 tensors and values matching an independent decode', () => {
    const f = SafetensorsFile.open(file);
    try {
      const names = f.names();
      expect(names).toHaveLength(47);
      expect(names).toContain('model.norm.weight');
      expect(names).toContain('model.layers.4.mlp.up_proj.weight');
      expect(f.metadata.format).toBe('pt');
      const emb = f.info('model.embed_tokens.weight');
      expect(emb).toMatchObject({ dtype: 'F32', shape: [512, 64], byteLength: 512 * 64 * 4 });

      // Independent decode: parse the header ourselves and view the raw bytes as float32.
      const raw = fs.readFileSync(file);
      const n = Number(raw.readBigUInt64LE(0));
      const header = JSON.parse(raw.subarray(8, 8 + n).toString('utf8'));
      for (const name of [
        'model.embed_tokens.weight',
        'model.layers.2.self_attn.k_proj.weight',
        'model.norm.weight',
      ]) {
        const [start, end] = header[name].data_offsets as [number, number];
        const slice = new Uint8Array(raw.subarray(8 + n + start, 8 + n + end));
        const expected = new Float32Array(slice.buffer);
        const got = f.readFloat32(name);
        expect(got.length).toBe(expected.length);
        expect(bits32(got)).toEqual(bits32(expected));
        expect(f.info(name).shape).toEqual(header[name].shape);
      }
      // Spot values read straight from the file with a DataView.
      const view = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
      const embVals = f.readFloat32('model.embed_tokens.weight');
      for (const i of [0, 1, 63, 64, 12345, 32767]) {
        expect(embVals[i]).toBe(view.getFloat32(8 + n + i * 4, true));
      }
      expect(embVals.some((v) => v !== 0)).toBe(true);
    } finally {
      f.close();
    }
  });
});

describe('SafetensorsCheckpoint', () => {
  function shards(): string {
    const ck = path.join(dir, 'ck');
    fs.mkdirSync(ck);
    writeSafetensors(path.join(ck, 'model-00001-of-00002.safetensors'), {
      a: { dtype: 'F32', shape: [2], data: new Float32Array([1, 2]) },
      b: { dtype: 'F16', shape: [1], data: new Float32Array([0.5]) },
    });
    writeSafetensors(path.join(ck, 'model-00002-of-00002.safetensors'), {
      c: { dtype: 'BF16', shape: [2], data: new Float32Array([3, -4]) },
      d: { dtype: 'I32', shape: [1], data: new Int32Array([9]) },
    });
    return ck;
  }
  function writeIndex(ck: string, weightMap: unknown, name = 'model.safetensors.index.json'): string {
    const p = path.join(ck, name);
    fs.writeFileSync(p, JSON.stringify({ metadata: { total_size: 18 }, weight_map: weightMap }));
    return p;
  }
  const goodMap = {
    a: 'model-00001-of-00002.safetensors',
    b: 'model-00001-of-00002.safetensors',
    c: 'model-00002-of-00002.safetensors',
    d: 'model-00002-of-00002.safetensors',
  };

  it('reads a sharded checkpoint through index.json', () => {
    const ck = shards();
    writeIndex(ck, goodMap);
    const c = SafetensorsCheckpoint.open(ck);
    try {
      expect(c.names()).toEqual(['a', 'b', 'c', 'd']);
      expect(c.has('c')).toBe(true);
      expect(c.has('e')).toBe(false);
      expect([...c.readFloat32('a')]).toEqual([1, 2]);
      expect([...c.readFloat32('b')]).toEqual([0.5]);
      expect([...c.readFloat32('c')]).toEqual([3, -4]);
      expect([...c.readInt32('d')]).toEqual([9]);
      expect(c.info('c').file).toBe(path.join(ck, 'model-00002-of-00002.safetensors'));
      expectError(() => c.readFloat32('e'), ck, '"e"', 'no such tensor');
    } finally {
      c.close();
    }
  });

  it('opens a folder with a single model.safetensors, or any *.safetensors, or a file path', () => {
    const single = path.join(dir, 'single');
    fs.mkdirSync(single);
    writeSafetensors(path.join(single, 'model.safetensors'), {
      w: { dtype: 'F32', shape: [1], data: new Float32Array([5]) },
    });
    writeSafetensors(path.join(single, 'other.safetensors'), {
      w: { dtype: 'F32', shape: [1], data: new Float32Array([6]) },
    });
    let c = SafetensorsCheckpoint.open(single); // model.safetensors wins
    expect([...c.readFloat32('w')]).toEqual([5]);
    c.close();

    const ck = shards(); // no index: all *.safetensors
    c = SafetensorsCheckpoint.open(ck);
    expect(c.names()).toEqual(['a', 'b', 'c', 'd']);
    c.close();

    c = SafetensorsCheckpoint.open(path.join(ck, 'model-00002-of-00002.safetensors'));
    expect(c.names()).toEqual(['c', 'd']);
    c.close();

    if (fs.existsSync(assetModel)) {
      c = SafetensorsCheckpoint.open(path.dirname(assetModel));
      expect(c.names()).toHaveLength(47);
      expect(c.info('model.embed_tokens.weight').shape).toEqual([512, 64]);
      c.close();
    }
  });

  it('rejects an index naming a missing shard', () => {
    const ck = shards();
    const idx = writeIndex(ck, { ...goodMap, d: 'model-00003-of-00003.safetensors' });
    expectError(
      () => SafetensorsCheckpoint.open(ck),
      idx,
      '"d"',
      'model-00003-of-00003.safetensors',
      'not exist',
    );
  });

  it('rejects an index naming a shard that lacks the tensor', () => {
    const ck = shards();
    const idx = writeIndex(ck, { ...goodMap, e: 'model-00001-of-00002.safetensors' });
    expectError(
      () => SafetensorsCheckpoint.open(ck),
      idx,
      '"e"',
      'model-00001-of-00002.safetensors',
      'does not',
    );
  });

  it('rejects a tensor that appears in two shards', () => {
    const ck = shards();
    writeSafetensors(path.join(ck, 'model-00002-of-00002.safetensors'), {
      a: { dtype: 'F32', shape: [1], data: new Float32Array([7]) },
      c: { dtype: 'BF16', shape: [2], data: new Float32Array([3, -4]) },
      d: { dtype: 'I32', shape: [1], data: new Int32Array([9]) },
    });
    const idx = writeIndex(ck, goodMap);
    expectError(() => SafetensorsCheckpoint.open(ck), idx, '"a"', 'both', 'model-00001', 'model-00002');
    fs.rmSync(idx);
    expectError(() => SafetensorsCheckpoint.open(ck), ck, '"a"', 'both');
  });

  it('rejects malformed indexes and empty folders', () => {
    const ck = shards();
    const idx = writeIndex(ck, { ...goodMap });
    fs.writeFileSync(idx, '{"weight_map": ');
    expectError(() => SafetensorsCheckpoint.open(ck), idx, 'not valid JSON');
    fs.writeFileSync(idx, '{"weight_map": []}');
    expectError(() => SafetensorsCheckpoint.open(ck), idx, 'weight_map');
    writeIndex(ck, { ...goodMap, a: 5 });
    expectError(() => SafetensorsCheckpoint.open(ck), idx, '"a"', 'expected a shard file name');
    writeIndex(ck, { ...goodMap, a: '../escape.safetensors' });
    expectError(() => SafetensorsCheckpoint.open(ck), idx, '"a"', 'outside');
    writeIndex(ck, { a: 'model-00001-of-00002.safetensors' });
    expectError(() => SafetensorsCheckpoint.open(ck), idx, '"b"', 'does not list');
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty);
    expectError(() => SafetensorsCheckpoint.open(empty), empty, 'no model.safetensors');
    expectError(() => SafetensorsCheckpoint.open(path.join(dir, 'missing')), 'missing', 'cannot open');
  });

  it('rejects a corrupt shard with a message naming the shard', () => {
    const ck = shards();
    writeIndex(ck, goodMap);
    const shard = path.join(ck, 'model-00002-of-00002.safetensors');
    fs.truncateSync(shard, fs.statSync(shard).size - 1);
    expectError(() => SafetensorsCheckpoint.open(ck), shard, '"d"', 'past the end');
  });
});

describe('header validation', () => {
  const f32 = (offsets: [number, number], shape: number[] = [1]) => ({
    dtype: 'F32',
    shape,
    data_offsets: offsets,
  });

  it('rejects files shorter than 8 bytes', () => {
    for (const size of [0, 5, 7]) {
      const p = path.join(dir, `short${size}.safetensors`);
      fs.writeFileSync(p, Buffer.alloc(size));
      expectError(() => SafetensorsFile.open(p), p, `${size} bytes`, 'at least');
    }
  });

  it('rejects a header length of 0, past the end, or over the cap', () => {
    const zero = path.join(dir, 'zero.safetensors');
    fs.writeFileSync(zero, Buffer.alloc(16));
    expectError(() => SafetensorsFile.open(zero), zero, 'header length is 0');

    const past = path.join(dir, 'past.safetensors');
    const b = Buffer.alloc(20);
    b.writeBigUInt64LE(13n);
    fs.writeFileSync(past, b);
    expectError(() => SafetensorsFile.open(past), past, 'header length 13', '12 bytes');

    const huge = path.join(dir, 'huge.safetensors');
    b.writeBigUInt64LE(2n ** 64n - 1n);
    fs.writeFileSync(huge, b);
    expectError(() => SafetensorsFile.open(huge), huge, '18446744073709551615');

    // A sparse 100 MB+ file, so only the cap (not the file size) can reject it.
    const cap = path.join(dir, 'cap.safetensors');
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(100_000_001n);
    fs.writeFileSync(cap, len);
    fs.truncateSync(cap, 8 + 100_000_008);
    expectError(() => SafetensorsFile.open(cap), cap, '100000001', 'limit');
  });

  it('rejects headers that are not UTF-8 JSON objects', () => {
    const bad = (n: string, bytes: Buffer) => {
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(bytes.length));
      const p = path.join(dir, n);
      fs.writeFileSync(p, Buffer.concat([len, bytes]));
      return p;
    };
    const utf = bad('utf.safetensors', Buffer.from([0x7b, 0xff, 0xfe, 0x7d]));
    expectError(() => SafetensorsFile.open(utf), utf, 'UTF-8');
    const json = rawFile('json.safetensors', '{"a": ');
    expectError(() => SafetensorsFile.open(json), json, 'not valid JSON');
    for (const [i, text] of ['[1, 2]', 'null', '3', '"x"'].entries()) {
      const p = rawFile(`obj${i}.safetensors`, text);
      expectError(() => SafetensorsFile.open(p), p, 'expected a JSON object');
    }
  });

  it('accepts an empty header object and trailing padding', () => {
    const p = rawFile('empty.safetensors', '{}      ');
    const f = SafetensorsFile.open(p);
    expect(f.names()).toEqual([]);
    expect(f.metadata).toEqual({});
    f.close();
  });

  it('rejects bad tensor entries, naming file and tensor', () => {
    const cases: [string, unknown, ...string[]][] = [
      ['not-object', 5, 'expected an object'],
      ['array-entry', [1], 'expected an object'],
      ['no-dtype', { shape: [1], data_offsets: [0, 4] }, 'missing "dtype"', 'F32'],
      ['bad-dtype', { dtype: 'Q7', shape: [1], data_offsets: [0, 4] }, '"Q7"', 'expected one of'],
      ['lower-dtype', { dtype: 'f32', shape: [1], data_offsets: [0, 4] }, '"f32"'],
      ['num-dtype', { dtype: 3, shape: [1], data_offsets: [0, 4] }, 'unsupported dtype'],
      ['no-shape', { dtype: 'F32', data_offsets: [0, 4] }, '"shape"', 'array'],
      ['shape-string', { dtype: 'F32', shape: '1', data_offsets: [0, 4] }, '"shape"'],
      ['shape-neg', f32([0, 4], [-1]), '"shape"', '-1', 'non-negative'],
      ['shape-frac', f32([0, 4], [1.5]), '1.5'],
      ['shape-unsafe', f32([0, 4], [2 ** 53]), 'non-negative integers'],
      ['shape-null', f32([0, 4], [null as unknown as number]), 'null'],
      ['no-offsets', { dtype: 'F32', shape: [1] }, '"data_offsets"', 'two non-negative integers'],
      ['offsets-one', { dtype: 'F32', shape: [1], data_offsets: [0] }, '"data_offsets"'],
      ['offsets-three', { dtype: 'F32', shape: [1], data_offsets: [0, 4, 8] }, '"data_offsets"'],
      ['offsets-neg', f32([-4, 0]), '"data_offsets"'],
      ['offsets-frac', f32([0.5, 4.5]), '"data_offsets"'],
      ['offsets-string', { dtype: 'F32', shape: [1], data_offsets: ['0', '4'] }, '"data_offsets"'],
      ['offsets-order', f32([4, 0]), 'start > end'],
      ['size-mismatch', f32([0, 12], [2, 2]), 'needs 16 bytes', 'span 12'],
      ['size-overflow', f32([0, 8], [2 ** 52, 2 ** 52]), 'needs 81129638414606681695789005144064 bytes'],
      ['past-end', f32([16, 20]), 'past the end', '16 bytes'],
    ];
    for (const [name, entry, ...parts] of cases) {
      const p = rawFile(`${name}.safetensors`, { ok: f32([0, 4]), [name]: entry }, new Uint8Array(16));
      expectError(() => SafetensorsFile.open(p), p, `"${name}"`, ...parts);
    }
  });

  it('rejects overlapping spans but allows gaps, empty spans and unsorted entries', () => {
    const data = new Uint8Array(32);
    const overlap = rawFile('overlap.safetensors', { x: f32([0, 8], [2]), y: f32([4, 8]) }, data);
    expectError(() => SafetensorsFile.open(overlap), overlap, '"y"', 'overlap', '"x"');
    const same = rawFile('same.safetensors', { x: f32([8, 12]), y: f32([8, 12]) }, data);
    expectError(() => SafetensorsFile.open(same), same, 'overlap');
    const inside = rawFile('inside.safetensors', { x: f32([0, 16], [4]), y: f32([4, 8]) }, data);
    expectError(() => SafetensorsFile.open(inside), inside, 'overlap');

    const ok = rawFile(
      'ok.safetensors',
      {
        z: f32([20, 24]),
        a: f32([0, 4]),
        e: f32([4, 4], [0]),
        e2: f32([4, 4], [5, 0]),
        e3: f32([22, 22], [0]),
      },
      data,
    );
    const f = SafetensorsFile.open(ok);
    expect(f.names()).toEqual(['a', 'e', 'e2', 'e3', 'z']);
    expect(f.readFloat32('e2').length).toBe(0);
    f.close();
  });

  it('rejects bad __metadata__', () => {
    const a = rawFile('meta1.safetensors', { __metadata__: { format: 1 } });
    expectError(() => SafetensorsFile.open(a), a, '__metadata__', '"format"', 'expected a string');
    const b = rawFile('meta2.safetensors', { __metadata__: ['x'] });
    expectError(() => SafetensorsFile.open(b), b, '__metadata__', 'expected an object');
    const c = rawFile('meta3.safetensors', { __metadata__: { __proto__x: 'ok', format: 'pt' } });
    expect(SafetensorsFile.open(c).metadata).toEqual({ __proto__x: 'ok', format: 'pt' });
  });

  it('rejects non-files and missing files', () => {
    expectError(() => SafetensorsFile.open(dir), dir, 'not a regular file');
    const missing = path.join(dir, 'nope.safetensors');
    expectError(() => SafetensorsFile.open(missing), missing, 'cannot open');
  });
});

describe('writeSafetensors errors and atomicity', () => {
  const target = () => path.join(dir, 'model.safetensors');
  const leftovers = () => fs.readdirSync(dir).filter((f) => f.includes('.tmp-'));
  function existing(): string {
    const p = target();
    fs.writeFileSync(p, 'original contents');
    return p;
  }

  it('rejects bad input before creating any file', () => {
    const p = existing();
    const cases: [Record<string, unknown>, ...string[]][] = [
      [{ w: { dtype: 'F32', shape: [-1], data: new Float32Array(0) } }, '"w"', 'shape'],
      [{ w: { dtype: 'F32', shape: [1.5], data: new Float32Array(1) } }, '"w"', 'shape'],
      [{ w: { dtype: 'U8', shape: [1], data: new Float32Array(1) } }, '"w"', 'dtype'],
      [{ w: { dtype: 'F32', shape: [1], data: new Int32Array(1) } }, '"w"', 'Float32Array', 'Int32Array'],
      [{ w: { dtype: 'I32', shape: [1], data: new Float32Array(1) } }, '"w"', 'Int32Array'],
      [{ w: { dtype: 'I64', shape: [1], data: [1] } }, '"w"', 'BigInt64Array'],
      [{ __metadata__: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }, 'reserved'],
      [{ w: null }, '"w"'],
    ];
    for (const [tensors, ...parts] of cases) {
      expectError(() => writeSafetensors(p, tensors as never), p, ...parts);
    }
    expectError(
      () => writeSafetensors(p, {}, { a: 1 } as unknown as Record<string, string>),
      p,
      'metadata',
      '"a"',
    );
    expect(fs.readFileSync(p, 'utf8')).toBe('original contents');
    expect(leftovers()).toEqual([]);
  });

  it('removes the temp file when the last tensor fails mid-write, leaving the target unchanged', () => {
    const p = existing();
    const ok = new Float32Array(1000).fill(1);
    expectError(
      () =>
        writeSafetensors(p, {
          a: { dtype: 'F32', shape: [1000], data: ok },
          b: { dtype: 'F16', shape: [1000], data: ok },
          z: { dtype: 'F32', shape: [10, 10], data: new Float32Array(99) },
        }),
      p,
      '"z"',
      '100 elements',
      'data has 99',
    );
    expect(fs.readFileSync(p, 'utf8')).toBe('original contents');
    expect(leftovers()).toEqual([]);
  });

  it('removes the temp file when the final rename fails', () => {
    const p = target();
    fs.mkdirSync(p);
    fs.writeFileSync(path.join(p, 'keep'), 'x');
    expectError(
      () => writeSafetensors(p, { a: { dtype: 'F32', shape: [1], data: new Float32Array(1) } }),
      p,
      'cannot write',
    );
    expect(fs.readFileSync(path.join(p, 'keep'), 'utf8')).toBe('x');
    expect(leftovers()).toEqual([]);
  });

  it('reports a missing folder', () => {
    const p = path.join(dir, 'no', 'such', 'model.safetensors');
    expectError(() => writeSafetensors(p, {}), p, 'cannot write');
  });

  it('replaces an existing file on success', () => {
    const p = existing();
    writeSafetensors(p, { a: { dtype: 'I32', shape: [2], data: new Int32Array([4, 5]) } });
    const f = SafetensorsFile.open(p);
    expect([...f.readInt32('a')]).toEqual([4, 5]);
    f.close();
    expect(leftovers()).toEqual([]);
  });
});
