// Vega-Lite figures of the toy models of superposition, after the paper's: the feature directions
// (2-D arrows when m = 2, else bars of ||W_i|| coloured by superposition), the W^T W matrix, and the
// sparsity sweep (dimensions per feature against 1/(1-S), the "sticky" plot).
import type { TopLevelSpec } from '../plot/vega.js';
import type { SuperpositionInstance, SweepResult } from './superposition.js';

const SCHEMA = 'https://vega.github.io/schema/vega-lite/v6.json';

/** Fractions at which feature dimensionality sticks (paper, "Feature dimensionality"). */
export const STICKY_FRACTIONS = [
  { value: 1, label: '1' },
  { value: 3 / 4, label: '3/4 tetrahedron' },
  { value: 2 / 3, label: '2/3 triangle' },
  { value: 1 / 2, label: '1/2 antipodal' },
  { value: 2 / 5, label: '2/5 pentagon' },
  { value: 3 / 8, label: '3/8 square antiprism' },
];

const round = (v: number) => Math.round(v * 1e4) / 1e4;

function title(r: SuperpositionInstance): string {
  const imp = r.importanceDecay === 1 ? 'uniform importance' : `importance ${r.importanceDecay}^i`;
  return `S = ${round(r.sparsity)}, ${imp}, ${round(r.dimsPerFeature)} dims/feature`;
}

/** Feature directions: arrows in the plane when m = 2, else ||W_i|| bars coloured by superposition. */
function directionsPanel(r: SuperpositionInstance): Record<string, unknown> {
  const n = r.norms.length;
  if (r.W.length === 2) {
    const rows = Array.from({ length: n }, (_, i) => ({
      feature: i,
      x0: 0,
      y0: 0,
      x: round(r.W[0]![i]!),
      y: round(r.W[1]![i]!),
      importance: round(r.importance[i]!),
      D: round(r.dimensionality[i]!),
    }));
    const lim = Math.max(1, ...r.norms) * 1.2;
    const scale = { domain: [-lim, lim], nice: false };
    const color = {
      field: 'importance',
      type: 'quantitative',
      title: 'importance',
      scale: { scheme: 'viridis', domain: [Math.min(...r.importance), Math.max(...r.importance)] },
    };
    return {
      title: 'feature directions W_i',
      width: 260,
      height: 260,
      data: { values: rows },
      layer: [
        {
          mark: { type: 'rule', strokeWidth: 2 },
          encoding: {
            x: { field: 'x0', type: 'quantitative', scale, title: 'hidden dim 1' },
            y: { field: 'y0', type: 'quantitative', scale, title: 'hidden dim 2' },
            x2: { field: 'x' },
            y2: { field: 'y' },
            color,
          },
        },
        {
          mark: { type: 'point', filled: true, size: 60 },
          encoding: {
            x: { field: 'x', type: 'quantitative', scale },
            y: { field: 'y', type: 'quantitative', scale },
            color,
            tooltip: [{ field: 'feature' }, { field: 'importance' }, { field: 'D', title: 'D_i' }],
          },
        },
        {
          mark: { type: 'text', dx: 9, dy: -9, fontSize: 11 },
          encoding: {
            x: { field: 'x', type: 'quantitative', scale },
            y: { field: 'y', type: 'quantitative', scale },
            text: { field: 'feature' },
          },
        },
      ],
    };
  }
  const rows = Array.from({ length: n }, (_, i) => ({
    feature: i,
    norm: round(r.norms[i]!),
    superposition: round(r.superposition[i]!),
    D: round(r.dimensionality[i]!),
  }));
  return {
    title: '||W_i||, coloured by superposition',
    width: 220,
    height: Math.max(120, Math.min(600, 14 * n)),
    data: { values: rows },
    mark: 'bar',
    encoding: {
      y: { field: 'feature', type: 'ordinal', title: 'feature', axis: n > 40 ? { labels: false } : {} },
      x: { field: 'norm', type: 'quantitative', title: '||W_i||' },
      color: {
        field: 'superposition',
        type: 'quantitative',
        title: 'Σ_{j≠i} (Ŵ_i·W_j)²',
        scale: { domain: [0, 1], range: ['#111111', '#f2c12e'], clamp: true },
      },
      tooltip: [
        { field: 'feature' },
        { field: 'norm' },
        { field: 'superposition' },
        { field: 'D', title: 'D_i' },
      ],
    },
  };
}

function gramPanel(r: SuperpositionInstance): Record<string, unknown> {
  const n = r.gram.length;
  const rows = r.gram.flatMap((row, i) => row.map((v, j) => ({ i, j, value: round(v) })));
  const side = Math.max(120, Math.min(400, 24 * n));
  const axis = n > 40 ? { labels: false, ticks: false } : {};
  return {
    title: 'W^T W',
    width: side,
    height: side,
    data: { values: rows },
    mark: 'rect',
    encoding: {
      x: { field: 'j', type: 'ordinal', title: 'feature j', axis },
      y: { field: 'i', type: 'ordinal', title: 'feature i', axis },
      color: {
        field: 'value',
        type: 'quantitative',
        title: 'W_i · W_j',
        scale: { scheme: 'redblue', reverse: true, domain: [-1, 1], clamp: true },
      },
      tooltip: [{ field: 'i' }, { field: 'j' }, { field: 'value' }],
    },
  };
}

/** One trained model: its feature directions (or norms) beside its W^T W, as the paper's figures. */
export function superpositionPlotSpec(r: SuperpositionInstance): TopLevelSpec {
  return {
    $schema: SCHEMA,
    title: { text: title(r), anchor: 'start', offset: 12 },
    hconcat: [directionsPanel(r), gramPanel(r)],
    resolve: { scale: { color: 'independent' } },
  } as unknown as TopLevelSpec;
}

/**
 * The sparsity sweep: dimensions per feature (line) and each feature's dimensionality D_i (points)
 * against 1/(1-S) on a log axis, with the sticky fractions marked; below, D_i per feature and
 * sparsity (0 = not represented, 1 = a dimension of its own, in between = superposition).
 */
export function sweepPlotSpec(sweep: SweepResult): TopLevelSpec {
  const line = sweep.points.map((p) => ({
    inverseDensity: round(p.inverseDensity),
    sparsity: round(p.sparsity),
    dimsPerFeature: round(Math.min(p.dimsPerFeature, 10)),
  }));
  const dots = sweep.points.flatMap((p) =>
    p.dimensionality.map((D, feature) => ({
      inverseDensity: round(p.inverseDensity),
      sparsity: round(p.sparsity),
      feature,
      D: round(D),
      norm: round(p.norms[feature]!),
    })),
  );
  // 3/8 sits too close to 2/5 for both labels: its line is drawn unlabelled.
  const sticky = STICKY_FRACTIONS.map((f) => ({ y: f.value, label: f.value === 3 / 8 ? '' : f.label }));
  const xs = line.map((p) => p.inverseDensity);
  const [lo, hi] = [Math.min(...xs), Math.max(...xs)];
  const xScale = { type: 'log', domain: hi > lo ? [lo, hi] : [lo / 2, hi * 2], nice: false };
  const x = { field: 'inverseDensity', type: 'quantitative', title: '1 / (1 - S)', scale: xScale };
  const y = { type: 'quantitative', title: 'dimensions per feature', scale: { domain: [0, 1.1] } };
  const { features, hidden } = sweep.run;
  return {
    $schema: SCHEMA,
    title: `Feature dimensionality against sparsity: n = ${features}, m = ${hidden}`,
    vconcat: [
      {
        width: 520,
        height: 260,
        layer: [
          {
            data: { values: sticky },
            mark: { type: 'rule', strokeDash: [4, 4], color: '#999999' },
            encoding: { y: { field: 'y', ...y } },
          },
          {
            data: { values: sticky },
            mark: { type: 'text', align: 'left', dx: 4, dy: -6, color: '#777777', fontSize: 10 },
            encoding: {
              y: { field: 'y', ...y },
              x: { datum: xs[0] ?? 1, type: 'quantitative', scale: xScale },
              text: { field: 'label' },
            },
          },
          {
            data: { values: dots },
            mark: { type: 'circle', opacity: 0.6, size: 30 },
            encoding: {
              x,
              y: { field: 'D', ...y },
              color: { value: '#1f77b4' },
              tooltip: [
                { field: 'sparsity' },
                { field: 'feature' },
                { field: 'D', title: 'D_i' },
                { field: 'norm' },
              ],
            },
          },
          {
            data: { values: line },
            mark: { type: 'line', color: '#000000', point: { color: '#000000' } },
            encoding: {
              x,
              y: { field: 'dimsPerFeature', ...y },
              tooltip: [{ field: 'sparsity' }, { field: 'dimsPerFeature' }],
            },
          },
        ],
      },
      {
        width: 520,
        height: Math.max(80, Math.min(400, 14 * features)),
        title: 'D_i per feature (0: not represented, 1: own dimension)',
        data: { values: dots },
        mark: 'rect',
        encoding: {
          x: { field: 'sparsity', type: 'ordinal', title: 'sparsity S', axis: { format: '.3~f' } },
          y: {
            field: 'feature',
            type: 'ordinal',
            title: 'feature',
            axis: features > 40 ? { labels: false } : {},
          },
          color: {
            field: 'D',
            type: 'quantitative',
            title: 'D_i',
            scale: { scheme: 'viridis', domain: [0, 1] },
          },
          tooltip: [
            { field: 'sparsity' },
            { field: 'feature' },
            { field: 'D', title: 'D_i' },
            { field: 'norm' },
          ],
        },
      },
    ],
  } as unknown as TopLevelSpec;
}
