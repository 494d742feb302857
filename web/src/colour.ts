// Colour scales: diverging scales are symmetric about 0 (±max |value|, or a fixed ±1), so noise near 0
// is drawn pale, never as dark as the largest effect.

/** ±max |value| over the finite values (1 when all are 0). */
export function symmetricDomain(values: number[][]): number {
  let m = 0;
  for (const row of values) for (const v of row) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  return m === 0 ? 1 : m;
}

/** Blue (negative) – white – red (positive), for v in [-max, max]. */
export function diverging(v: number, max: number): string {
  if (!Number.isFinite(v)) return '#ddd';
  const t = Math.max(-1, Math.min(1, v / max));
  const [r, g, b] =
    t >= 0 ? mix([255, 255, 255], [178, 24, 43], t) : mix([255, 255, 255], [33, 102, 172], -t);
  return `rgb(${r}, ${g}, ${b})`;
}

/** White – dark blue, for v in [0, max] (probabilities, attention). */
export function sequential(v: number, max = 1): string {
  const t = Math.max(0, Math.min(1, v / max));
  const [r, g, b] = mix([255, 255, 255], [8, 48, 107], t);
  return `rgb(${r}, ${g}, ${b})`;
}

function mix(a: number[], b: number[], t: number): number[] {
  return a.map((x, i) => Math.round(x + (b[i]! - x) * t));
}

/** Text colour readable on `background` (rgb(...)). */
export function inkOn(background: string): string {
  const [r, g, b] = (background.match(/\d+/g) ?? ['255', '255', '255']).map(Number);
  return 0.299 * r! + 0.587 * g! + 0.114 * b! < 140 ? '#fff' : '#111';
}
