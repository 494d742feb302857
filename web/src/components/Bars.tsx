// A bar chart of signed values in SVG, sorted largest first: positive and negative bars in two colours
// from one zero line, labelled, with hover and keyboard inspection (one tab stop; arrow keys move).
import { forwardRef, useState, type KeyboardEvent } from 'react';

export interface Bar {
  label: string;
  value: number;
  /** More about the bar for the inspection line (its kind, layer, …). */
  detail?: string;
}

export interface BarsProps {
  title: string;
  /** What the values are (the axis title). */
  measure: string;
  bars: Bar[];
  format?: (v: number) => string;
}

export const POSITIVE = '#4c78a8';
export const NEGATIVE = '#e45756';
const ROW = 16;
const PLOT = 420;

export const Bars = forwardRef<SVGSVGElement, BarsProps>(function Bars(props, ref) {
  const { title, measure } = props;
  const format = props.format ?? ((v: number) => v.toFixed(4));
  const bars = [...props.bars].sort((a, b) => b.value - a.value);
  const [at, setAt] = useState<number | null>(null);
  const lo = Math.min(0, ...bars.map((b) => b.value));
  const hi = Math.max(0, ...bars.map((b) => b.value));
  const span = hi - lo || 1;
  const left = 12 + 7 * Math.max(6, ...bars.map((b) => b.label.length));
  const top = 44;
  const x = (v: number) => left + ((v - lo) / span) * PLOT;
  const width = left + PLOT + 70;
  const height = top + bars.length * ROW + 34;
  const describe = (i: number) => {
    const b = bars[i]!;
    return `${b.label}: ${format(b.value)}${b.detail ? ` · ${b.detail}` : ''} (rank ${i + 1} of ${bars.length})`;
  };
  const onKey = (e: KeyboardEvent) => {
    const step = {
      ArrowUp: -1,
      ArrowDown: 1,
      ArrowLeft: -1,
      ArrowRight: 1,
      Home: -bars.length,
      End: bars.length,
    }[e.key];
    if (step === undefined) return;
    e.preventDefault();
    setAt(Math.max(0, Math.min(bars.length - 1, (at ?? 0) + step)));
  };
  return (
    <figure className="bars">
      <svg
        ref={ref}
        width={width}
        height={height}
        role="list"
        aria-label={title}
        tabIndex={0}
        onKeyDown={onKey}
        onFocus={() => at === null && bars.length > 0 && setAt(0)}
        fontFamily="sans-serif"
        fontSize={11}
      >
        <text x={8} y={16} fontSize={14} fontWeight="bold">
          {title}
        </text>
        <text x={8} y={32} fill="#555">
          {measure}
        </text>
        {bars.map((b, i) => {
          const y = top + i * ROW;
          const x0 = x(Math.min(0, b.value));
          const chosen = at === i;
          return (
            <g
              key={b.label}
              role="listitem"
              data-label={b.label}
              data-value={b.value}
              onMouseEnter={() => setAt(i)}
            >
              <text
                x={left - 6}
                y={y + ROW / 2 + 4}
                textAnchor="end"
                fontWeight={chosen ? 'bold' : undefined}
              >
                {b.label}
              </text>
              <rect
                x={x0}
                y={y + 2}
                width={Math.max(1, Math.abs(x(b.value) - x(0)))}
                height={ROW - 4}
                fill={b.value >= 0 ? POSITIVE : NEGATIVE}
                stroke={chosen ? '#000' : 'none'}
                strokeWidth={2}
              />
              <title>{describe(i)}</title>
            </g>
          );
        })}
        <line x1={x(0)} x2={x(0)} y1={top - 4} y2={top + bars.length * ROW} stroke="#333" />
        <g className="axis">
          {[...new Set([lo, 0, hi])].map((v, i) => (
            <text key={i} x={x(v)} y={top + bars.length * ROW + 16} textAnchor="middle" fill="#555">
              {format(v)}
            </text>
          ))}
        </g>
      </svg>
      <figcaption className="inspect" aria-live="polite">
        {at !== null && at < bars.length ? describe(at) : 'hover or focus a bar (arrow keys move)'}
      </figcaption>
    </figure>
  );
});
