// `npx tsx bench/patching.ts`: a full layer x position resid_pre patching sweep on stories260K, batched
// (each layer's patches in one forward pass that starts at that layer) vs one full forward pass per patch.
import { rerunWithTunedMalloc } from '../src/engine/backend/malloc.js';

const code = await rerunWithTunedMalloc();
if (code !== null) process.exit(code);

await import('../src/engine/node.js');
const { HookedTransformer } = await import('../src/index.js');
const { activationPatching } = await import('../src/methods/patching.js');

const model = HookedTransformer.load();
const opts = {
  clean: 'Once upon a time, there was a little girl named Lily. She liked to play in the park. One day,',
  corrupt: 'Once upon a time, there was a little girl named Tim. She liked to play in the park. One day,',
  answer: 'Lily',
  wrong: 'Tim',
  target: 'resid_pre' as const,
  perPosition: true,
};
const time = async (naive: boolean): Promise<{ ms: number; values: number[] }> => {
  const t = performance.now();
  const r = await activationPatching(model, { ...opts, naive });
  return { ms: performance.now() - t, values: r.values.flat(2) };
};
const reps = 5;
await time(false); // warm-up
await time(true);
const fast: number[] = [];
const naive: number[] = [];
let maxDiff = 0;
for (let i = 0; i < reps; i++) {
  // Interleaved, so that both see the same machine state.
  const f = await time(false);
  const n = await time(true);
  fast.push(f.ms);
  naive.push(n.ms);
  maxDiff = Math.max(maxDiff, ...f.values.map((x, j) => Math.abs(x - n.values[j]!)));
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const P = model.encode(opts.clean).length;
const L = model.cfg.nLayers;
console.log(
  `stories260K resid_pre sweep: ${L} layers x ${P} positions = ${L * P} patched runs (median of ${reps})`,
);
console.log(`  naive (one full forward per patch): ${median(naive).toFixed(1)} ms`);
console.log(`  batched, starting at the patched layer: ${median(fast).toFixed(1)} ms`);
console.log(
  `  speed-up: ${(median(naive) / median(fast)).toFixed(1)}x; max |fast - naive| = ${maxDiff.toExponential(1)}`,
);
