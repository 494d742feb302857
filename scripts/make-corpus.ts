/**
 * Writes assets/corpus/stories260K-samples.txt: stories sampled from the built-in stories260K at
 * temperature 1 (seed 0), one per paragraph. It is the default training text for the model organisms
 * (so they train without ../shared) and in-distribution text for stories260K.
 *   npx tsx scripts/make-corpus.ts [samples=3000] [out]
 */
import fs from 'node:fs';
import '../src/engine/node.js';
import { sampleCorpus } from '../src/hooks/generate.js';
import { HookedTransformer } from '../src/hooks/hooked-transformer.js';

const samples = Number(process.argv[2] ?? 3000);
const out = process.argv[3] ?? 'assets/corpus/stories260K-samples.txt';
const model = HookedTransformer.load();
const t0 = performance.now();
const texts = await sampleCorpus(model, {
  samples,
  maxTokens: 256,
  temperature: 1,
  seed: 0,
  batch: 100,
  onSample: (_t, i) => {
    if ((i + 1) % 500 === 0)
      console.error(`${i + 1}/${samples} samples, ${((performance.now() - t0) / 1000).toFixed(0)} s`);
  },
});
const tmp = `${out}.tmp-${process.pid}`;
fs.writeFileSync(tmp, texts.map((t) => t.trim()).join('\n\n') + '\n');
fs.renameSync(tmp, out);
console.error(`wrote ${out}: ${texts.length} stories, ${fs.statSync(out).size} bytes`);
