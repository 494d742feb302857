import { Rng } from '../../src/engine/random.js';
import type { CircuitPair } from '../../src/circuits/pairs.js';

/**
 * Induction examples [bos, x1..xT, x1..xT] scored at the second repeat's predictable positions (T+1 ..
 * 2T-1). Tokens are drawn from `ids` without repeats inside a sequence when `distinct`.
 */
export function repeatedExamples(opts: {
  n: number;
  T: number;
  bos: number;
  ids: number[];
  seed: number;
  distinct?: boolean;
}): CircuitPair[] {
  const rng = new Rng(opts.seed);
  return Array.from({ length: opts.n }, () => {
    const pool = [...opts.ids];
    const r = Array.from({ length: opts.T }, () =>
      opts.distinct ? pool.splice(rng.int(pool.length), 1)[0]! : pool[rng.int(pool.length)]!,
    );
    const clean = [opts.bos, ...r, ...r];
    return {
      clean,
      corrupt: clean,
      positions: Array.from({ length: opts.T - 1 }, (_, i) => opts.T + 1 + i),
    };
  });
}
