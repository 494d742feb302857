// Small multiples of every head's attention pattern in one layer (query down, key across), as one SVG:
// one tab stop, arrow keys move between heads, Enter or a click chooses one.
import { forwardRef, useState, type KeyboardEvent, type MouseEvent } from 'react';
import { sequential } from '../colour';

export interface HeadsGridProps {
  layer: number;
  /** pattern[head][query][key]. */
  pattern: number[][][];
  chosen: number | null;
  onChoose: (head: number) => void;
}

const THUMB = 120;
const GAP = 16;
const LABEL = 18;
/** Thumbnails draw at most this many cells a side (each the largest weight of its block of tokens). */
const MAX_CELLS = 64;

export const HeadsGrid = forwardRef<SVGSVGElement, HeadsGridProps>(function HeadsGrid(props, ref) {
  const { layer, pattern, chosen, onChoose } = props;
  const H = pattern.length;
  const P = pattern[0]?.length ?? 0;
  const cols = Math.min(H, 8);
  const rowsOfHeads = Math.ceil(H / cols);
  const [at, setAt] = useState<number | null>(null);
  const [hover, setHover] = useState<string | null>(null);
  const block = Math.ceil(P / MAX_CELLS);
  const n = Math.ceil(P / block);
  const cell = THUMB / n;
  const x0 = (h: number) => (h % cols) * (THUMB + GAP);
  const y0 = (h: number) => Math.floor(h / cols) * (THUMB + GAP + LABEL) + LABEL;
  const onKey = (e: KeyboardEvent) => {
    const h = at ?? chosen ?? 0;
    const moves: Record<string, number> = { ArrowLeft: -1, ArrowRight: 1, ArrowUp: -cols, ArrowDown: cols };
    if (e.key in moves) {
      e.preventDefault();
      setHover(null);
      setAt(Math.max(0, Math.min(H - 1, h + moves[e.key]!)));
    } else if (e.key === 'Enter' || e.key === ' ') {
      e.preventDefault();
      onChoose(h);
    }
  };
  const onMove = (h: number, e: MouseEvent<SVGGElement>) => {
    const box = e.currentTarget.getBoundingClientRect();
    const k = Math.floor(((e.clientX - box.left) / box.width) * n) * block;
    const q = Math.floor(((e.clientY - box.top) / box.height) * n) * block;
    const w = pattern[h]?.[q]?.[k];
    setAt(h);
    setHover(w === undefined ? null : `L${layer}H${h}: query ${q} → key ${k}: ${w.toFixed(3)}`);
  };
  const shown = at ?? chosen;
  return (
    <figure className="heads-grid">
      <svg
        ref={ref}
        width={cols * (THUMB + GAP)}
        height={rowsOfHeads * (THUMB + GAP + LABEL)}
        role="listbox"
        aria-label={`heads of layer ${layer}: arrow keys move, Enter opens a head`}
        aria-activedescendant={shown === null ? undefined : `head-${shown}`}
        tabIndex={0}
        onKeyDown={onKey}
        // A click focuses the grid right after its mousemove set `at`: keep that one.
        onFocus={() => setAt((a) => a ?? chosen ?? 0)}
        fontFamily="sans-serif"
        fontSize={12}
      >
        {pattern.map((rows, h) => (
          <g
            key={h}
            id={`head-${h}`}
            role="option"
            aria-selected={chosen === h}
            data-head={h}
            onClick={() => {
              setAt(h);
              onChoose(h);
            }}
            style={{ cursor: 'pointer' }}
          >
            <text x={x0(h)} y={y0(h) - 5} fontWeight={chosen === h ? 'bold' : 'normal'}>
              L{layer}H{h}
            </text>
            <g transform={`translate(${x0(h)}, ${y0(h)})`} onMouseMove={(e) => onMove(h, e)}>
              <rect width={THUMB} height={THUMB} fill="#fff" stroke="#ccc" />
              {Array.from({ length: n }, (_, bq) =>
                Array.from({ length: n }, (_, bk) => {
                  let w = 0;
                  for (let q = bq * block; q < Math.min(P, (bq + 1) * block); q++)
                    for (let k = bk * block; k < Math.min(P, (bk + 1) * block); k++)
                      w = Math.max(w, rows[q]![k]!);
                  return w < 0.01 ? null : (
                    <rect
                      key={`${bq}.${bk}`}
                      x={bk * cell}
                      y={bq * cell}
                      width={cell}
                      height={cell}
                      fill={sequential(w, 1)}
                    />
                  );
                }),
              )}
              <rect
                width={THUMB}
                height={THUMB}
                fill="none"
                stroke={chosen === h ? '#e6550d' : at === h ? '#000' : 'none'}
                strokeWidth={chosen === h ? 3 : 2}
              />
            </g>
          </g>
        ))}
      </svg>
      <figcaption className="inspect" aria-live="polite">
        {hover ??
          (at !== null
            ? `L${layer}H${at}: Enter or click opens its token-to-token view`
            : 'hover a head for weights; click or Enter opens it')}
      </figcaption>
    </figure>
  );
});
