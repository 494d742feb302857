// A layered graph in SVG (circuits, attribution graphs): nodes where the library placed them, edges weighted
// by |weight| (width and opacity) and coloured by sign. Hover or focus a node to see its edges; click or
// Enter pins it (its edges stay highlighted). The graph is one tab stop: arrow keys move between nodes.
import { forwardRef, useMemo, useState, type KeyboardEvent, type ReactNode } from 'react';
import type { PlacedCircuit } from '../../../src/plot/circuit.js';

export interface GraphEdge {
  id: string;
  source: string;
  /** Drawn to each (a GQA k/v edge reaches every query head of its group). */
  targets: string[];
  weight: number;
}

export interface GraphCanvasProps {
  drawing: PlacedCircuit;
  /** The edges to draw (already filtered). */
  edges: GraphEdge[];
  pinned: string | null;
  onPin(id: string | null): void;
  /** Extra lines about a node in the details panel (the edges are listed by the canvas). */
  describe?: (id: string) => ReactNode;
  /** How the details name an edge (default: its id). */
  edgeLabel?: (e: GraphEdge) => string;
  format?: (v: number) => string;
}

const ROW_H = 64;
const LEFT = 130;
const TOP = 76;
const RIGHT = 30;

export const GraphCanvas = forwardRef<SVGSVGElement, GraphCanvasProps>(function GraphCanvas(props, ref) {
  const { drawing, edges, pinned, onPin, describe } = props;
  const edgeLabel = props.edgeLabel ?? ((e: GraphEdge) => e.id);
  const format = props.format ?? ((v: number) => v.toPrecision(4));
  const [hover, setHover] = useState<string | null>(null);
  const unit = Math.max(40, Math.min(180, 1000 / drawing.extent));
  const nRows = drawing.rows.length;
  const bottom = drawing.columns.length ? 90 : 20;
  const width = LEFT + drawing.extent * unit + RIGHT;
  const height = TOP + nRows * ROW_H + bottom;
  const px = (x: number) => LEFT + x * unit;
  const py = (y: number) => TOP + (nRows - 1 - y) * ROW_H + ROW_H / 2;
  const at = useMemo(() => new Map(drawing.nodes.map((n) => [n.id, n] as const)), [drawing]);
  const maxAbs = edges.reduce((m, e) => Math.max(m, Math.abs(e.weight)), 1e-12);
  const touches = (e: GraphEdge, id: string | null) =>
    id !== null && (e.source === id || e.targets.includes(id));
  const lit = new Set(edges.filter((e) => touches(e, pinned) || touches(e, hover)).map((e) => e.id));
  // Strong edges drawn last, on top; highlighted ones above all.
  const order = [...edges].sort(
    (a, b) => Number(lit.has(a.id)) - Number(lit.has(b.id)) || Math.abs(a.weight) - Math.abs(b.weight),
  );
  const shown = hover ?? pinned;

  // Keyboard: left/right along a row, up/down to the nearest node of the next row.
  const byRow = useMemo(() => {
    const rows = new Map<number, typeof drawing.nodes>();
    for (const n of drawing.nodes) rows.set(n.y, [...(rows.get(n.y) ?? []), n]);
    for (const r of rows.values()) r.sort((a, b) => a.x - b.x);
    return rows;
  }, [drawing]);
  const rowYs = [...byRow.keys()].sort((a, b) => a - b);
  // Labels too wide for the room beside their node are slanted (crowded rows such as the top logits).
  const slanted = useMemo(() => {
    const out = new Set<string>();
    for (const row of byRow.values())
      row.forEach((n, i) => {
        const gap = Math.min(
          i > 0 ? n.x - row[i - 1]!.x : Infinity,
          i < row.length - 1 ? row[i + 1]!.x - n.x : Infinity,
        );
        if (gap * unit < 5.5 * n.label.length + 4) out.add(n.id);
      });
    return out;
  }, [byRow, unit]);
  const onKey = (e: KeyboardEvent) => {
    const cur = at.get(hover ?? pinned ?? '') ?? byRow.get(rowYs[0]!)![0]!;
    const row = byRow.get(cur.y)!;
    const i = row.indexOf(cur);
    let next = cur;
    if (e.key === 'ArrowLeft') next = row[Math.max(0, i - 1)]!;
    else if (e.key === 'ArrowRight') next = row[Math.min(row.length - 1, i + 1)]!;
    else if (e.key === 'ArrowUp' || e.key === 'ArrowDown') {
      const ri = rowYs.indexOf(cur.y) + (e.key === 'ArrowUp' ? 1 : -1);
      const other = byRow.get(rowYs[Math.max(0, Math.min(rowYs.length - 1, ri))]!)!;
      next = other.reduce((best, n) => (Math.abs(n.x - cur.x) < Math.abs(best.x - cur.x) ? n : best));
    } else if (e.key === 'Enter' || e.key === ' ') {
      onPin(pinned === cur.id ? null : cur.id);
    } else if (e.key === 'Escape') onPin(null);
    else return;
    e.preventDefault();
    setHover(next.id);
  };

  const incident = shown === null ? [] : edges.filter((e) => touches(e, shown));
  incident.sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight));
  return (
    <figure className="graph-canvas">
      <svg
        ref={ref}
        width={width}
        height={height}
        role="application"
        aria-label={`${drawing.title}: arrow keys move between nodes, Enter pins one`}
        aria-roledescription="graph"
        tabIndex={0}
        onKeyDown={onKey}
        onFocus={() => hover === null && setHover(pinned ?? byRow.get(rowYs[0]!)?.[0]?.id ?? null)}
        onMouseLeave={() => setHover(null)}
        fontFamily="sans-serif"
        fontSize={10}
      >
        <rect width={width} height={height} fill="#fff" />
        <text x={8} y={18} fontSize={14} fontWeight="bold">
          {drawing.title}
        </text>
        <text x={8} y={36} fill="#555">
          {drawing.subtitle}
        </text>
        <text x={8} y={54} fill="#555">
          <tspan fill="#c0392b">■ positive</tspan> <tspan fill="#2f6db5">■ negative</tspan> · width and
          opacity: |weight| {edges.length > 0 && `(largest drawn: ${format(maxAbs)})`}
        </text>
        {drawing.rows.map((r) => (
          <text key={r.y} x={LEFT - 12} y={py(r.y) + 4} textAnchor="end" fill="#555">
            {r.label}
          </text>
        ))}
        {drawing.columns.map((c, i) => (
          <text
            key={i}
            transform={`translate(${px(c.x)}, ${TOP + nRows * ROW_H + 8}) rotate(-45)`}
            textAnchor="end"
            fill="#555"
          >
            {c.label}
          </text>
        ))}
        <g className="edges">
          {order.map((e) => {
            const s = at.get(e.source);
            const strength = Math.abs(e.weight) / maxAbs;
            const on = lit.has(e.id);
            const dim = (pinned !== null || hover !== null) && !on;
            return (
              <g
                key={e.id}
                data-edge={e.id}
                data-score={e.weight}
                data-highlight={on ? 'true' : undefined}
                stroke={e.weight >= 0 ? '#c0392b' : '#2f6db5'}
                strokeWidth={0.5 + 5.5 * strength}
                strokeOpacity={dim ? 0.06 : on ? 0.95 : 0.15 + 0.75 * strength}
              >
                <title>{`${e.id}: ${format(e.weight)}`}</title>
                {s &&
                  e.targets.map((t) => {
                    const d = at.get(t);
                    return d ? <line key={t} x1={px(s.x)} y1={py(s.y)} x2={px(d.x)} y2={py(d.y)} /> : null;
                  })}
              </g>
            );
          })}
        </g>
        <g className="nodes">
          {drawing.nodes.map((n) => (
            <g
              key={n.id}
              data-node={n.id}
              data-kind={n.kind}
              data-pinned={pinned === n.id ? 'true' : undefined}
              transform={`translate(${px(n.x)}, ${py(n.y)})`}
              onMouseEnter={() => setHover(n.id)}
              onClick={() => onPin(pinned === n.id ? null : n.id)}
              style={{ cursor: 'pointer' }}
            >
              <circle
                r={pinned === n.id || hover === n.id ? 8 : 6}
                fill={NODE_FILL[n.kind] ?? '#eee'}
                stroke={pinned === n.id ? '#000' : hover === n.id ? '#444' : '#777'}
                strokeWidth={pinned === n.id ? 2.5 : 1}
              />
              <text
                y={-11}
                textAnchor={slanted.has(n.id) ? 'start' : 'middle'}
                transform={slanted.has(n.id) ? 'rotate(-40 0 -11)' : undefined}
                fontSize={9}
              >
                {n.label}
              </text>
              <title>{n.label}</title>
            </g>
          ))}
        </g>
      </svg>
      <figcaption className="graph-details" aria-live="polite" data-testid="node-details">
        {shown === null ? (
          'hover or focus a node (arrow keys move, Enter pins)'
        ) : (
          <>
            <p>
              <strong data-node-detail={shown}>{at.get(shown)?.label ?? shown}</strong>
              {pinned === shown && ' (pinned)'} · {incident.length} edge{incident.length === 1 ? '' : 's'}
            </p>
            {describe?.(shown)}
            {incident.length > 0 && (
              <table>
                <thead>
                  <tr>
                    <th>edge</th>
                    <th>weight</th>
                  </tr>
                </thead>
                <tbody>
                  {incident.slice(0, 40).map((e) => (
                    <tr key={e.id} data-detail-edge={e.id} data-score={e.weight}>
                      <td>{edgeLabel(e)}</td>
                      <td>{format(e.weight)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {incident.length > 40 && <p>… and {incident.length - 40} more</p>}
          </>
        )}
      </figcaption>
    </figure>
  );
});

const NODE_FILL: Record<string, string> = {
  input: '#ddd',
  logits: '#ddd',
  head: '#fde9c8',
  mlp: '#d5ecd4',
  feature: '#fde9c8',
  error: '#eee',
  token: '#ddd',
  logit: '#ddd',
};
