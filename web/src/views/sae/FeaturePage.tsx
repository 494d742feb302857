// One latent's feature page: SAEDashboard's panels (histograms, logits, correlated latents, density, top
// activations and activation-quantile groups), drawn from the library's featureDashboard.
import { useRef } from 'react';
import type { FeatureDashboard } from '../../../../src/sae/dashboard.js';
import type { FeatureContext } from '../../../../src/sae/feature-store.js';
import { api } from '../../api';
import { ActivationTokens } from '../../components/ActivationTokens';
import { BarHistogram } from '../../components/BarHistogram';
import { ErrorBanner } from '../../components/ErrorBanner';
import { ExportBar } from '../../components/ExportBar';
import { useRequest } from '../../hooks';
import { fmt, openFeature, Panel, pct } from './common';

type Dashboard = FeatureDashboard & { sae: string; dSae: number };

/** `scanned`: the last finished scan's job id (a new scan reloads the page). */
export function FeaturePage({ sae, feature, scanned }: { sae: string; feature: number; scanned: string }) {
  const r = useRequest(JSON.stringify([sae, feature, scanned]), () =>
    api.post<Dashboard>('sae/feature', { sae, feature }),
  );
  const actSvg = useRef<SVGSVGElement>(null);
  const logitSvg = useRef<SVGSVGElement>(null);
  const d = r.data;
  const here = d && d.summary.density > 0 ? Math.log10(d.summary.density) : NaN;
  const binWidth = d ? d.density.edges[1]! - d.density.edges[0]! || 1 : 1;
  return (
    <div className="feature-page" aria-busy={r.loading}>
      <ErrorBanner error={r.error} />
      {d && (
        <>
          <h2 data-testid="feature-title" data-feature={d.feature}>
            Feature {d.feature}{' '}
            <small>
              density{' '}
              <span data-testid="density" data-value={d.summary.density}>
                {pct(d.summary.density)}
              </span>{' '}
              ({d.summary.nActive} of {d.summary.tokensScanned} tokens) · max{' '}
              <span data-testid="max-act" data-value={d.summary.maxAct}>
                {fmt(d.summary.maxAct)}
              </span>{' '}
              · mean when active {fmt(d.summary.meanAct)}
            </small>
          </h2>
          {d.summary.nActive === 0 && <p className="note">It never fires on the scanned tokens (dead).</p>}
          <div className="panels">
            <Panel title="Activations">
              <BarHistogram
                ref={actSvg}
                testId="act-histogram"
                title={`Feature ${d.feature}: nonzero activations`}
                edges={d.histogram.edges}
                counts={d.histogram.counts}
                xTitle={`activation (${d.histogram.zeros} tokens at 0 not shown)`}
              />
              <ExportBar name={`sae-${sae}-feature-${d.feature}`} data={d} svg={() => actSvg.current} />
            </Panel>
            <Panel title="Logits">
              {d.logits ? (
                <>
                  <BarHistogram
                    ref={logitSvg}
                    testId="logit-histogram"
                    title="Direct logit effects (every token)"
                    edges={d.logits.histogram.edges}
                    counts={d.logits.histogram.counts}
                    xTitle="effect"
                    colour={(c) => (c < 0 ? '#2166ac' : '#b2182b')}
                  />
                  <ExportBar
                    name={`sae-${sae}-feature-${d.feature}-logits`}
                    data={d.logits}
                    svg={() => logitSvg.current}
                  />
                  <LogitTables logits={d.logits} />
                </>
              ) : (
                <p className="note">No logits: {d.logitsUnavailable}</p>
              )}
            </Panel>
            <Panel title="Correlated features">
              <CorrelatedList d={d} />
            </Panel>
            <Panel title="Density">
              <BarHistogram
                testId="density-histogram"
                title={`log10 density of the ${d.density.live} live features`}
                edges={d.density.edges}
                counts={d.density.counts}
                xTitle={`log10 density (${d.density.dead} dead not shown)`}
                colour={(c) => (Math.abs(c - here) <= binWidth / 2 ? '#e6550d' : '#9ecae1')}
              />
              <p className="note">
                this feature: log10 density {d.summary.density > 0 ? fmt(here, 2) : '−∞'} (orange bin)
              </p>
            </Panel>
          </div>
          <Panel title={`Top ${d.contexts.length} activations`}>
            <Contexts contexts={d.contexts} max={d.summary.maxAct} testId="top-contexts" />
          </Panel>
          <Panel title="Activation quantiles">
            {d.quantiles.map((g, i) => (
              <div
                key={i}
                className="quantile"
                data-testid="quantile-group"
                data-lo={g.lo}
                data-hi={g.hi}
                data-count={g.count}
              >
                <h4>
                  Interval ({fmt(g.lo)}, {fmt(g.hi)}] · {g.count} activations
                </h4>
                <Contexts contexts={g.examples} max={d.summary.maxAct} />
              </div>
            ))}
          </Panel>
        </>
      )}
    </div>
  );
}

function Contexts({ contexts, max, testId }: { contexts: FeatureContext[]; max: number; testId?: string }) {
  return (
    <ol className="contexts" data-testid={testId}>
      {contexts.map((c) => (
        <li key={`${c.seq}:${c.pos}`} data-seq={c.seq} data-pos={c.pos} data-value={c.value}>
          <span className="ctx-value">{fmt(c.value)}</span>
          <ActivationTokens
            tokens={c.tokens.map((t) => ({ text: t.text, act: t.act, pos: t.pos }))}
            max={max}
            center={c.center}
            label={`context ${c.seq}, position ${c.pos}: activation ${fmt(c.value)}`}
          />
        </li>
      ))}
    </ol>
  );
}

function LogitTables({ logits }: { logits: NonNullable<FeatureDashboard['logits']> }) {
  const table = (title: string, rows: typeof logits.top, testId: string) => (
    <table className="logits" data-testid={testId}>
      <caption>{title}</caption>
      <tbody>
        {rows.map((t) => (
          <tr key={t.id} data-id={t.id} data-value={t.value}>
            <td>{JSON.stringify(t.token)}</td>
            <td className={t.value < 0 ? 'neg' : 'pos'}>{fmt(t.value)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
  return (
    <div className="logit-tables" title={logits.method}>
      {table('Negative logits', logits.bottom, 'neg-logits')}
      {table('Positive logits', logits.top, 'pos-logits')}
    </div>
  );
}

function CorrelatedList({ d }: { d: Dashboard }) {
  if (d.correlated.length === 0) return <p className="note">No feature fires together with this one.</p>;
  return (
    <table className="correlated" data-testid="correlated">
      <thead>
        <tr>
          <th>feature</th>
          <th>Pearson r</th>
          <th>co-active</th>
          <th>Jaccard</th>
        </tr>
      </thead>
      <tbody>
        {d.correlated.map((c) => (
          <tr key={c.feature} data-feature={c.feature} data-value={c.correlation}>
            <td>
              <button type="button" onClick={() => openFeature(c.feature)}>
                {c.feature}
              </button>
            </td>
            <td>{fmt(c.correlation)}</td>
            <td>{c.coActive}</td>
            <td>{fmt(c.jaccard)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
