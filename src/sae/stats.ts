// Statistics of activation rows used to initialise SAEs.

/**
 * The geometric median of rows [n, d] (the point minimising the sum of Euclidean distances), by
 * Weiszfeld's iteration from the mean. Robust to outlier rows, which is why SAELens starts b_dec there.
 */
export function geometricMedian(rows: Float32Array, d: number, iters = 100, tol = 1e-6): Float32Array {
  const n = rows.length / d;
  let y = new Float64Array(d);
  for (let r = 0; r < n; r++) for (let j = 0; j < d; j++) y[j]! += rows[r * d + j]! / n;
  for (let it = 0; it < iters; it++) {
    const next = new Float64Array(d);
    let wsum = 0;
    for (let r = 0; r < n; r++) {
      let ss = 0;
      for (let j = 0; j < d; j++) ss += (rows[r * d + j]! - y[j]!) ** 2;
      const w = 1 / Math.max(Math.sqrt(ss), 1e-8);
      wsum += w;
      for (let j = 0; j < d; j++) next[j]! += w * rows[r * d + j]!;
    }
    let move = 0;
    let norm = 0;
    for (let j = 0; j < d; j++) {
      next[j]! /= wsum;
      move += (next[j]! - y[j]!) ** 2;
      norm += next[j]! ** 2;
    }
    y = next;
    if (Math.sqrt(move) <= tol * Math.max(1, Math.sqrt(norm))) break;
  }
  return Float32Array.from(y);
}
