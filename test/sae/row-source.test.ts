import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  bfloat16ToFloat32,
  float16ToFloat32,
  float32ToBfloat16,
  float32ToFloat16,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { ActivationDataError, openRowSource, writeNpy } from '../../src/sae/row-source.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-rows-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));
const file = (name: string) => path.join(tmp, name);

const ROWS = 37;
const DIM = 5;
const data = Float32Array.from({ length: ROWS * DIM }, (_, i) => Math.sin(i * 0.7) * (1 + i / 10));
const f16 = (x: Float32Array) => float16ToFloat32(float32ToFloat16(x));

/** A .npy file built byte by byte from the format spec (not by writeNpy). */
function npyBytes(major: number, header: string, payload: Uint8Array, pad = 16): Uint8Array {
  const prelude = major === 1 ? 10 : 12;
  let text = header;
  while ((prelude + text.length + 1) % pad !== 0) text += ' ';
  text += '\n';
  const hdr = Buffer.from(text, major === 3 ? 'utf8' : 'latin1');
  const out = new Uint8Array(prelude + hdr.length + payload.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, 0]);
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, hdr.length, true);
  else dv.setUint32(8, hdr.length, true);
  out.set(hdr, prelude);
  out.set(payload, prelude + hdr.length);
  return out;
}

function bytesOf(a: Float32Array | Uint16Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

describe('npy row source', () => {
  it('reads float32 files written by writeNpy, whole and by row range', () => {
    writeNpy(file('a.npy'), data, ROWS, DIM, 'float32');
    const src = openRowSource(file('a.npy'));
    expect([src.rows, src.dim, src.dtype]).toEqual([ROWS, DIM, 'float32']);
    expect(src.read(0, ROWS)).toEqual(data);
    expect(src.read(11, 7)).toEqual(data.slice(11 * DIM, 18 * DIM));
    expect(src.read(ROWS - 1, 1)).toEqual(data.slice((ROWS - 1) * DIM));
    expect(src.read(4, 0)).toEqual(new Float32Array(0));
    // NumPy's layout: the data starts at a multiple of 64 and the file holds nothing else.
    expect(fs.statSync(file('a.npy')).size % 64).toBe((ROWS * DIM * 4) % 64);
    src.close();
    // Atomic: no temp file left over.
    expect(fs.readdirSync(tmp).filter((f) => f.includes('.tmp-'))).toEqual([]);
  });

  it('reads float16 files written by writeNpy (rounded to nearest)', () => {
    writeNpy(file('h.npy'), data, ROWS, DIM, 'float16');
    const src = openRowSource(file('h.npy'));
    expect(src.dtype).toBe('float16');
    expect(src.read(0, ROWS)).toEqual(f16(data));
    expect(src.read(30, 7)).toEqual(f16(data).slice(30 * DIM));
    src.close();
  });

  it('reads hand-built files of format 1.0, 2.0 and 3.0', () => {
    const vals = Float32Array.from([1, -2, 0.5, 3.25, -0.125, 100]);
    fs.writeFileSync(
      file('v1.npy'),
      npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }", bytesOf(vals)),
    );
    const v1 = openRowSource(file('v1.npy'));
    expect([v1.rows, v1.dim]).toEqual([3, 2]);
    expect(Array.from(v1.read(1, 2))).toEqual([0.5, 3.25, -0.125, 100]);
    v1.close();

    // float16 bit patterns: 1.0, -2.0, 0.5, 65504 (largest half), 2^-24 (smallest subnormal), -0.
    const bits = Uint16Array.from([0x3c00, 0xc000, 0x3800, 0x7bff, 0x0001, 0x8000]);
    fs.writeFileSync(
      file('v2.npy'),
      npyBytes(2, "{'shape':(2,3),'fortran_order':False,'descr':'<f2'}", bytesOf(bits), 64),
    );
    const v2 = openRowSource(file('v2.npy'));
    expect([v2.rows, v2.dim, v2.dtype]).toEqual([2, 3, 'float16']);
    expect(Array.from(v2.read(0, 2))).toEqual([1, -2, 0.5, 65504, 2 ** -24, -0]);
    v2.close();

    fs.writeFileSync(
      file('v3.npy'),
      npyBytes(3, '{"descr": "<f4", "fortran_order": False, "shape": (1, 6)}', bytesOf(vals)),
    );
    const v3 = openRowSource(file('v3.npy'));
    expect(Array.from(v3.read(0, 1))).toEqual(Array.from(vals));
    v3.close();

    // Zero rows is a valid (empty) matrix.
    fs.writeFileSync(
      file('empty.npy'),
      npyBytes(1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 4), }", new Uint8Array(0)),
    );
    const e = openRowSource(file('empty.npy'));
    expect([e.rows, e.dim]).toEqual([0, 4]);
    e.close();
  });

  it('reads files written by NumPy 2.4 (np.save)', () => {
    // base64 of np.save(np.array([[0.5, -1.25, 3], [1e-3, 2**20, -0.0]], dtype='<f4')) and of a (3, 2) '<f2'.
    const f4 =
      'k05VTVBZAQB2AHsnZGVzY3InOiAnPGY0JywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDIsIDMpLCB9ICAgICAgICAgICAg' +
      'ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAAAA/AACgvwAAQEBvEoM6AACASQAAAIA=';
    const f2 =
      'k05VTVBZAQB2AHsnZGVzY3InOiAnPGYyJywgJ2ZvcnRyYW5fb3JkZXInOiBGYWxzZSwgJ3NoYXBlJzogKDMsIDIpLCB9ICAgICAgICAgICAg' +
      'ICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgICAgIAoAPADAZi7/ewEAAEI=';
    fs.writeFileSync(file('np-f4.npy'), Buffer.from(f4, 'base64'));
    fs.writeFileSync(file('np-f2.npy'), Buffer.from(f2, 'base64'));
    const a = openRowSource(file('np-f4.npy'));
    expect([a.rows, a.dim, a.dtype]).toEqual([2, 3, 'float32']);
    expect(Array.from(a.read(0, 2))).toEqual([0.5, -1.25, 3, Math.fround(1e-3), 2 ** 20, -0]);
    a.close();
    const b = openRowSource(file('np-f2.npy'));
    expect([b.rows, b.dim, b.dtype]).toEqual([3, 2, 'float16']);
    expect(Array.from(b.read(1, 2))).toEqual([0.0999755859375, 65504, 2 ** -24, 3]);
    b.close();
    // And writeNpy's output is byte for byte what np.save writes.
    writeNpy(file('mine.npy'), Float32Array.from([0.5, -1.25, 3, 1e-3, 2 ** 20, -0]), 2, 3);
    expect(fs.readFileSync(file('mine.npy')).toString('base64')).toBe(f4);
  });

  it('explains bad .npy files and bad reads', () => {
    const hdr = (descr: string, shape: string, fortran = 'False') =>
      `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }`;
    const write = (name: string, bytes: Uint8Array) => {
      fs.writeFileSync(file(name), bytes);
      return file(name);
    };
    const err = (f: string, re: RegExp) => {
      expect(() => openRowSource(f)).toThrow(ActivationDataError);
      expect(() => openRowSource(f)).toThrow(re);
    };
    err(file('missing.npy'), /missing\.npy.*ENOENT/);
    err(write('magic.npy', new Uint8Array(64).fill(7)), /bad magic/);
    err(write('short.npy', new Uint8Array(4)), /too short/);
    // The header says 500 bytes; the file ends long before.
    const longHeader = npyBytes(1, hdr('<f4', '(2, 2)'), new Uint8Array(16));
    new DataView(longHeader.buffer).setUint16(8, 500, true);
    err(write('hdr.npy', longHeader), /header claims 500 bytes.*truncated/);
    // Shape (10, 4) float32 needs 160 bytes; 40 are there.
    err(
      write('trunc.npy', npyBytes(1, hdr('<f4', '(10, 4)'), new Uint8Array(40))),
      /needs 160 data bytes.*truncated/,
    );
    err(write('extra.npy', npyBytes(1, hdr('<f4', '(1, 1)'), new Uint8Array(8))), /4 bytes after/);
    err(write('rank1.npy', npyBytes(1, hdr('<f4', '(8,)'), new Uint8Array(32))), /must be 2-D.*\(8\)/);
    err(write('rank3.npy', npyBytes(1, hdr('<f4', '(2, 2, 2)'), new Uint8Array(32))), /must be 2-D/);
    err(write('f8.npy', npyBytes(1, hdr('<f8', '(2, 2)'), new Uint8Array(32))), /unsupported dtype "<f8"/);
    err(write('be.npy', npyBytes(1, hdr('>f4', '(2, 2)'), new Uint8Array(16))), /big-endian/);
    err(write('i4.npy', npyBytes(1, hdr('<i4', '(2, 2)'), new Uint8Array(16))), /unsupported dtype "<i4"/);
    err(write('fortran.npy', npyBytes(1, hdr('<f4', '(2, 2)', 'True'), new Uint8Array(16))), /fortran_order/);
    err(
      write('garbled.npy', npyBytes(1, "{'descr': '<f4', 'shape': (2, 2", new Uint8Array(16))),
      /malformed/,
    );
    err(write('data.txt', new Uint8Array(4)), /unknown activation file type/);

    const src = openRowSource(file('a.npy'));
    expect(() => src.read(ROWS - 2, 3)).toThrow(/rows \[35, 38\) are out of range.*37 rows/);
    expect(() => src.read(-1, 2)).toThrow(ActivationDataError);
    expect(() => src.read(1.5, 2)).toThrow(ActivationDataError);
    src.close();
    expect(() => src.read(0, 1)).toThrow(/after close/);

    expect(() => writeNpy(file('bad.npy'), data, ROWS, DIM + 1)).toThrow(/needs 222/);
    expect(fs.existsSync(file('bad.npy'))).toBe(false);
  });
});

describe('safetensors row source', () => {
  it('reads F32, F16 and BF16 tensors by row range', () => {
    for (const dtype of ['F32', 'F16', 'BF16'] as const) {
      const f = file(`s-${dtype}.safetensors`);
      // Other tensors in the file before and after ours: offsets must be honoured.
      writeSafetensors(f, {
        a_first: { dtype: 'F32', shape: [3], data: Float32Array.from([9, 9, 9]) },
        activations: { dtype, shape: [ROWS, DIM], data },
        z_last: { dtype: 'F32', shape: [2], data: Float32Array.from([7, 7]) },
      });
      const src = openRowSource(f);
      const want = dtype === 'F32' ? data : openRowSource(f).read(0, ROWS);
      expect([src.rows, src.dim, src.dtype]).toEqual([
        ROWS,
        DIM,
        { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype],
      ]);
      if (dtype === 'F16') expect(want).toEqual(f16(data));
      if (dtype === 'BF16') expect(want).toEqual(bfloat16ToFloat32(float32ToBfloat16(data)));
      expect(src.read(5, 9)).toEqual(want.slice(5 * DIM, 14 * DIM));
      src.close();
    }
    // A file with one tensor of any name.
    writeSafetensors(file('one.safetensors'), { x: { dtype: 'F32', shape: [ROWS, DIM], data } });
    const one = openRowSource(file('one.safetensors'));
    expect(one.read(36, 1)).toEqual(data.slice(36 * DIM));
    one.close();
  });

  it('explains bad .safetensors files', () => {
    const err = (f: string, re: RegExp) => {
      expect(() => openRowSource(f)).toThrow(ActivationDataError);
      expect(() => openRowSource(f)).toThrow(re);
    };
    err(file('missing.safetensors'), /missing\.safetensors.*ENOENT/);
    writeSafetensors(file('two.safetensors'), {
      a: { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) },
      b: { dtype: 'F32', shape: [2, 2], data: new Float32Array(4) },
    });
    err(file('two.safetensors'), /several tensors \(a, b\).*'activations'/);
    writeSafetensors(file('r3.safetensors'), {
      x: { dtype: 'F32', shape: [2, 2, 2], data: new Float32Array(8) },
    });
    err(file('r3.safetensors'), /must be 2-D.*\[2, 2, 2\]/);
    writeSafetensors(file('i32.safetensors'), {
      x: { dtype: 'I32', shape: [2, 2], data: new Int32Array(4) },
    });
    err(file('i32.safetensors'), /dtype I32; expected F32, F16 or BF16/);
    // Truncated: drop the last 8 bytes of a valid file.
    const full = fs.readFileSync(file('s-F32.safetensors'));
    fs.writeFileSync(file('cut.safetensors'), full.subarray(0, full.length - 8));
    err(file('cut.safetensors'), /truncated/);
    fs.writeFileSync(file('junk.safetensors'), Buffer.from('not a safetensors file at all'));
    err(file('junk.safetensors'), /header length/);
  });
});
