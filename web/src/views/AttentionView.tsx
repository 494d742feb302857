// Attention (CircuitsVis's attention heads): every head of a layer as small multiples; a chosen head's
// token-to-token view and its query × key pattern. State in the address: layer, head, query.
import { useRef } from 'react';
import type { AttentionResult } from '../../../src/methods/attention.js';
import { api } from '../api';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { HeadsGrid } from '../components/HeadsGrid';
import { Heatmap } from '../components/Heatmap';
import { PromptForm, usePrompt } from '../components/PromptForm';
import { TokenAttention } from '../components/TokenAttention';
import { useExplorer } from '../context';
import { useRequest } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';

/** Past this many tokens the query × key matrix (one SVG cell per pair) is left out: too heavy to draw. */
const MATRIX_MAX_TOKENS = 160;

/** An integer address parameter in [0, n), else the fallback. */
function indexParam(value: string | null, n: number): number | null {
  const v = value === null ? NaN : Number(value);
  return Number.isInteger(v) && v >= 0 && v < n ? v : null;
}

export function AttentionView() {
  const { model, info } = useExplorer();
  const prompt = usePrompt();
  const params = useUrlParams();
  const cfg = info.models.find((m) => m.id === model)!;
  const layer = indexParam(params.get('layer'), cfg.nLayers) ?? 0;
  const head = indexParam(params.get('head'), cfg.nHeads);
  const r = useRequest(JSON.stringify([model, prompt, layer]), () =>
    api.post<AttentionResult>('attention', { model, prompt, layer }),
  );
  const grid = useRef<SVGSVGElement>(null);
  const matrix = useRef<SVGSVGElement>(null);
  const d = r.data;
  const pattern = d?.hooks[0]!.pattern;
  const query = d ? indexParam(params.get('query'), d.tokens.length) : null;
  const labels = d?.tokens.map((t, i) => `${i} ${JSON.stringify(t)}`) ?? [];
  return (
    <section aria-label="attention view">
      <PromptForm busy={r.loading}>
        <label>
          Layer
          <select value={layer} onChange={(e) => setUrlParams({ layer: e.target.value })}>
            {Array.from({ length: cfg.nLayers }, (_, l) => (
              <option key={l} value={l}>
                layer {l}
              </option>
            ))}
          </select>
        </label>
      </PromptForm>
      <ErrorBanner error={r.error} />
      {d && pattern && (
        <>
          <h2 className="attention-title">
            Layer {layer}: {pattern.length} heads over {d.tokens.length} tokens
          </h2>
          <HeadsGrid
            ref={grid}
            layer={layer}
            pattern={pattern}
            chosen={head}
            onChoose={(h) => setUrlParams({ head: String(h) })}
          />
          <ExportBar name={`attention-L${layer}`} data={{ model, prompt, ...d }} svg={() => grid.current} />
          {head !== null && (
            <div className="head-detail" data-testid="head-detail" data-layer={layer} data-head={head}>
              <h2>
                Head L{layer}H{head}
              </h2>
              <TokenAttention
                strings={d.tokens}
                pattern={pattern[head]!}
                query={query}
                onQuery={(q) => setUrlParams({ query: String(q) })}
              />
              {d.tokens.length > MATRIX_MAX_TOKENS ? (
                <p className="summary">
                  The query × key matrix is drawn for prompts up to {MATRIX_MAX_TOKENS} tokens (this one has{' '}
                  {d.tokens.length}); Export JSON holds every weight.
                </p>
              ) : (
                <Heatmap
                  ref={matrix}
                  title={`Attention pattern L${layer}H${head}`}
                  rows={labels}
                  columns={labels}
                  values={pattern[head]!}
                  rowAxis="query"
                  columnAxis="key"
                  scale="probability"
                />
              )}
              <ExportBar
                name={`attention-L${layer}H${head}`}
                data={{ model, prompt, layer, head, tokens: d.tokens, ids: d.ids, pattern: pattern[head] }}
                svg={() => matrix.current}
              />
            </div>
          )}
        </>
      )}
    </section>
  );
}
