// Universality check: two induction organisms from different seeds grow the same circuit, and their
// residual streams line up layer by layer. The seed-1 organism is a committed fixture (training it takes
// 2-3 minutes on two cores); SONDE_SLOW_TESTS=1 trains it afresh instead.
import '../../src/engine/node.js';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { HookedTransformer } from '../../src/hooks/hooked-transformer.js';
import { headScores } from '../../src/methods/heads.js';
import { similarityMatrix } from '../../src/methods/similarity.js';
import { trainInduction } from '../../src/organisms/induction.js';

const given = process.env.SONDE_SLOW_TESTS === '1' ? undefined : 'test/fixtures/induction-2l-seed1';

const TEXTS = [
  'Once upon a time, there was a little girl named Lily. She liked to play in the park with her dog.',
  'Tom had a big red ball. He wanted to share it with his friend Sam, but Sam was sad.',
  'One day, a bird flew into the garden. The bird was hungry and looked for food.',
  'Lily and Ben went to the beach. They built a big sand castle and found a shell.',
];

describe('induction organisms from seeds 0 and 1', () => {
  it('both have a layer-0 previous-token head and a layer-1 induction head; CKA is diagonal-dominant', async () => {
    let dir = given;
    if (!dir || !fs.existsSync(dir)) {
      dir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-induction-seed1-')), 'model');
      await trainInduction({ seed: 1, steps: 2500, out: dir, scoreEvery: 2500 });
    }
    const a = HookedTransformer.load('test/fixtures/induction-2l');
    const b = HookedTransformer.load(dir);
    for (const m of [a, b]) {
      const s = headScores(m, { seqLen: 40, batch: 8, seed: 12345 });
      expect(Math.max(...s.previousToken[0]!)).toBeGreaterThan(0.4);
      expect(Math.max(...s.induction[1]!)).toBeGreaterThan(0.4);
    }
    const cka = similarityMatrix(a, b, TEXTS);
    expect(cka.rows).toEqual([
      'blocks.0.hook_resid_pre',
      'blocks.1.hook_resid_pre',
      'blocks.1.hook_resid_post',
    ]);
    cka.values.forEach((r, i) => r.forEach((v, j) => j !== i && expect(r[i]!).toBeGreaterThan(v)));
    cka.values.forEach((r, i) => expect(r[i]!).toBeGreaterThan(cka.values[(i + 1) % 3]![i]!));
  }, 400_000);
});
