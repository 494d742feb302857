// A histogram in SVG (bins given by their edges, as the library's histograms): hover or arrow keys
// inspect a bin (the chart is one tab stop); each bar carries its exact count and edges in data-*.
import { forwardRef, useState, type KeyboardEvent } from 'react';

export interface BarHistogramProps {
  title: string;
  /** bins + 1 edges; bin i is [edges[i], edges[i+1]). */
  edges: number[];
  counts: number[];
  xTitle: string;
  /** Bars drawn in this colour (default blue), or by the bin's centre (e.g. negative blue, positive red). */
  colour?: (centre: number) => string;
  format?: (v: number) => string;
  testId?: string;
}

const W = 380;
const H = 170;
const M = { left: 44, right: 10, top: 28, bottom: 36 };

export const BarHistogram = forwardRef<SVGSVGElement, BarHistogramProps>(function BarHistogram(p, ref) {
  const { edges, counts } = p;
  const format = p.format ?? ((v: number) => v.toPrecision(3));
  const [at, setAt] = useState<number | null>(null);
  const most = Math.max(1, ...counts);
  const bw = (W - M.left - M.right) / Math.max(1, counts.length);
  const y = (n: number) => M.top + (H - M.top - M.bottom) * (1 - n / most);
  const describe = (i: number) =>
    `[${format(edges[i]!)}, ${format(edges[i + 1]!)}${i === counts.length - 1 ? ']' : ')'}: ${counts[i]}`;
  const onKey = (e: KeyboardEvent) => {
    const step = e.key === 'ArrowRight' ? 1 : e.key === 'ArrowLeft' ? -1 : 0;
    if (!step) return;
    e.preventDefault();
    setAt(Math.max(0, Math.min(counts.length - 1, (at ?? -1) + step)));
  };
  return (
    <figure className="histogram" data-testid={p.testId}>
      <svg
        ref={ref}
        width={W}
        height={H}
        role="img"
        aria-label={p.title}
        tabIndex={0}
        onKeyDown={onKey}
        onFocus={() => at === null && setAt(0)}
        onMouseLeave={() => setAt(null)}
        fontFamily="sans-serif"
        fontSize={10}
      >
        <text x={M.left} y={14} fontSize={12} fontWeight="bold">
          {p.title}
        </text>
        {counts.map((n, i) => {
          const centre = (edges[i]! + edges[i + 1]!) / 2;
          return (
            <rect
              key={i}
              className="bar"
              data-bin={i}
              data-count={n}
              data-lo={edges[i]}
              data-hi={edges[i + 1]}
              x={M.left + i * bw + 0.5}
              y={y(n)}
              width={Math.max(1, bw - 1)}
              height={H - M.bottom - y(n)}
              fill={p.colour ? p.colour(centre) : '#2171b5'}
              stroke={at === i ? '#000' : 'none'}
              onMouseEnter={() => setAt(i)}
            >
              <title>{describe(i)}</title>
            </rect>
          );
        })}
        <line x1={M.left} x2={W - M.right} y1={H - M.bottom} y2={H - M.bottom} stroke="#333" />
        <line x1={M.left} x2={M.left} y1={M.top} y2={H - M.bottom} stroke="#333" />
        <text x={M.left - 4} y={M.top + 4} textAnchor="end">
          {most}
        </text>
        <text x={M.left - 4} y={H - M.bottom} textAnchor="end">
          0
        </text>
        <text x={M.left} y={H - M.bottom + 12} textAnchor="middle">
          {format(edges[0] ?? 0)}
        </text>
        <text x={W - M.right} y={H - M.bottom + 12} textAnchor="end">
          {format(edges[edges.length - 1] ?? 0)}
        </text>
        <text x={(M.left + W - M.right) / 2} y={H - 6} textAnchor="middle" fill="#555">
          {p.xTitle}
        </text>
      </svg>
      <figcaption className="inspect" aria-live="polite">
        {at === null ? ' ' : describe(at)}
      </figcaption>
    </figure>
  );
});
