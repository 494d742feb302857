import type { TopLevelSpec } from 'vega-lite';

export interface HistogramPlot {
  title: string;
  subtitle: string;
  /** Bin edges (counts.length + 1 of them) and counts. */
  edges: number[];
  counts: number[];
  xTitle: string;
  /** What is counted ('latents', 'tokens'). */
  yTitle: string;
}

/** A bar chart of pre-binned counts (Vega-Lite). */
export function histogramSpec(h: HistogramPlot): TopLevelSpec {
  const values = h.counts.map((n, i) => ({ from: h.edges[i]!, to: h.edges[i + 1]!, count: n }));
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: h.title, subtitle: h.subtitle },
    data: { values },
    width: 420,
    height: 220,
    mark: { type: 'bar' },
    encoding: {
      x: { field: 'from', type: 'quantitative', bin: { binned: true }, title: h.xTitle },
      x2: { field: 'to' },
      y: { field: 'count', type: 'quantitative', title: h.yTitle },
    },
  } as TopLevelSpec;
}
