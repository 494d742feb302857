import type { CircuitPair } from '../../src/circuits/pairs.js';
import { Rng } from '../../src/engine/random.js';

/**
 * Random clean/corrupt pairs of two lengths (4 of 7 tokens, 3 of 5), the corrupt side differing in about
 * half its tokens, each with a random answer and a different wrong token: data for the circuit methods
 * on the architecture fixtures, where no task is known.
 */
export function randomPairs(vocab: number, seed: number): CircuitPair[] {
  const rng = new Rng(seed);
  const pairs: CircuitPair[] = [];
  for (const [count, P] of [
    [4, 7],
    [3, 5],
  ] as const)
    for (let i = 0; i < count; i++) {
      const clean = Array.from({ length: P }, () => rng.int(vocab));
      const corrupt = clean.map((t) => (rng.next() < 0.5 ? rng.int(vocab) : t));
      const answer = rng.int(vocab);
      pairs.push({ clean, corrupt, answer, wrong: (answer + 1 + rng.int(vocab - 1)) % vocab });
    }
  return pairs;
}

/**
 * Induction pairs for a model with stories260K's tokenizer: [BOS, x_1..x_T, x_1..x_T] clean, [BOS,
 * y_1..y_T, x_1..x_T] corrupt, from ids 259.. (real pieces, not byte fallbacks); the metric scores the
 * second half's predictions of its next token (positions T+1..2T−1). `lengths` lists T per batch.
 */
export function inductionPairs(
  bos: number,
  vocab: number,
  lengths: [count: number, T: number][],
  seed: number,
) {
  const rng = new Rng(seed);
  const draw = (T: number) => Array.from({ length: T }, () => 259 + rng.int(vocab - 259));
  const pairs: CircuitPair[] = [];
  for (const [count, T] of lengths)
    for (let i = 0; i < count; i++) {
      const x = draw(T);
      const y = draw(T);
      const positions = Array.from({ length: T - 1 }, (_, j) => T + 1 + j);
      pairs.push({ clean: [bos, ...x, ...x], corrupt: [bos, ...y, ...x], positions });
    }
  return pairs;
}
