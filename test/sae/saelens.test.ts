import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { Tensor } from '../../src/engine/tensor.js';
import { setParam } from '../helpers/sae.js';
import { SafetensorsFile, writeSafetensors, type TensorToWrite } from '../../src/io/safetensors.js';
import { saeConfig, SaeError, type SaeConfig } from '../../src/sae/config.js';
import { SparseAutoencoder } from '../../src/sae/sae.js';
import {
  batchTopkToJumpRelu,
  loadSaeLens,
  readSaeLensSparsity,
  saveSaeLens,
  SAELENS_FORMAT_VERSION,
} from '../../src/sae/saelens.js';

interface Reference {
  input: number[][];
  pre: number[][];
  acts: number[][];
  recons: number[][];
  sparsity?: number[];
}

const FIXTURES = path.resolve('test/fixtures/sae');
const NAMES = ['standard-legacy', 'jumprelu', 'topk', 'gated', 'transcoder'] as const;
const ref = (name: string) =>
  JSON.parse(fs.readFileSync(path.join(FIXTURES, name, 'reference.json'), 'utf8')) as Reference;

const TMP = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-saelens-'));
afterAll(() => fs.rmSync(TMP, { recursive: true, force: true }));
let counter = 0;
const tmpPath = (tag: string) => path.join(TMP, `${tag}-${counter++}`);

/** A copy of a fixture folder to break. */
function copyFixture(name: string): string {
  const dst = tmpPath(name);
  fs.cpSync(path.join(FIXTURES, name), dst, { recursive: true });
  return dst;
}
const readCfg = (dir: string) =>
  JSON.parse(fs.readFileSync(path.join(dir, 'cfg.json'), 'utf8')) as Record<string, unknown>;
const writeCfg = (dir: string, cfg: unknown) =>
  fs.writeFileSync(path.join(dir, 'cfg.json'), JSON.stringify(cfg, null, 2));

/** Every tensor of a safetensors file: dtype, shape and values as float32. */
function readAll(file: string): Map<string, { dtype: string; shape: number[]; data: Float32Array }> {
  const f = SafetensorsFile.open(file);
  try {
    return new Map(
      f.names().map((n) => [n, { dtype: f.info(n).dtype, shape: f.info(n).shape, data: f.readFloat32(n) }]),
    );
  } finally {
    f.close();
  }
}
function rewriteWeights(dir: string, edit: (t: Record<string, TensorToWrite>) => void): void {
  const file = path.join(dir, 'sae_weights.safetensors');
  const t: Record<string, TensorToWrite> = {};
  for (const [n, v] of readAll(file)) t[n] = { dtype: 'F32', shape: v.shape, data: v.data };
  edit(t);
  fs.rmSync(file);
  writeSafetensors(file, t);
}

/** Elementwise |got - want| <= 1e-5 * (1 + |want|); returns the worst ratio to that bound. */
function worst(got: ArrayLike<number>, want: number[]): number {
  expect(got.length).toBe(want.length);
  let w = 0;
  for (let i = 0; i < want.length; i++)
    w = Math.max(w, Math.abs(got[i]! - want[i]!) / (1e-5 * (1 + Math.abs(want[i]!))));
  return w;
}
const rows = (x: number[][]) => Tensor.from(Float32Array.from(x.flat()), [x.length, x[0]!.length]);

async function expectSameSae(a: SparseAutoencoder, b: SparseAutoencoder): Promise<void> {
  expect(b.cfg).toEqual(a.cfg);
  expect([...b.params.keys()].sort()).toEqual([...a.params.keys()].sort());
  for (const [name, t] of a.params) {
    const u = b.param(name);
    expect(u.shape, name).toEqual(t.shape);
    const [x, y] = [await u.f32(), await t.f32()];
    expect(
      Buffer.from(x.buffer, x.byteOffset, x.byteLength).equals(
        Buffer.from(y.buffer, y.byteOffset, y.byteLength),
      ),
      name,
    ).toBe(true);
  }
}

async function expectSaeError(fn: () => unknown, ...patterns: (string | RegExp)[]): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(SaeError);
  for (const p of patterns) expect((err as Error).message).toMatch(p);
}

describe.each(NAMES)('SAELens fixture %s', (name) => {
  const r = ref(name);
  const dir = path.join(FIXTURES, name);

  it('matches the float64 reference (pre, acts, recons)', async () => {
    const sae = loadSaeLens(dir);
    const out = sae.forwardRows(rows(r.input));
    expect(out.pre.shape).toEqual([6, 32]);
    expect(out.acts.shape).toEqual([6, 32]);
    expect(out.recons.shape).toEqual([6, name === 'transcoder' ? 12 : 16]);
    expect(worst(await out.pre.f32(), r.pre.flat())).toBeLessThan(1);
    expect(worst(await out.acts.f32(), r.acts.flat())).toBeLessThan(1);
    expect(worst(await out.recons.f32(), r.recons.flat())).toBeLessThan(1);
    // the fixture is not trivial: some latents fire, most do not
    const acts = r.acts.flat();
    const active = acts.filter((v) => v !== 0).length;
    expect(active).toBeGreaterThan(5);
    expect(active).toBeLessThan(acts.length);
  });

  it('save -> load is exact, and the saved folder reproduces the reference', async () => {
    const sae = loadSaeLens(dir);
    const out = tmpPath(`rt-${name}`);
    await saveSaeLens(sae, out);
    expect(fs.readdirSync(out).sort()).toEqual(['cfg.json', 'sae_weights.safetensors']);
    for (const t of readAll(path.join(out, 'sae_weights.safetensors')).values()) expect(t.dtype).toBe('F32');
    const back = loadSaeLens(out);
    await expectSameSae(sae, back);
    expect(worst(await back.forwardRows(rows(r.input)).recons.f32(), r.recons.flat())).toBeLessThan(1);
    // and again: a second round trip writes the same files byte for byte
    const out2 = tmpPath(`rt2-${name}`);
    await saveSaeLens(back, out2);
    for (const f of ['cfg.json', 'sae_weights.safetensors'])
      expect(fs.readFileSync(path.join(out2, f)).equals(fs.readFileSync(path.join(out, f)))).toBe(true);
  });
});

describe('loadSaeLens reads each layout', () => {
  it('legacy layout: top-level hook info goes to metadata, architecture defaults to standard', async () => {
    const sae = loadSaeLens(path.join(FIXTURES, 'standard-legacy'));
    expect(sae.cfg).toMatchObject({
      architecture: 'standard',
      dIn: 16,
      dSae: 32,
      dOut: 16,
      hookName: 'blocks.1.hook_resid_pre',
      hookNameOut: null,
      k: null,
      applyBDecToInput: true,
      normalizeActivations: 'none', // was `false` in the old layout
      scalingFactor: null,
    });
    expect(sae.cfg.metadata).toMatchObject({
      model_name: 'tiny-stories-1M',
      hook_layer: 1,
      context_size: 128,
      sae_lens_training_version: '3.13.0',
      dataset_path: 'roneneldan/TinyStories',
    });
    for (const k of ['hook_name', 'd_in', 'dtype', 'device', 'activation_fn', 'finetuning_scaling_factor'])
      expect(sae.cfg.metadata).not.toHaveProperty(k);
    expect([...sae.params.keys()].sort()).toEqual(['W_dec', 'W_enc', 'b_dec', 'b_enc']); // scaling_factor (all ones) dropped
  });

  it('v6 layout: hook info from metadata; stored BF16 / F16 weights are read', async () => {
    const jr = loadSaeLens(path.join(FIXTURES, 'jumprelu'));
    expect(jr.cfg).toMatchObject({
      architecture: 'jumprelu',
      hookName: 'blocks.2.hook_resid_post',
      applyBDecToInput: true,
    });
    expect(jr.cfg.metadata.neuronpedia_id).toBe('tiny-stories-1M/2-res-jumprelu');
    expect(jr.cfg.metadata).not.toHaveProperty('sae_lens_version');
    expect(jr.cfg.metadata.sae_lens_training_version).toBe('6.18.0');
    expect(readAll(path.join(FIXTURES, 'jumprelu', 'sae_weights.safetensors')).get('threshold')!.dtype).toBe(
      'BF16',
    );
    const thr = await jr.param('threshold').f32();
    expect(Math.min(...thr)).toBeGreaterThan(0.04);

    const tc = loadSaeLens(path.join(FIXTURES, 'transcoder'));
    expect(tc.cfg).toMatchObject({
      architecture: 'standard',
      dIn: 16,
      dOut: 12,
      hookName: 'blocks.1.ln2.hook_normalized',
      hookNameOut: 'blocks.1.hook_mlp_out',
      applyBDecToInput: false,
    });
    expect(readAll(path.join(FIXTURES, 'transcoder', 'sae_weights.safetensors')).get('W_skip')!.dtype).toBe(
      'F16',
    );
    expect(tc.param('W_skip').shape).toEqual([16, 12]); // Sonde's [d_in, d_out]; the file has [d_out, d_in]

    const g = loadSaeLens(path.join(FIXTURES, 'gated'));
    expect(g.cfg.architecture).toBe('gated');
    expect([...g.params.keys()].sort()).toEqual(['W_dec', 'W_enc', 'b_dec', 'b_gate', 'b_mag', 'r_mag']);
  });

  it('topk: k and apply_b_dec_to_input are read; rescale_acts_by_decoder_norm is folded into the weights', async () => {
    const sae = loadSaeLens(path.join(FIXTURES, 'topk'));
    expect(sae.cfg).toMatchObject({ architecture: 'topk', k: 4, applyBDecToInput: false });
    expect(sae.cfg.metadata).not.toHaveProperty('rescale_acts_by_decoder_norm');
    const wDec = await sae.param('W_dec').f32();
    for (let i = 0; i < 32; i++) {
      let ss = 0;
      for (let j = 0; j < 16; j++) ss += wDec[i * 16 + j]! ** 2;
      expect(Math.sqrt(ss)).toBeCloseTo(1, 5);
    }
    // the file's decoder rows are not unit norm, so the fold did something
    const raw = readAll(path.join(FIXTURES, 'topk', 'sae_weights.safetensors')).get('W_dec')!.data;
    const n0 = Math.hypot(...raw.subarray(0, 16));
    expect(Math.abs(n0 - 1)).toBeGreaterThan(0.01);
    const saved = tmpPath('topk-saved');
    await saveSaeLens(sae, saved);
    expect(readCfg(saved)).toMatchObject({ architecture: 'topk', k: 4, rescale_acts_by_decoder_norm: false });
  });

  it('old key names and the pre-6 way of writing TopK and normalisation', async () => {
    const d = copyFixture('standard-legacy');
    const cfg = readCfg(d);
    cfg.hook_point = cfg.hook_name;
    delete cfg.hook_name;
    cfg.activation_fn_str = 'topk';
    cfg.activation_fn_kwargs = { k: 3 };
    cfg.normalize_activations = true;
    writeCfg(d, cfg);
    const sae = loadSaeLens(d);
    expect(sae.cfg).toMatchObject({
      architecture: 'topk',
      k: 3,
      hookName: 'blocks.1.hook_resid_pre',
      normalizeActivations: 'expected_average_only_in',
    });
    expect(sae.cfg.metadata).not.toHaveProperty('activation_fn_kwargs');
  });

  it('a pre-6 finetuning scaling_factor is folded into W_dec', async () => {
    const d = copyFixture('standard-legacy');
    const cfg = readCfg(d);
    cfg.finetuning_scaling_factor = true;
    writeCfg(d, cfg);
    const s = Float32Array.from({ length: 32 }, (_, i) => 2 ** ((i % 5) - 2)); // exact in float32
    rewriteWeights(d, (t) => {
      t.scaling_factor = { dtype: 'F32', shape: [32], data: s };
      const w = Float32Array.from(t.W_dec!.data as Float32Array);
      for (let i = 0; i < 32; i++) for (let j = 0; j < 16; j++) w[i * 16 + j] = w[i * 16 + j]! / s[i]!;
      t.W_dec = { dtype: 'F32', shape: [32, 16], data: w };
    });
    const r = ref('standard-legacy');
    const out = loadSaeLens(d).forwardRows(rows(r.input));
    expect(worst(await out.acts.f32(), r.acts.flat())).toBeLessThan(1);
    expect(worst(await out.recons.f32(), r.recons.flat())).toBeLessThan(1);

    // a non-trivial scaling_factor without the flag is refused, as SAELens does
    cfg.finetuning_scaling_factor = false;
    writeCfg(d, cfg);
    await expectSaeError(() => loadSaeLens(d), /scaling_factor/, /finetuning_scaling_factor is false/);
  });

  it('the sparsity file is read, and round-trips through saveSaeLens', async () => {
    const r = ref('jumprelu');
    const sp = readSaeLensSparsity(path.join(FIXTURES, 'jumprelu'))!;
    expect(Array.from(sp)).toEqual(r.sparsity);
    expect(readSaeLensSparsity(path.join(FIXTURES, 'gated'))).toBeNull();
    const out = tmpPath('sparsity');
    await saveSaeLens(loadSaeLens(path.join(FIXTURES, 'jumprelu')), out, { sparsity: sp });
    expect(Array.from(readSaeLensSparsity(out)!)).toEqual(r.sparsity);
    await expectSaeError(
      async () =>
        await saveSaeLens(loadSaeLens(path.join(FIXTURES, 'gated')), tmpPath('bad-sp'), {
          sparsity: sp.subarray(1),
        }),
      /sparsity has 31 values/,
    );
  });
});

describe('saveSaeLens writes SAELens 6 layout', () => {
  it('the legacy fixture is saved with hook info under metadata', async () => {
    const out = tmpPath('legacy-v6');
    await saveSaeLens(loadSaeLens(path.join(FIXTURES, 'standard-legacy')), out);
    const cfg = readCfg(out);
    expect(cfg).toMatchObject({
      architecture: 'standard',
      d_in: 16,
      d_sae: 32,
      dtype: 'float32',
      device: 'cpu',
      apply_b_dec_to_input: true,
      normalize_activations: 'none',
      reshape_activations: 'none',
    });
    for (const k of [
      'hook_name',
      'model_name',
      'hook_layer',
      'activation_fn_str',
      'finetuning_scaling_factor',
      'k',
    ])
      expect(cfg).not.toHaveProperty(k);
    expect(cfg.metadata).toMatchObject({
      sae_lens_version: SAELENS_FORMAT_VERSION,
      sae_lens_training_version: '3.13.0',
      model_name: 'tiny-stories-1M',
      hook_name: 'blocks.1.hook_resid_pre',
      hook_layer: 1,
      context_size: 128,
      prepend_bos: true,
    });
    expect(Number(SAELENS_FORMAT_VERSION.split('.')[0])).toBeGreaterThanOrEqual(6);
    const w = readAll(path.join(out, 'sae_weights.safetensors'));
    expect([...w.keys()].sort()).toEqual(['W_dec', 'W_enc', 'b_dec', 'b_enc']);
    const orig = readAll(path.join(FIXTURES, 'standard-legacy', 'sae_weights.safetensors'));
    expect(Array.from(w.get('W_enc')!.data)).toEqual(Array.from(orig.get('W_enc')!.data));
  });

  it('a skip transcoder: architecture, d_out, hook_name_out, W_skip as [d_out, d_in]', async () => {
    const out = tmpPath('tc');
    await saveSaeLens(loadSaeLens(path.join(FIXTURES, 'transcoder')), out);
    const cfg = readCfg(out);
    expect(cfg).toMatchObject({
      architecture: 'skip_transcoder',
      d_in: 16,
      d_out: 12,
      apply_b_dec_to_input: false,
    });
    expect(cfg.metadata).toMatchObject({
      hook_name: 'blocks.1.ln2.hook_normalized',
      hook_name_out: 'blocks.1.hook_mlp_out',
      hook_head_index_out: null,
    });
    const w = readAll(path.join(out, 'sae_weights.safetensors')).get('W_skip')!;
    const orig = readAll(path.join(FIXTURES, 'transcoder', 'sae_weights.safetensors')).get('W_skip')!;
    expect(w.shape).toEqual([12, 16]);
    expect(Array.from(w.data)).toEqual(Array.from(orig.data));
  });

  it('architecture names for Sonde SAEs and transcoders', async () => {
    const base = { dIn: 8, dSae: 16, hookName: 'blocks.0.hook_resid_pre' };
    const archOf = async (cfg: SaeConfig, opts: { skip?: boolean } = {}) => {
      const out = tmpPath('arch');
      await saveSaeLens(SparseAutoencoder.init(cfg, { seed: 1, ...opts }), out);
      return readCfg(out).architecture;
    };
    expect(await archOf(saeConfig({ ...base, architecture: 'gated' }))).toBe('gated');
    const tc = { ...base, hookNameOut: 'blocks.0.hook_mlp_out', dOut: 8 };
    expect(await archOf(saeConfig({ ...tc, architecture: 'standard' }))).toBe('transcoder');
    expect(await archOf(saeConfig({ ...tc, architecture: 'standard' }), { skip: true })).toBe(
      'skip_transcoder',
    );
    expect(await archOf(saeConfig({ ...tc, architecture: 'jumprelu' }))).toBe('jumprelu_transcoder');
    await expectSaeError(
      () => archOf(saeConfig({ ...tc, architecture: 'topk', k: 2 })),
      /no topk transcoder/,
    );
    // hook_z SAEs get SAELens's head reshaping
    const z = tmpPath('hookz');
    await saveSaeLens(
      SparseAutoencoder.init(
        saeConfig({ ...base, architecture: 'standard', hookName: 'blocks.0.attn.hook_z' }),
      ),
      z,
    );
    expect(readCfg(z).reshape_activations).toBe('hook_z');
    expect(loadSaeLens(z).cfg.metadata).not.toHaveProperty('reshape_activations');
  });

  it.each(['standard', 'jumprelu'] as const)(
    '%s: an expected_average_only_in scaling factor is folded in, so the saved SAE takes raw inputs',
    async (architecture) => {
      const s = 2.5;
      const cfg = saeConfig({
        architecture,
        dIn: 8,
        dSae: 16,
        hookName: 'blocks.0.hook_resid_pre',
        normalizeActivations: 'expected_average_only_in',
        scalingFactor: s,
        metadata: { model_name: 'm' },
      });
      const sae = SparseAutoencoder.init(cfg, { seed: 3, decoderNorm: 1, threshold: 0.05 });
      await setParam(
        sae,
        'b_dec',
        Array.from({ length: 8 }, (_, i) => 0.1 * (i - 4)),
      );
      await setParam(
        sae,
        'b_enc',
        Array.from({ length: 16 }, (_, i) => 0.05 * ((i % 7) - 3)),
      );
      const x = Tensor.from(
        Float32Array.from({ length: 5 * 8 }, (_, i) => Math.sin(1.3 * i + 0.2)),
        [5, 8],
      );
      const want = sae.forwardRows(x);
      const out = tmpPath('fold');
      await saveSaeLens(sae, out);
      expect(readCfg(out).normalize_activations).toBe('none');
      const back = loadSaeLens(out);
      expect(back.cfg.normalizeActivations).toBe('none');
      expect(back.cfg.scalingFactor).toBeNull();
      expect((await back.param('W_enc').f32())[3]).toBeCloseTo((await sae.param('W_enc').f32())[3]! * s, 6);
      const got = back.forwardRows(x);
      expect(worst(await got.acts.f32(), Array.from(await want.acts.f32()))).toBeLessThan(1);
      expect(worst(await got.recons.f32(), Array.from(await want.recons.f32()))).toBeLessThan(1);
      expect((await want.acts.f32()).some((v) => v > 0)).toBe(true);
    },
  );
});

describe('BatchTopK', () => {
  const cfg = saeConfig({
    architecture: 'batchtopk',
    dIn: 8,
    dSae: 16,
    k: 3,
    hookName: 'blocks.0.hook_resid_pre',
  });

  it('batchTopkToJumpRelu keeps the weights and adds one threshold per latent', async () => {
    const sae = SparseAutoencoder.init(cfg, { seed: 2, decoderNorm: 1 });
    await setParam(
      sae,
      'b_enc',
      Array.from({ length: 16 }, (_, i) => 0.03 * (i - 8)),
    );
    const jr = batchTopkToJumpRelu(sae, 0.05);
    expect(jr.cfg.architecture).toBe('jumprelu');
    expect(jr.cfg.k).toBeNull();
    expect(Array.from(await jr.param('threshold').f32())).toEqual(new Array(16).fill(Math.fround(0.05)));
    expect(jr.param('W_enc')).toBe(sae.param('W_enc'));
    const x = Tensor.from(
      Float32Array.from({ length: 4 * 8 }, (_, i) => Math.cos(0.7 * i)),
      [4, 8],
    );
    const { pre, acts } = jr.forwardRows(x);
    const p = await pre.f32();
    const a = await acts.f32();
    for (let i = 0; i < p.length; i++) expect(a[i]).toBe(p[i]! > Math.fround(0.05) ? p[i] : 0);
    expect(a.some((v) => v > 0) && a.some((v, i) => v === 0 && p[i]! > 0)).toBe(true);
    await expectSaeError(() => batchTopkToJumpRelu(jr, 0.1), /takes a batchtopk SAE/);
  });

  it('is saved as SAELens saves it for inference: jumprelu with the threshold', async () => {
    const sae = SparseAutoencoder.init(cfg, { seed: 2 });
    await expectSaeError(async () => await saveSaeLens(sae, tmpPath('btk')), /batchTopkToJumpRelu/);
    const out = tmpPath('btk');
    await saveSaeLens(sae, out, { batchTopkThreshold: 0.25 });
    expect(readCfg(out).architecture).toBe('jumprelu');
    const back = loadSaeLens(out);
    expect(back.cfg.architecture).toBe('jumprelu');
    expect((await back.param('threshold').f32())[7]).toBe(0.25);
  });

  it('a SAELens BatchTopK training checkpoint loads as batchtopk and saves with its topk_threshold', async () => {
    const d = copyFixture('topk');
    const c = readCfg(d);
    c.architecture = 'batchtopk';
    c.topk_threshold_lr = 0.01;
    writeCfg(d, c);
    rewriteWeights(d, (t) => {
      t.topk_threshold = { dtype: 'F32', shape: [], data: Float32Array.of(0.375) };
    });
    const sae = loadSaeLens(d);
    expect(sae.cfg).toMatchObject({ architecture: 'batchtopk', k: 4 });
    expect(sae.cfg.metadata).toMatchObject({ topk_threshold: 0.375, topk_threshold_lr: 0.01 });
    const out = tmpPath('btk-ckpt');
    await saveSaeLens(sae, out);
    const back = loadSaeLens(out);
    expect(back.cfg.architecture).toBe('jumprelu');
    expect(back.cfg.metadata).not.toHaveProperty('topk_threshold');
    expect((await back.param('threshold').f32()).every((v) => v === 0.375)).toBe(true);
  });
});

describe('loadSaeLens errors', () => {
  it('missing cfg.json or weights file', async () => {
    const empty = tmpPath('empty');
    fs.mkdirSync(empty);
    await expectSaeError(() => loadSaeLens(empty), path.join(empty, 'cfg.json'), /not found/);
    const d = copyFixture('gated');
    fs.rmSync(path.join(d, 'sae_weights.safetensors'));
    await expectSaeError(() => loadSaeLens(d), /sae_weights\.safetensors: not found/);
  });

  it('malformed cfg.json: bad JSON, missing or non-integer sizes, missing hook_name', async () => {
    const d = copyFixture('gated');
    const cfgPath = path.join(d, 'cfg.json');
    const good = readCfg(d);
    fs.writeFileSync(cfgPath, '{"d_in": 16, "d_sae": ');
    await expectSaeError(() => loadSaeLens(d), cfgPath, /not valid JSON/);
    fs.writeFileSync(cfgPath, '[1, 2]');
    await expectSaeError(() => loadSaeLens(d), cfgPath, /expected a JSON object/);
    writeCfg(d, { ...good, d_in: undefined });
    await expectSaeError(() => loadSaeLens(d), cfgPath, /"d_in" is missing/);
    writeCfg(d, { ...good, d_sae: 32.5 });
    await expectSaeError(() => loadSaeLens(d), cfgPath, /"d_sae" must be a positive integer, got 32.5/);
    writeCfg(d, { ...good, d_in: '16' });
    await expectSaeError(() => loadSaeLens(d), /"d_in" must be a positive integer, got "16"/);
    writeCfg(d, { ...good, metadata: { model_name: 'x' } });
    await expectSaeError(() => loadSaeLens(d), cfgPath, /"hook_name" is missing/);
    writeCfg(d, { ...good, normalize_activations: 'whiten' });
    await expectSaeError(() => loadSaeLens(d), /unknown normalize_activations "whiten"/);
  });

  it('unknown architecture lists the supported ones', async () => {
    const d = copyFixture('gated');
    writeCfg(d, { ...readCfg(d), architecture: 'sparsemax' });
    await expectSaeError(
      () => loadSaeLens(d),
      /unknown architecture "sparsemax"/,
      /standard, topk, jumprelu, gated/,
      /skip_transcoder/,
    );
    writeCfg(d, { ...readCfg(d), architecture: 'standard', activation_fn: 'tanh-relu' });
    await expectSaeError(() => loadSaeLens(d), /activation_fn "tanh-relu" is not supported/);
  });

  it('a W_enc whose shape disagrees with d_in names the tensor and both shapes', async () => {
    const d = copyFixture('standard-legacy');
    rewriteWeights(d, (t) => {
      t.W_enc = { dtype: 'F32', shape: [15, 32], data: (t.W_enc!.data as Float32Array).subarray(0, 15 * 32) };
    });
    await expectSaeError(
      () => loadSaeLens(d),
      /tensor 'W_enc' has shape \[15, 32\], expected \[16, 32\] \(\[d_in, d_sae\] from cfg\.json\)/,
    );
    // and a d_sae that disagrees with every tensor: the first one checked is named
    const e = copyFixture('jumprelu');
    writeCfg(e, { ...readCfg(e), d_sae: 30 });
    await expectSaeError(() => loadSaeLens(e), /tensor 'W_enc' has shape \[16, 32\], expected \[16, 30\]/);
  });

  it('missing and unexpected tensors', async () => {
    const d = copyFixture('jumprelu');
    rewriteWeights(d, (t) => delete t.threshold);
    await expectSaeError(
      () => loadSaeLens(d),
      /tensor 'threshold' \[d_sae\] is missing \(needed by a jumprelu SAE\)/,
    );
    const e = copyFixture('gated');
    rewriteWeights(e, (t) => {
      t.b_enc = { dtype: 'F32', shape: [32], data: new Float32Array(32) };
    });
    await expectSaeError(() => loadSaeLens(e), /unexpected tensor 'b_enc' for a gated SAE/);
  });

  it('a transcoder needs d_out and hook_name_out, and no b_dec on the input', async () => {
    const d = copyFixture('transcoder');
    const good = readCfg(d);
    writeCfg(d, { ...good, d_out: undefined });
    await expectSaeError(() => loadSaeLens(d), /"d_out" is missing/);
    writeCfg(d, { ...good, metadata: { ...(good.metadata as object), hook_name_out: undefined } });
    await expectSaeError(() => loadSaeLens(d), /"hook_name_out" is missing/);
    writeCfg(d, { ...good, apply_b_dec_to_input: true });
    await expectSaeError(() => loadSaeLens(d), /apply_b_dec_to_input is not supported for transcoders/);
  });
});

describe('saveSaeLens is atomic', () => {
  const siblings = (target: string) =>
    fs.readdirSync(path.dirname(target)).filter((f) => f.startsWith(path.basename(target)));

  it('a save that fails part-way leaves no folder and no temp folder', async () => {
    const sae = loadSaeLens(path.join(FIXTURES, 'gated'));
    const bad = new SparseAutoencoder({ ...sae.cfg, metadata: { ...sae.cfg.metadata, n: 10n } }, sae.params);
    const parent = tmpPath('atomic');
    fs.mkdirSync(parent);
    const target = path.join(parent, 'sae');
    // fails while writing cfg.json, after the weights were written to the temp folder
    await expectSaeError(async () => await saveSaeLens(bad, target), /cannot write cfg\.json/, /BigInt/);
    expect(fs.readdirSync(parent)).toEqual([]);

    // an existing folder is left as it was
    await saveSaeLens(sae, target);
    fs.writeFileSync(path.join(target, 'marker.txt'), 'keep');
    const before = fs.readFileSync(path.join(target, 'cfg.json'));
    await expectSaeError(async () => await saveSaeLens(bad, target), /cannot write cfg\.json/);
    expect(siblings(target)).toEqual(['sae']);
    expect(fs.readFileSync(path.join(target, 'marker.txt'), 'utf8')).toBe('keep');
    expect(fs.readFileSync(path.join(target, 'cfg.json')).equals(before)).toBe(true);

    // a successful save replaces the folder whole (the stale file goes) and leaves nothing beside it
    await saveSaeLens(loadSaeLens(path.join(FIXTURES, 'jumprelu')), target);
    expect(fs.readdirSync(target).sort()).toEqual(['cfg.json', 'sae_weights.safetensors']);
    expect(readCfg(target).architecture).toBe('jumprelu');
    expect(siblings(target)).toEqual(['sae']);

    // a regular file in the way is not replaced
    const file = path.join(parent, 'file');
    fs.writeFileSync(file, 'x');
    await expectSaeError(async () => await saveSaeLens(sae, file), /exists and is not a folder/);
    expect(fs.readFileSync(file, 'utf8')).toBe('x');
    expect(fs.readdirSync(parent).sort()).toEqual(['file', 'sae']);
  });
});
