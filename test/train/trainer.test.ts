import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import '../../src/engine/node.js';
import { Rng } from '../../src/engine/random.js';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { loadTokenizer } from '../../src/io/tokenizer.js';
import { defaultModelDir } from '../../src/models/load.js';
import { saveGpt2 } from '../../src/models/save.js';
import { attnOnlyConfig, defaultCorpus, initWeights } from '../../src/organisms/induction.js';
import { DatasetError, tokenizeFile, TokenDataset } from '../../src/train/dataset.js';
import { train, TrainError } from '../../src/train/trainer.js';
import { CheckpointError, CheckpointSettingsError } from '../../src/train/checkpoint.js';
import { gpt2Config } from '../../src/models/gpt2.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-train-'));
afterAll(() => fs.rmSync(tmp, { recursive: true, force: true }));

const tokenizer = loadTokenizer(defaultModelDir());
// The first ~60 stories of the built-in corpus: enough text for windows of 32 tokens.
const textPath = path.join(tmp, 'corpus.txt');
fs.writeFileSync(textPath, fs.readFileSync(defaultCorpus(), 'utf8').split('\n\n').slice(0, 60).join('\n\n'));
const data = tokenizeFile(textPath, tokenizer, path.join(tmp, 'tokens.bin'));

const tinyCfg = () =>
  attnOnlyConfig({ layers: 2, dModel: 32, heads: 2, ctx: 32, layerNorm: true, vocabSize: 512 });
const opts = { batchSize: 4, ctx: 32, lr: 3e-3, seed: 7, clipNorm: 1 };

describe('token dataset', () => {
  it('tokenizes once, reads windows, and samples deterministically', async () => {
    expect(data.meta.dtype).toBe('uint16');
    const text = fs.readFileSync(textPath, 'utf8').split('\n\n')[0]!.trim();
    expect(Array.from(data.window(0, 10))).toEqual(tokenizer.encode(text).slice(0, 10));
    const a = data.sampleBatch(new Rng(3), 4, 16).toArraySync();
    const b = data.sampleBatch(new Rng(3), 4, 16).toArraySync();
    expect(a).toEqual(b);
    expect(data.sampleBatch(new Rng(4), 4, 16).toArraySync()).not.toEqual(a);
    // Reopening reuses the token file.
    const again = tokenizeFile(textPath, tokenizer, path.join(tmp, 'tokens.bin'));
    expect(again.length).toBe(data.length);
  });

  it('explains unreadable corpora and damaged token files', () => {
    expect(() => tokenizeFile(path.join(tmp, 'missing.txt'), tokenizer, path.join(tmp, 'x.bin'))).toThrow(
      DatasetError,
    );
    expect(() => tokenizeFile(path.join(tmp, 'missing.txt'), tokenizer, path.join(tmp, 'x.bin'))).toThrow(
      /missing\.txt/,
    );
    const bad = path.join(tmp, 'bad.bin');
    fs.writeFileSync(bad, new Uint8Array(10));
    fs.writeFileSync(`${bad}.json`, JSON.stringify({ ...data.meta, count: 100 }));
    expect(() => TokenDataset.open(bad)).toThrow(/metadata says 100/);
  });
});

describe('trainer', async () => {
  it('lowers the loss', async () => {
    const cfg = tinyCfg();
    const w = initWeights(cfg, 1);
    const r = await train(cfg, w, data, { ...opts, steps: 60 });
    const first = r.losses.slice(0, 5).reduce((a, b) => a + b) / 5;
    const last = r.losses.slice(-5).reduce((a, b) => a + b) / 5;
    expect(last).toBeLessThan(first - 0.5);
  });

  it('resumes exactly: k steps, stop, resume to N equals N steps straight', async () => {
    const cfg = tinyCfg();
    const straight = initWeights(cfg, 2);
    await train(cfg, straight, data, { ...opts, steps: 12 });
    const ckpt = path.join(tmp, 'resume.ckpt');
    const a = initWeights(cfg, 2);
    const first = await train(cfg, a, data, { ...opts, steps: 12, stopAfter: 5, checkpointDir: ckpt });
    expect(first.step).toBe(5);
    const b = initWeights(cfg, 99); // different init: everything must come from the checkpoint
    const second = await train(cfg, b, data, { ...opts, steps: 12, checkpointDir: ckpt });
    expect(second.resumedFrom).toBe(5);
    expect(second.losses).toHaveLength(12);
    for (const [n, t] of straight)
      expect(Array.from(await b.get(n)!.f32()), n).toEqual(Array.from(await t.f32()));
  });

  it('survives a kill during a checkpoint write', async () => {
    const cfg = tinyCfg();
    const ckpt = path.join(tmp, 'kill.ckpt');
    await train(cfg, initWeights(cfg, 3), data, { ...opts, steps: 6, stopAfter: 4, checkpointDir: ckpt });
    // A save that died half-way: a partial temp folder and the previous checkpoint moved aside.
    fs.mkdirSync(`${ckpt}.tmp-12345-1`);
    fs.writeFileSync(`${ckpt}.tmp-12345-1/model.safetensors`, 'partial');
    fs.renameSync(ckpt, `${ckpt}.old-12345-1`);
    const w = initWeights(cfg, 4);
    const r = await train(cfg, w, data, { ...opts, steps: 6, checkpointDir: ckpt });
    expect(r.resumedFrom).toBe(4);
    expect(r.step).toBe(6);
  });

  it('refuses to resume with other settings, naming each (old → new), and starts over without resume', async () => {
    const cfg = tinyCfg();
    const ckpt = path.join(tmp, 'settings.ckpt');
    await train(cfg, initWeights(cfg, 6), data, { ...opts, steps: 6, stopAfter: 2, checkpointDir: ckpt });
    const resume = (over: Partial<typeof opts>) =>
      train(cfg, initWeights(cfg, 6), data, { ...opts, steps: 6, checkpointDir: ckpt, ...over });
    await expect(resume({ lr: opts.lr * 2, seed: 8 })).rejects.toThrow(CheckpointSettingsError);
    await expect(resume({ lr: opts.lr * 2, seed: 8 })).rejects.toThrow(
      `(step 2) was made with other settings: lr ${opts.lr} → ${opts.lr * 2}, seed 7 → 8;`,
    );
    await expect(resume({ steps: 8 } as Partial<typeof opts>)).rejects.toThrow(/steps 6 → 8/);
    expect((await resume({})).resumedFrom).toBe(2);
    expect((await resume({ lr: opts.lr * 2, resume: false } as Partial<typeof opts>)).resumedFrom).toBeNull();
  });

  it('refuses a checkpoint of another model and bad hyper-parameters', async () => {
    const ckpt = path.join(tmp, 'other.ckpt');
    await train(tinyCfg(), initWeights(tinyCfg(), 5), data, { ...opts, steps: 2, checkpointDir: ckpt });
    const other = attnOnlyConfig({
      layers: 1,
      dModel: 32,
      heads: 2,
      ctx: 32,
      layerNorm: true,
      vocabSize: 512,
    });
    await expect(
      train(other, initWeights(other, 5), data, { ...opts, steps: 4, checkpointDir: ckpt }),
    ).rejects.toThrow(CheckpointError);
    const cfg = tinyCfg();
    await expect(train(cfg, initWeights(cfg, 1), data, { ...opts, steps: 0 })).rejects.toThrow(TrainError);
    await expect(train(cfg, initWeights(cfg, 1), data, { ...opts, steps: 3, lr: -1 })).rejects.toThrow(
      /learning rate/,
    );
    await expect(train(cfg, initWeights(cfg, 1), data, { ...opts, steps: 3, ctx: 64 })).rejects.toThrow(
      /longer than the model/,
    );
  });

  it('saves an HF folder that loads and computes the same logits', async () => {
    const cfg = tinyCfg();
    const w = initWeights(cfg, 6);
    await train(cfg, w, data, { ...opts, steps: 3 });
    const dir = path.join(tmp, 'saved');
    saveGpt2(dir, cfg, w, defaultModelDir());
    const loaded = HookedTransformer.load(dir);
    const inMemory = new HookedTransformer(cfg, w, tokenizer);
    expect(loaded.cfg.attnOnly).toBe(true);
    expect(loaded.hookNames()).not.toContain('blocks.0.hook_resid_mid');
    expect(Array.from(await loaded.run('Once upon a time').f32())).toEqual(
      Array.from(await inMemory.run('Once upon a time').f32()),
    );
    // A full GPT-2 (with MLPs) round-trips too.
    const full = gpt2Config({ n_embd: 16, n_head: 2, n_layer: 1, n_positions: 16, vocab_size: 512 });
    const fw = initWeights({ ...full, attnOnly: true }, 1);
    expect(() => saveGpt2(path.join(tmp, 'full'), full, fw)).toThrow(/cannot save: weight 'blocks\.0\./);
  });
});
