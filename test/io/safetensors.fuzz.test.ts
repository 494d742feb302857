import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import fc from 'fast-check';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { SafetensorsError } from '../../src/errors.js';
import {
  SafetensorsFile,
  float16ToFloat32,
  bfloat16ToFloat32,
  writeSafetensors,
  type TensorToWrite,
} from '../../src/io/safetensors.js';

let dir: string;
let counter = 0;
beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-st-fuzz-'));
});
afterAll(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});
const fresh = (): string => path.join(dir, `f${counter++}.safetensors`);

/** Opens `p` and reads every tensor; returns 'ok' or 'rejected', and lets any non-SafetensorsError escape. */
function openAndReadAll(p: string): 'ok' | 'rejected' {
  let f: SafetensorsFile;
  try {
    f = SafetensorsFile.open(p);
  } catch (err) {
    if (err instanceof SafetensorsError) return 'rejected';
    throw err;
  }
  try {
    for (const name of f.names()) {
      const info = f.info(name);
      expect(info.byteOffset + info.byteLength).toBeLessThanOrEqual(fs.statSync(p).size);
      const isFloat = ['F64', 'F32', 'F16', 'BF16'].includes(info.dtype);
      const out = isFloat ? f.readFloat32(name) : f.readInt32(name);
      expect(out.length).toBe(info.shape.reduce((a, b) => a * b, 1));
    }
    return 'ok';
  } catch (err) {
    if (err instanceof SafetensorsError) return 'rejected';
    throw err;
  } finally {
    f.close();
  }
}

function fileWith(bytes: Uint8Array): string {
  const p = fresh();
  fs.writeFileSync(p, bytes);
  return p;
}

function withHeader(header: string, data: Uint8Array): Uint8Array {
  const h = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  return Buffer.concat([len, h, data]);
}

// ---- generators for valid tensors ----------------------------------------------------------------------

const dtypeArb = fc.constantFrom<TensorToWrite['dtype']>('F32', 'F16', 'BF16', 'I32', 'I64');
const shapeArb = fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 });

/** A tensor whose values are exactly representable in its dtype, so the round trip must be exact. */
const tensorArb: fc.Arbitrary<TensorToWrite> = fc
  .tuple(dtypeArb, shapeArb)
  .chain<TensorToWrite>(([dtype, shape]) => {
    const n = shape.reduce((a, b) => a * b, 1);
    switch (dtype) {
      case 'F32':
        return fc
          .array(fc.integer({ min: 0, max: 0xffffffff }), { minLength: n, maxLength: n })
          .map((b) => ({ dtype, shape, data: new Float32Array(new Uint32Array(b).buffer) }));
      case 'F16':
        return fc
          .array(fc.integer({ min: 0, max: 0xffff }), { minLength: n, maxLength: n })
          .map((b) => ({ dtype, shape, data: float16ToFloat32(new Uint16Array(b)) }));
      case 'BF16':
        return fc
          .array(fc.integer({ min: 0, max: 0xffff }), { minLength: n, maxLength: n })
          .map((b) => ({ dtype, shape, data: bfloat16ToFloat32(new Uint16Array(b)) }));
      case 'I32':
        return fc
          .array(fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }), { minLength: n, maxLength: n })
          .map((v) => ({ dtype, shape, data: new Int32Array(v) }));
      default:
        return fc
          .array(fc.bigInt({ min: -(2n ** 31n), max: 2n ** 31n - 1n }), { minLength: n, maxLength: n })
          .map((v) => ({ dtype, shape, data: new BigInt64Array(v) }));
    }
  });

const nameArb = fc.string({ maxLength: 12, unit: 'binary' }).filter((s) => s !== '__metadata__');
const tensorsArb = fc.dictionary(nameArb, tensorArb, { maxKeys: 6, noNullPrototype: true });
const metadataArb = fc.option(
  fc.dictionary(fc.string({ maxLength: 8, unit: 'binary' }), fc.string({ maxLength: 16, unit: 'binary' }), {
    maxKeys: 3,
    noNullPrototype: true,
  }),
  { nil: undefined },
);

/** Same numbers, NaN equal to NaN (payloads may be quieted by F16/BF16), +0 distinct from -0. */
function sameFloats(a: Float32Array, b: Float32Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) {
    if (!(Object.is(a[i], b[i]) || (Number.isNaN(a[i]) && Number.isNaN(b[i])))) return false;
  }
  return true;
}

function validFileBytes(tensors: Record<string, TensorToWrite>, metadata?: Record<string, string>): Buffer {
  const p = fresh();
  writeSafetensors(p, tensors, metadata);
  const bytes = fs.readFileSync(p);
  fs.rmSync(p);
  return bytes;
}

describe('safetensors fuzz', () => {
  it('(a) arbitrary bytes either open and read or throw SafetensorsError', () => {
    const arbitrary = fc.uint8Array({ minLength: 0, maxLength: 2000 });
    // Also bytes behind a plausible length field, so the JSON parser and entry checks get exercised.
    const plausibleLength = fc
      .tuple(fc.uint8Array({ minLength: 0, maxLength: 2000 }), fc.integer({ min: 0, max: 2100 }))
      .map(([body, n]) => {
        const len = Buffer.alloc(8);
        len.writeBigUInt64LE(BigInt(n));
        return new Uint8Array(Buffer.concat([len, body]));
      });
    // And JSON-ish text, so objects with random fields reach the entry validation.
    const jsonish = fc
      .tuple(fc.json({ maxDepth: 3 }), fc.uint8Array({ maxLength: 64 }))
      .map(([text, data]) => withHeader(text, data));
    fc.assert(
      fc.property(fc.oneof(arbitrary, plausibleLength, jsonish), (bytes) => {
        const p = fileWith(bytes);
        openAndReadAll(p);
        fs.rmSync(p);
      }),
      { numRuns: 500 },
    );
  });

  it('(b) mutated valid files either open and read or throw SafetensorsError', () => {
    type Mutation =
      | { kind: 'flip'; at: number; xor: number }[]
      | { kind: 'truncate'; keep: number }
      | { kind: 'length'; value: bigint }
      | { kind: 'field'; which: number; field: string; value: unknown };
    const flips = fc.array(
      fc.record({ kind: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
      { minLength: 1, maxLength: 4 },
    );
    const mutation: fc.Arbitrary<Mutation> = fc.oneof(
      flips,
      fc.record({ kind: fc.constant('truncate' as const), keep: fc.nat() }),
      fc.record({
        kind: fc.constant('length' as const),
        value: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 600n })),
      }),
      fc.record({
        kind: fc.constant('field' as const),
        which: fc.nat(),
        field: fc.constantFrom('dtype', 'shape', 'data_offsets', '*', '__metadata__'),
        value: fc.jsonValue({ maxDepth: 2 }),
      }),
    );
    fc.assert(
      fc.property(tensorsArb, metadataArb, mutation, (tensors, metadata, m) => {
        const bytes = validFileBytes(tensors, metadata);
        const n = Number(bytes.readBigUInt64LE(0));
        let out: Uint8Array;
        if (Array.isArray(m)) {
          out = new Uint8Array(bytes);
          for (const f of m) out[8 + (f.at % n)]! ^= f.xor; // header bytes only
        } else if (m.kind === 'truncate') {
          out = bytes.subarray(0, m.keep % (bytes.length + 1));
        } else if (m.kind === 'length') {
          out = new Uint8Array(bytes);
          new DataView(out.buffer).setBigUint64(0, m.value, true);
        } else {
          const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, unknown>;
          const keys = Object.keys(header);
          if (m.field === '__metadata__') {
            header['__metadata__'] = m.value;
          } else if (keys.length > 0) {
            const key = keys[m.which % keys.length]!;
            if (m.field === '*' || key === '__metadata__') header[key] = m.value;
            else (header[key] as Record<string, unknown>)[m.field] = m.value;
          }
          out = withHeader(JSON.stringify(header), bytes.subarray(8 + n));
        }
        const p = fileWith(out);
        openAndReadAll(p);
        fs.rmSync(p);
      }),
      { numRuns: 400 },
    );
  });

  it('(c) valid random files round-trip exactly', () => {
    fc.assert(
      fc.property(tensorsArb, metadataArb, (tensors, metadata) => {
        const p = fresh();
        writeSafetensors(p, tensors, metadata);
        const f = SafetensorsFile.open(p);
        try {
          expect(f.names()).toEqual(Object.keys(tensors).sort());
          expect(f.metadata).toEqual(metadata ?? {});
          for (const [name, t] of Object.entries(tensors)) {
            const info = f.info(name);
            expect(info.dtype).toBe(t.dtype);
            expect(info.shape).toEqual(t.shape);
            if (t.dtype === 'I32') {
              expect(f.readInt32(name)).toEqual(t.data);
            } else if (t.dtype === 'I64') {
              expect([...f.readInt32(name)]).toEqual([...(t.data as BigInt64Array)].map(Number));
            } else {
              expect(sameFloats(f.readFloat32(name), t.data as Float32Array)).toBe(true);
              if (t.dtype === 'F32') {
                const got = f.readFloat32(name);
                const want = t.data as Float32Array;
                expect(new Uint32Array(got.buffer)).toEqual(new Uint32Array(want.buffer));
              }
            }
          }
        } finally {
          f.close();
          fs.rmSync(p);
        }
      }),
      { numRuns: 300 },
    );
  });
});
