// A labelled heatmap (rows × columns) in SVG: symmetric diverging colours by default, a legend, hover
// and keyboard inspection (the grid is one tab stop; arrow keys move the inspected cell).
import { forwardRef, useState, type KeyboardEvent } from 'react';
import { diverging, inkOn, sequential, symmetricDomain } from '../colour';

export interface HeatmapProps {
  title: string;
  rows: string[];
  columns: string[];
  /** values[row][column]. */
  values: number[][];
  rowAxis: string;
  columnAxis: string;
  /** 'symmetric': ±max |value| (default); a number: fixed ±that; 'probability': white–blue over [0, 1]. */
  scale?: 'symmetric' | number | 'probability';
  /** Text inside each cell (e.g. the top token); default: none. */
  cellText?: (row: number, col: number) => string;
  /** What the inspection line says about a cell (default: its labels and value). */
  describe?: (row: number, col: number) => string;
  format?: (v: number) => string;
  /** Extra data-* attributes of each cell (exact numbers a test compares, e.g. the top token's id). */
  cellData?: (row: number, col: number) => Record<`data-${string}`, string | number>;
}

const CELL = 28;

export const Heatmap = forwardRef<SVGSVGElement, HeatmapProps>(function Heatmap(props, ref) {
  const { title, rows, columns, values, rowAxis, columnAxis, scale = 'symmetric', cellText } = props;
  const format = props.format ?? ((v: number) => v.toFixed(3));
  const [at, setAt] = useState<[number, number] | null>(null);
  const max = scale === 'symmetric' ? symmetricDomain(values) : scale === 'probability' ? 1 : scale;
  const colour = (v: number) => (scale === 'probability' ? sequential(v, 1) : diverging(v, max));
  const cellW = cellText ? 56 : CELL;
  const left = 8 + 7 * Math.max(4, ...rows.map((r) => r.length));
  const top = 40;
  const bottom = 8 + 6 * Math.max(4, ...columns.map((c) => c.length));
  const width = left + columns.length * cellW + 90;
  const height = top + rows.length * CELL + bottom + 20;
  const describe =
    props.describe ??
    ((r: number, c: number) =>
      `${rowAxis} ${rows[r]} · ${columnAxis} ${columns[c]}: ${format(values[r]![c]!)}`);
  const onKey = (e: KeyboardEvent) => {
    const [r, c] = at ?? [0, 0];
    const moves: Record<string, [number, number]> = {
      ArrowUp: [-1, 0],
      ArrowDown: [1, 0],
      ArrowLeft: [0, -1],
      ArrowRight: [0, 1],
    };
    const m = moves[e.key];
    if (!m) return;
    e.preventDefault();
    setAt([
      Math.max(0, Math.min(rows.length - 1, r + m[0])),
      Math.max(0, Math.min(columns.length - 1, c + m[1])),
    ]);
  };
  return (
    <figure className="heatmap">
      <svg
        ref={ref}
        width={width}
        height={height}
        role="grid"
        aria-label={title}
        tabIndex={0}
        onKeyDown={onKey}
        onFocus={() => at === null && setAt([0, 0])}
        fontFamily="sans-serif"
        fontSize={11}
      >
        <text x={left} y={16} fontSize={14} fontWeight="bold">
          {title}
        </text>
        <text x={left} y={32} fill="#555">
          {rowAxis} × {columnAxis}
        </text>
        {rows.map((row, r) => (
          <g key={r} role="row">
            <text x={left - 4} y={top + r * CELL + CELL / 2 + 4} textAnchor="end">
              {row}
            </text>
            {columns.map((_, c) => {
              const v = values[r]![c]!;
              const fill = colour(v);
              const chosen = at !== null && at[0] === r && at[1] === c;
              return (
                <g
                  key={c}
                  role="gridcell"
                  data-row={r}
                  data-col={c}
                  data-value={v}
                  {...props.cellData?.(r, c)}
                  onMouseEnter={() => setAt([r, c])}
                >
                  <rect
                    x={left + c * cellW}
                    y={top + r * CELL}
                    width={cellW - 1}
                    height={CELL - 1}
                    fill={fill}
                    stroke={chosen ? '#000' : 'none'}
                    strokeWidth={2}
                  />
                  {cellText && (
                    <text
                      x={left + c * cellW + cellW / 2}
                      y={top + r * CELL + CELL / 2 + 4}
                      textAnchor="middle"
                      fill={inkOn(fill)}
                      fontSize={10}
                    >
                      {cellText(r, c)}
                    </text>
                  )}
                  <title>{describe(r, c)}</title>
                </g>
              );
            })}
          </g>
        ))}
        {columns.map((col, c) => (
          <text
            key={c}
            transform={`translate(${left + c * cellW + cellW / 2 + 4}, ${top + rows.length * CELL + 6}) rotate(-60)`}
            textAnchor="end"
          >
            {col}
          </text>
        ))}
        <Legend
          x={left + columns.length * cellW + 16}
          y={top}
          max={max}
          probability={scale === 'probability'}
          format={format}
        />
      </svg>
      <figcaption className="inspect" aria-live="polite">
        {at ? describe(at[0], at[1]) : 'hover or focus a cell (arrow keys move)'}
      </figcaption>
    </figure>
  );
});

function Legend({
  x,
  y,
  max,
  probability,
  format,
}: {
  x: number;
  y: number;
  max: number;
  probability: boolean;
  format: (v: number) => string;
}) {
  const steps = 20;
  const h = 120;
  const lo = probability ? 0 : -max;
  return (
    <g className="legend">
      {Array.from({ length: steps }, (_, i) => {
        const v = max - ((max - lo) * i) / (steps - 1);
        return (
          <rect
            key={i}
            x={x}
            y={y + (i * h) / steps}
            width={12}
            height={h / steps + 0.5}
            fill={probability ? sequential(v, 1) : diverging(v, max)}
          />
        );
      })}
      <text x={x + 16} y={y + 8}>
        {format(max)}
      </text>
      <text x={x + 16} y={y + h}>
        {format(lo)}
      </text>
    </g>
  );
}
