// Memory of a full activation cache at 1024 tokens, in a process of its own (prints one JSON line).
import '../src/engine/node.js';
import { Tensor } from '../src/engine/tensor.js';
import { HookedTransformer } from '../src/hooks/hooked-transformer.js';
import { gpt2SmallConfig, randomWeights } from './gpt2-small.js';

const cfg = gpt2SmallConfig();
const model = new HookedTransformer(cfg, randomWeights(cfg), null, 'bench', 'never');
const P = 1024;
const tokens = new Tensor(
  BigInt64Array.from({ length: P }, (_, i) => BigInt((i * 104729 + 3) % cfg.vocabSize)),
  [1, P],
);
const t0 = performance.now();
const { cache } = model.runWithCache(tokens);
let bytes = 0;
for (const [, t] of cache) bytes += (await t.data()).byteLength;
const ms = performance.now() - t0;
console.log(
  JSON.stringify({
    tokens: P,
    activations: cache.size,
    cacheGiB: bytes / 2 ** 30,
    rssGiB: process.memoryUsage().rss / 2 ** 30,
    ms,
  }),
);
