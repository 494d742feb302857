import type { TopLevelSpec } from 'vega-lite';

export interface HeatmapPlot {
  title: string;
  subtitle: string;
  /** Row and column labels, in drawing order; values[row][column]. Non-finite values are left blank. */
  rows: string[];
  columns: string[];
  values: number[][];
  /** The colour legend's title (what a cell's value is). */
  valueTitle: string;
  /** Axis titles (null: none, the labels say it). */
  rowTitle?: string | null;
  columnTitle?: string | null;
  /**
   * The smallest half-width of the diverging scale: 1 for a normalised metric (0 = corrupt, 1 = clean),
   * so a -0.003 cell stays pale; 0 for raw values. Larger values widen it (nothing is clamped).
   */
  atLeast?: number;
}

/**
 * The domain of a diverging scale centred on 0: ±max(|value|, atLeast). Centring with the data's own
 * extremes (domainMid) stretches each side separately, so -0.003 is drawn as dark as +1.0.
 */
export function symmetricDomain(values: number[][], atLeast = 0): [number, number] {
  let m = atLeast;
  for (const row of values) for (const v of row) if (Number.isFinite(v)) m = Math.max(m, Math.abs(v));
  if (m === 0) m = 1; // all zeros: any symmetric domain draws them white
  return [-m, m];
}

/** A heatmap of signed values on a red (positive) / blue (negative) scale symmetric about 0. */
export function divergingHeatmapSpec(h: HeatmapPlot): TopLevelSpec {
  const data = h.values.flatMap((row, i) =>
    row.map((v, j) => ({ row: h.rows[i]!, column: h.columns[j]!, value: Number.isFinite(v) ? v : null })),
  );
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: h.title, subtitle: h.subtitle },
    data: { values: data },
    mark: 'rect',
    width: Math.max(200, Math.min(900, 28 * h.columns.length)),
    height: Math.max(120, Math.min(900, 22 * h.rows.length)),
    encoding: {
      x: {
        field: 'column',
        type: 'ordinal',
        sort: h.columns,
        title: h.columnTitle ?? null,
        axis: { labelAngle: -60 },
      },
      y: { field: 'row', type: 'ordinal', sort: h.rows, title: h.rowTitle ?? null },
      color: {
        field: 'value',
        type: 'quantitative',
        title: h.valueTitle,
        scale: { scheme: 'redblue', reverse: true, domain: symmetricDomain(h.values, h.atLeast ?? 0) },
      },
      tooltip: [
        { field: 'row', type: 'nominal' },
        { field: 'column', type: 'nominal' },
        { field: 'value', type: 'quantitative', format: '.3f' },
      ],
    },
  } as TopLevelSpec;
}
