/**
 * Area under the ROC curve of `scores` separating the `positive` items from the rest: the chance that a
 * random positive scores above a random negative (ties count half; Mann-Whitney U / (P·N)). 1 means every
 * positive outranks every negative, as circuit-discovery papers report against a known circuit.
 */
export function rocAuc(scores: ArrayLike<number>, positive: ArrayLike<boolean>): number {
  const pos: number[] = [];
  const neg: number[] = [];
  for (let i = 0; i < scores.length; i++) (positive[i] ? pos : neg).push(scores[i]!);
  if (pos.length === 0 || neg.length === 0) throw new Error('rocAuc needs positives and negatives');
  let wins = 0;
  for (const p of pos) for (const n of neg) wins += p > n ? 1 : p === n ? 0.5 : 0;
  return wins / (pos.length * neg.length);
}
