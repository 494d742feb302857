import type { TopLevelSpec } from 'vega-lite';

/**
 * A node of a drawn circuit: `layer` is its row (drawn bottom to top: inputs low, logits high), `position`
 * its column (a token position) when it has one; nodes without a position are spread across their row.
 */
export interface CircuitPlotNode {
  id: string;
  layer: number;
  position?: number;
  label?: string;
  /** A group shown by the node's colour (e.g. 'feature', 'error', 'token', 'logit', 'head', 'mlp'). */
  kind?: string;
}

export interface CircuitPlotEdge {
  source: string;
  target: string;
  weight: number;
}

export interface CircuitPlot {
  title: string;
  subtitle?: string;
  nodes: CircuitPlotNode[];
  edges: CircuitPlotEdge[];
  /** Names of the rows (e.g. 'embeddings', 'layer 0', ..., 'logits'), by layer value; default 'layer L'. */
  rowLabels?: Map<number, string>;
  /** Names of the columns (e.g. the prompt's tokens), by position. */
  columnLabels?: string[];
}

export interface Placed {
  id: string;
  x: number;
  y: number;
  label: string;
  kind: string;
}

/** Horizontal room one node takes in a crowded cell (a lone node's column is 1 wide). */
const NODE_ROOM = 0.45;

export interface CircuitLayout {
  nodes: Placed[];
  /** Centre of each position's column (none without positions). */
  centres: number[];
  /** x runs over [0, extent]. */
  extent: number;
}

/**
 * Node coordinates: rows by layer (in order of the distinct layers), columns by position, each column as
 * wide as its most crowded cell needs, the nodes sharing a cell side by side; without positions, a row's
 * nodes spread over the whole width.
 */
export function layoutCircuit(nodes: readonly CircuitPlotNode[]): CircuitLayout {
  const layers = [...new Set(nodes.map((n) => n.layer))].sort((a, b) => a - b);
  const row = new Map(layers.map((l, i) => [l, i] as const));
  const cells = new Map<string, CircuitPlotNode[]>();
  for (const n of nodes) {
    const key = `${n.layer}|${n.position ?? ''}`;
    cells.set(key, [...(cells.get(key) ?? []), n]);
  }
  const nPos = nodes.reduce((m, n) => Math.max(m, n.position === undefined ? 0 : n.position + 1), 0);
  const crowd = new Array<number>(nPos).fill(0);
  let rowCrowd = 0;
  for (const group of cells.values()) {
    const p = group[0]!.position;
    if (p === undefined) rowCrowd = Math.max(rowCrowd, group.length);
    else crowd[p] = Math.max(crowd[p]!, group.length);
  }
  const widths = crowd.map((c) => Math.max(1, c * NODE_ROOM));
  const starts = widths.map((_, i) => widths.slice(0, i).reduce((a, b) => a + b, 0));
  const extent = Math.max(
    1,
    rowCrowd * NODE_ROOM,
    widths.reduce((a, b) => a + b, 0),
  );
  const placed: Placed[] = [];
  for (const group of cells.values()) {
    const p = group[0]!.position;
    // Nodes share 80% of their column (or the whole width without positions) evenly.
    const [left, width] = p === undefined ? [0, extent] : [starts[p]! + 0.1 * widths[p]!, 0.8 * widths[p]!];
    group.forEach((n, i) =>
      placed.push({
        id: n.id,
        x: left + (width * (i + 0.5)) / group.length,
        y: row.get(n.layer)!,
        label: n.label ?? n.id,
        kind: n.kind ?? 'node',
      }),
    );
  }
  return { nodes: placed, centres: starts.map((s, i) => s + widths[i]! / 2), extent };
}

/** A drawing with its nodes placed, as plain JSON (what the web explorer draws; rows and columns labelled). */
export interface PlacedCircuit {
  title: string;
  subtitle: string;
  nodes: Placed[];
  /** Row y (0 = the lowest row) and its label. */
  rows: { y: number; label: string }[];
  /** Column centre x and its label (none without positions). */
  columns: { x: number; label: string }[];
  /** x runs over [0, extent]. */
  extent: number;
}

/** The layout of `c` with the row and column labels it draws: one place decides where every node goes. */
export function placeCircuit(c: CircuitPlot): PlacedCircuit {
  const layout = layoutCircuit(c.nodes);
  const rows = [...new Set(c.nodes.map((n) => n.layer))].sort((a, b) => a - b);
  return {
    title: c.title,
    subtitle: c.subtitle ?? '',
    nodes: layout.nodes,
    rows: rows.map((l, y) => ({ y, label: c.rowLabels?.get(l) ?? `layer ${l}` })),
    columns: (c.columnLabels ?? []).flatMap((label, i) =>
      layout.centres[i] === undefined ? [] : [{ x: layout.centres[i]!, label }],
    ),
    extent: layout.extent,
  };
}

/**
 * A circuit as a Vega-Lite spec: nodes placed by layer (rows) and position (columns), edges as lines whose
 * width and opacity grow with |weight|, red for positive and blue for negative weights (as the heatmaps).
 */
export function circuitSpec(c: CircuitPlot): TopLevelSpec {
  const layout = layoutCircuit(c.nodes);
  const placed = layout.nodes;
  const at = new Map(placed.map((p) => [p.id, p] as const));
  const drawn = c.edges.filter((e) => at.has(e.source) && at.has(e.target));
  // A reduce, not Math.max(...): a whole circuit graph can have more edges than a call has arguments.
  const maxAbs = drawn.reduce((m, e) => Math.max(m, Math.abs(e.weight)), 1e-12);
  const edges = drawn
    .map((e) => {
      const s = at.get(e.source)!;
      const t = at.get(e.target)!;
      return {
        x: s.x,
        y: s.y,
        x2: t.x,
        y2: t.y,
        weight: e.weight,
        strength: Math.abs(e.weight) / maxAbs,
        sign: e.weight >= 0 ? 'positive' : 'negative',
        edge: `${e.source} -> ${e.target}`,
      };
    })
    // Strong edges drawn last, on top.
    .sort((a, b) => a.strength - b.strength);
  const rows = [...new Set(c.nodes.map((n) => n.layer))].sort((a, b) => a - b);
  const rowNames = rows.map((l) => c.rowLabels?.get(l) ?? `layer ${l}`);
  const xLabels = c.columnLabels ?? [];
  // Axis labels by value: the row index, or the column's centre (numbers key an object as strings).
  const labelAt = (values: number[], names: string[]) =>
    `(${JSON.stringify(Object.fromEntries(values.map((v, i) => [String(v), names[i] ?? ''])))})[datum.value] || ''`;
  const centres = layout.centres.slice(0, xLabels.length);
  const x = {
    type: 'quantitative',
    scale: { domain: [0, layout.extent], nice: false, zero: false },
    axis: centres.length
      ? {
          values: centres,
          labelExpr: labelAt(centres, xLabels),
          labelAngle: -45,
          grid: false,
          title: null,
        }
      : null,
  } as const;
  const y = {
    type: 'quantitative',
    scale: { domain: [-0.5, rows.length - 0.5], nice: false, zero: false },
    axis: {
      values: rows.map((_, i) => i),
      labelExpr: labelAt(
        rows.map((_, i) => i),
        rowNames,
      ),
      grid: false,
      title: null,
    },
  } as const;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: c.title, subtitle: c.subtitle ?? '' },
    width: Math.max(300, Math.min(1400, 90 * layout.extent)),
    height: Math.max(200, Math.min(900, 90 * rows.length)),
    layer: [
      {
        data: { values: edges },
        mark: { type: 'rule' },
        encoding: {
          x: { field: 'x', ...x },
          y: { field: 'y', ...y },
          x2: { field: 'x2' },
          y2: { field: 'y2' },
          strokeWidth: {
            field: 'strength',
            type: 'quantitative',
            scale: { domain: [0, 1], range: [0.3, 6] },
            legend: null,
          },
          opacity: {
            field: 'strength',
            type: 'quantitative',
            scale: { domain: [0, 1], range: [0.15, 0.9] },
            legend: null,
          },
          color: {
            field: 'sign',
            type: 'nominal',
            title: 'edge weight',
            scale: { domain: ['positive', 'negative'], range: ['#c0392b', '#2f6db5'] },
          },
          tooltip: [
            { field: 'edge', type: 'nominal' },
            { field: 'weight', type: 'quantitative', format: '.4f' },
          ],
        },
      },
      {
        data: { values: placed },
        mark: { type: 'point', filled: true, size: 90, stroke: 'black', strokeWidth: 0.5 },
        encoding: {
          x: { field: 'x', ...x },
          y: { field: 'y', ...y },
          shape: { field: 'kind', type: 'nominal', title: 'node' },
          fill: { value: '#f2f2f2' },
          tooltip: [{ field: 'label', type: 'nominal' }],
        },
      },
      {
        data: { values: placed },
        mark: { type: 'text', dy: -11, fontSize: 8 },
        encoding: {
          x: { field: 'x', ...x },
          y: { field: 'y', ...y },
          text: { field: 'label' },
        },
      },
    ],
  } as unknown as TopLevelSpec;
}
