// Shared set-up for the Hub tests: a mock Hub, a fresh cache folder per test, and the HF_* variables
// pointed at them (cleared of anything the machine running the tests has set).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MockHub } from '../../helpers/mock-hub.js';

const HF_VARS = [
  'HF_ENDPOINT',
  'HF_HUB_CACHE',
  'HUGGINGFACE_HUB_CACHE',
  'HF_HOME',
  'HF_TOKEN',
  'HUGGING_FACE_HUB_TOKEN',
  'HF_TOKEN_PATH',
  'HF_HUB_OFFLINE',
  'TRANSFORMERS_OFFLINE',
];

export function clearHfEnv(): void {
  for (const v of HF_VARS) delete process.env[v];
}

/** A fresh temp cache (and HF_HOME beside it, so no real token file is read). */
export function freshCache(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-hub-'));
  process.env.HF_HOME = path.join(root, 'hf-home');
  process.env.HF_HUB_CACHE = path.join(root, 'hub');
  return process.env.HF_HUB_CACHE;
}

/** Deterministic pseudo-random bytes. */
export function bytes(n: number, seed = 1): Buffer {
  const b = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** A small model-like repo: config and tokenizer (git), weights (LFS), and files Sonde must skip. */
export function addTinyRepo(
  hub: MockHub,
  id = 'test-org/tiny',
  opts: Parameters<MockHub['addRepo']>[2] = {},
) {
  return hub.addRepo(
    id,
    {
      'config.json': JSON.stringify({ architectures: ['LlamaForCausalLM'], hidden_size: 8 }),
      'tokenizer.json': JSON.stringify({ model: { type: 'BPE' } }),
      'model.safetensors': bytes(300_000, 7),
      'pytorch_model.bin': bytes(1000, 8),
      'onnx/model.onnx': bytes(2000, 9),
      'README.md': '# tiny\n',
      '.gitattributes': '*.safetensors filter=lfs\n',
    },
    opts,
  );
}

export { MockHub };
