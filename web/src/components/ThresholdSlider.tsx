// Keep the edges with |weight| ≥ a threshold: a slider on a log scale between the smallest and largest
// nonzero |weight|, and a number box for an exact value. The page filters; the library's numbers stay as is.

const STEPS = 200;

export interface ThresholdSliderProps {
  /** |weight| of every edge that can be shown. */
  magnitudes: number[];
  value: number;
  onChange(v: number): void;
  /** Edges kept at `value` (shown beside the slider). */
  kept: number;
  label?: string;
}

/** The smallest and largest nonzero magnitude ([1, 1] when there is none). */
function range(magnitudes: number[]): [number, number] {
  let lo = Infinity;
  let hi = 0;
  for (const m of magnitudes)
    if (m > 0) {
      lo = Math.min(lo, m);
      hi = Math.max(hi, m);
    }
  return hi === 0 ? [1, 1] : [lo, hi];
}

export function ThresholdSlider({
  magnitudes,
  value,
  onChange,
  kept,
  label = '|weight| ≥',
}: ThresholdSliderProps) {
  const [lo, hi] = range(magnitudes);
  const span = Math.log(hi) - Math.log(lo);
  // The ends map to the exact extremes (exp(log x) can miss x by a rounding step).
  const toValue = (i: number) =>
    i <= 0 ? lo : i >= STEPS ? hi : Math.exp(Math.log(lo) + (span * i) / STEPS);
  const toStep = (v: number) =>
    span === 0 ? 0 : Math.round(((Math.log(Math.max(lo, Math.min(hi, v))) - Math.log(lo)) / span) * STEPS);
  return (
    <div className="threshold" role="group" aria-label="edge threshold">
      <label>
        {label}{' '}
        <input
          type="range"
          min={0}
          max={STEPS}
          step={1}
          value={toStep(value)}
          aria-valuetext={value.toPrecision(3)}
          onChange={(e) => onChange(toValue(Number(e.target.value)))}
        />
      </label>
      <label>
        threshold{' '}
        <input
          type="number"
          min={0}
          step="any"
          value={Number(value.toPrecision(6))}
          onChange={(e) => {
            const v = Number(e.target.value);
            if (e.target.value !== '' && Number.isFinite(v) && v >= 0) onChange(v);
          }}
        />
      </label>
      <output data-testid="edges-kept" data-threshold={value} data-kept={kept}>
        {kept} of {magnitudes.length} edges kept
      </output>
    </div>
  );
}
