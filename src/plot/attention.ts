import type { TopLevelSpec } from 'vega-lite';

export interface AttentionPatterns {
  /** One entry per hook: its name and pattern[head][query][key] (rows sum to 1 over the keys). */
  hooks: { name: string; pattern: number[][][] }[];
  /** The tokens of the sequence, shown on both axes. */
  tokens: string[];
}

/** "3 ' time'": the position and the token, so repeated tokens stay distinct on an axis. */
function tokenLabels(tokens: string[]): string[] {
  return tokens.map((t, i) => `${i} ${JSON.stringify(t)}`);
}

/**
 * Attention patterns as a grid of heatmaps: one panel per head (rows: hooks, when several), query tokens
 * down, key tokens across, colour the attention weight on a fixed 0..1 scale.
 */
export function attentionPatternSpec(a: AttentionPatterns): TopLevelSpec {
  const labels = tokenLabels(a.tokens);
  const values = a.hooks.flatMap(({ name, pattern }) =>
    pattern.flatMap((rows, h) =>
      rows.flatMap((row, q) =>
        row.map((w, k) => ({ hook: name, head: `head ${h}`, query: labels[q]!, key: labels[k]!, weight: w })),
      ),
    ),
  );
  const heads = a.hooks[0]?.pattern.length ?? 0;
  const cell = Math.max(6, Math.min(16, Math.floor(320 / Math.max(1, a.tokens.length))));
  const side = cell * a.tokens.length;
  const several = a.hooks.length > 1;
  const headOrder = Array.from({ length: heads }, (_, h) => `head ${h}`);
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: {
      text: several ? 'Attention patterns' : `Attention pattern: ${a.hooks[0]?.name ?? ''}`,
      subtitle: 'each row: where a query token attends (weights over key tokens sum to 1)',
    },
    data: { values },
    ...(several
      ? {
          facet: {
            row: { field: 'hook', type: 'nominal', sort: a.hooks.map((h) => h.name), title: null },
            column: { field: 'head', type: 'ordinal', sort: headOrder, title: null },
          },
        }
      : { facet: { field: 'head', type: 'ordinal', sort: headOrder, title: null }, columns: 4 }),
    spec: {
      width: side,
      height: side,
      mark: 'rect',
      encoding: {
        x: {
          field: 'key',
          type: 'ordinal',
          sort: labels,
          title: 'key token',
          axis: { labelAngle: -60, labelFontSize: Math.min(10, cell) },
        },
        y: {
          field: 'query',
          type: 'ordinal',
          sort: labels,
          title: 'query token',
          axis: { labelFontSize: Math.min(10, cell) },
        },
        color: {
          field: 'weight',
          type: 'quantitative',
          title: 'attention',
          scale: { scheme: 'viridis', domain: [0, 1] },
        },
        tooltip: [
          { field: 'head', type: 'nominal' },
          { field: 'query', type: 'nominal' },
          { field: 'key', type: 'nominal' },
          { field: 'weight', type: 'quantitative', format: '.3f' },
        ],
      },
    },
  } as TopLevelSpec;
}
