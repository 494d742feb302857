// SAE feature pages (SAEDashboard's panels): the feature scan, one latent's top activations, quantile
// groups, histograms, logits and correlated latents; test your own text; search latents by text; steer.
import { useEffect, useRef, useState, type FormEvent, type ReactNode } from 'react';
import type { FeatureDashboard } from '../../../src/sae/dashboard.js';
import type { FeatureStoreInfo, FeatureContext } from '../../../src/sae/feature-store.js';
import type { FeatureMatch, FeatureSteering, TextActivations } from '../../../src/sae/text-features.js';
import { api } from '../api';
import { ActivationTokens } from '../components/ActivationTokens';
import { BarHistogram } from '../components/BarHistogram';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { JobProgress } from '../components/JobProgress';
import { DEFAULT_PROMPT } from '../components/PromptForm';
import { useExplorer } from '../context';
import { useJob, useRequest, type JobHandle } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';

type Dashboard = FeatureDashboard & { sae: string; dSae: number };
interface StoreStatus {
  sae: string;
  dbPath: string;
  info: FeatureStoreInfo | null;
  why: string | null;
  defaults: { nTokens: number; ctx: number; maxTokens: number };
}
interface ScanResult {
  reused: boolean;
  seconds: number;
  info: FeatureStoreInfo;
}

const fmt = (v: number, d = 3) => v.toFixed(d);
const pct = (v: number) => `${(v * 100).toPrecision(3)}%`;

/** Opens latent `f` (a history entry, so Back returns to the previous one). */
function openFeature(f: number): void {
  setUrlParams({ feature: String(f) }, true);
}

export function SaeView() {
  const { info } = useExplorer();
  const params = useUrlParams();
  if (info.saes.length === 0)
    return (
      <section aria-label="SAE view" className="sae-empty">
        <h2>No SAE is open</h2>
        <p>
          Start the explorer with one or more SAE folders (SAELens format, e.g. from{' '}
          <code>sonde sae train</code>
          ):
        </p>
        <pre>sonde serve --sae DIR</pre>
      </section>
    );
  const sae = info.saes.find((s) => s.id === params.get('sae')) ?? info.saes[0]!;
  const raw = Number(params.get('feature') ?? '0');
  const feature = Number.isFinite(raw) ? raw : 0;
  return (
    <section aria-label="SAE view" className="sae-view">
      <div className="sae-controls">
        <label>
          SAE{' '}
          <select value={sae.id} onChange={(e) => setUrlParams({ sae: e.target.value, feature: '0' }, true)}>
            {info.saes.map((s) => (
              <option key={s.id} value={s.id}>
                {s.id} ({s.architecture}, {s.width} latents at {s.hook})
              </option>
            ))}
          </select>
        </label>
        <FeatureChooser feature={feature} width={sae.width} />
        {sae.warning && <span className="warning">{sae.warning}</span>}
      </div>
      <SaeBody key={sae.id} sae={sae.id} model={sae.modelId} width={sae.width} feature={feature} />
    </section>
  );
}

function FeatureChooser({ feature, width }: { feature: number; width: number }) {
  const [text, setText] = useState(String(feature));
  useEffect(() => setText(String(feature)), [feature]);
  const go = (e: FormEvent) => {
    e.preventDefault();
    if (text.trim() !== '') openFeature(Number(text));
  };
  return (
    <form className="feature-chooser" onSubmit={go}>
      <button type="button" disabled={feature <= 0} onClick={() => openFeature(feature - 1)}>
        ◀ Prev
      </button>
      <label>
        Feature{' '}
        <input
          type="number"
          value={text}
          min={0}
          max={width - 1}
          step={1}
          onChange={(e) => setText(e.target.value)}
          aria-label="feature"
        />
      </label>
      <button type="submit">Open</button>
      <button type="button" disabled={feature >= width - 1} onClick={() => openFeature(feature + 1)}>
        Next ▶
      </button>
    </form>
  );
}

function SaeBody({
  sae,
  model,
  width,
  feature,
}: {
  sae: string;
  model: string;
  width: number;
  feature: number;
}) {
  const scan = useJob<ScanResult>('sae-scan');
  const scanned = scan.job?.status === 'done' ? scan.job.id : '';
  const store = useRequest(JSON.stringify([sae, scanned]), () => api.post<StoreStatus>('sae/store', { sae }));
  const ready = store.data?.info != null;
  return (
    <>
      <ScanPanel sae={sae} model={model} status={store.data} handle={scan} />
      <ErrorBanner error={store.error ?? scan.error} />
      {ready ? (
        <FeaturePage sae={sae} feature={feature} scanned={scanned} />
      ) : (
        store.data && (
          <p className="note" data-testid="no-scan">
            No feature scan of this SAE yet ({store.data.why}). Scan a corpus to see its feature pages; test
            your text, search and steering work without one.
          </p>
        )
      )}
      <div className="sae-tools">
        <TextPanel sae={sae} feature={feature} width={width} />
        <SearchPanel sae={sae} />
        <SteerPanel sae={sae} feature={feature} />
      </div>
    </>
  );
}

function ScanPanel({
  sae,
  model,
  status,
  handle,
}: {
  sae: string;
  /** The model the SAE reads (the scan runs it). */
  model: string;
  status: StoreStatus | null;
  handle: JobHandle<ScanResult>;
}) {
  const params = useUrlParams();
  const [tokens, setTokens] = useState(params.get('scanTokens') ?? '20000');
  const [ctx, setCtx] = useState(params.get('scanCtx') ?? '128');
  const i = status?.info;
  const start = (rescan: boolean) => {
    setUrlParams({ scanTokens: tokens, scanCtx: ctx });
    handle.start({ sae, model, nTokens: Number(tokens), ctx: Number(ctx), rescan });
  };
  return (
    <div className="scan-panel" role="group" aria-label="feature scan">
      <p>
        Feature scan:{' '}
        <span data-testid="scan-status">
          {i
            ? `${i.tokensScanned} tokens (${i.sequences} contexts of up to ${i.ctx}) of ${i.corpus.split('/').pop()}`
            : 'none yet'}
        </span>
      </p>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          start(false);
        }}
      >
        <label>
          Tokens{' '}
          <input
            type="number"
            min={1}
            max={status?.defaults.maxTokens}
            value={tokens}
            onChange={(e) => setTokens(e.target.value)}
          />
        </label>
        <label>
          Context <input type="number" min={2} value={ctx} onChange={(e) => setCtx(e.target.value)} />
        </label>
        <button type="submit" disabled={handle.running}>
          Scan
        </button>
        <button type="button" disabled={handle.running} onClick={() => start(true)}>
          Rescan
        </button>
        <span className="note">
          built-in corpus (stories sampled from stories260K), stored in {status?.dbPath ?? 'the SAE folder'}
        </span>
      </form>
      <JobProgress handle={handle as JobHandle<unknown>} />
      {handle.result && (
        <p className="note" data-testid="scan-result" data-tokens={handle.result.info.tokensScanned}>
          {handle.result.reused
            ? 'the stored scan matches: reused'
            : `scanned ${handle.result.info.tokensScanned} tokens in ${handle.result.seconds.toFixed(1)} s`}
        </p>
      )}
    </div>
  );
}

function FeaturePage({ sae, feature, scanned }: { sae: string; feature: number; scanned: string }) {
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

function Panel({ title, children }: { title: string; children: ReactNode }) {
  return (
    <section className="panel" aria-label={title}>
      <h3>{title}</h3>
      {children}
    </section>
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

/** A text box whose value goes into the address (param `name`) when submitted. */
function UrlTextForm({
  name,
  label,
  fallback,
  button,
  children,
}: {
  name: string;
  label: string;
  fallback: string;
  button: string;
  children?: ReactNode;
}) {
  const current = useUrlParams().get(name) ?? fallback;
  const [text, setText] = useState(current);
  return (
    <form
      className="panel-form"
      onSubmit={(e) => {
        e.preventDefault();
        setUrlParams({ [name]: text });
      }}
    >
      <label>
        {label}
        <textarea rows={2} value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      {children}
      <button type="submit">{button}</button>
    </form>
  );
}

function TextPanel({ sae, feature, width }: { sae: string; feature: number; width: number }) {
  const text = useUrlParams().get('text');
  const f = feature >= 0 && feature < width ? feature : undefined;
  const r = useRequest(text === null ? null : JSON.stringify([sae, text, f]), () =>
    api.post<TextActivations>('sae/activations', { sae, prompt: text, feature: f, k: 5 }),
  );
  const d = r.data;
  return (
    <Panel title="Test your own text">
      <UrlTextForm
        name="text"
        label={`Text (activations of feature ${feature})`}
        fallback={DEFAULT_PROMPT}
        button="Test"
      />
      <ErrorBanner error={r.error} />
      {d && d.acts && (
        <>
          <ActivationTokens
            testId="text-tokens"
            label={`feature ${d.feature} on your text`}
            tokens={d.strings.map((s, i) => ({ text: s, act: d.acts![i]! }))}
            max={Math.max(1e-9, ...d.acts)}
            detail={(i) => (
              <span className="top-features">
                {' '}
                · top features:{' '}
                {d.top[i]!.length === 0
                  ? i < d.first
                    ? 'BOS (not encoded)'
                    : 'none'
                  : d.top[i]!.map((t) => `${t.feature} (${fmt(t.value)})`).join(', ')}
              </span>
            )}
          />
          <ExportBar name={`sae-${sae}-text`} data={d} />
        </>
      )}
    </Panel>
  );
}

function SearchPanel({ sae }: { sae: string }) {
  const text = useUrlParams().get('search');
  const r = useRequest(text === null ? null : JSON.stringify([sae, text]), () =>
    api.post<{ features: FeatureMatch[]; strings: string[] }>('sae/search', { sae, prompt: text, k: 20 }),
  );
  const d = r.data;
  return (
    <Panel title="Search features by text">
      <UrlTextForm name="search" label="Text" fallback="She loved to play with her ball." button="Search" />
      <ErrorBanner error={r.error} />
      {d && (
        <>
          <table className="search-results" data-testid="search-results">
            <thead>
              <tr>
                <th>feature</th>
                <th>max</th>
                <th>at token</th>
                <th>mean</th>
                <th>tokens active</th>
              </tr>
            </thead>
            <tbody>
              {d.features.map((m) => (
                <tr key={m.feature} data-feature={m.feature} data-max={m.max} data-mean={m.mean}>
                  <td>
                    <button type="button" onClick={() => openFeature(m.feature)}>
                      {m.feature}
                    </button>
                  </td>
                  <td>{fmt(m.max)}</td>
                  <td>{JSON.stringify(d.strings[m.argmax])}</td>
                  <td>{fmt(m.mean)}</td>
                  <td>{m.active}</td>
                </tr>
              ))}
            </tbody>
          </table>
          <ExportBar name={`sae-${sae}-search`} data={d} />
        </>
      )}
    </Panel>
  );
}

function SteerPanel({ sae, feature }: { sae: string; feature: number }) {
  const params = useUrlParams();
  const prompt = params.get('steerPrompt');
  const coefficient = Number(params.get('coef') ?? '4');
  const maxTokens = Number(params.get('steerTokens') ?? '30');
  const seed = Number(params.get('seed') ?? '0');
  const [form, setForm] = useState({
    prompt: prompt ?? 'Once upon a time',
    coef: String(coefficient),
    tokens: String(maxTokens),
    seed: String(seed),
  });
  const r = useRequest(
    prompt === null ? null : JSON.stringify([sae, feature, prompt, coefficient, maxTokens, seed]),
    () =>
      api.post<FeatureSteering & { prompt: string }>('sae/steer', {
        sae,
        feature,
        prompt,
        coefficient,
        maxTokens,
        seed,
      }),
  );
  const d = r.data;
  const field = (key: keyof typeof form, label: string, type = 'number') => (
    <label>
      {label}{' '}
      <input
        type={type}
        step="any"
        value={form[key]}
        onChange={(e) => setForm({ ...form, [key]: e.target.value })}
      />
    </label>
  );
  return (
    <Panel title={`Steer with feature ${feature}`}>
      <form
        className="panel-form"
        onSubmit={(e) => {
          e.preventDefault();
          setUrlParams({
            steerPrompt: form.prompt,
            coef: form.coef,
            steerTokens: form.tokens,
            seed: form.seed,
          });
        }}
      >
        {field('prompt', 'Prompt', 'text')}
        {field('coef', 'Coefficient')}
        {field('tokens', 'Tokens')}
        {field('seed', 'Seed')}
        <button type="submit">Generate</button>
      </form>
      <ErrorBanner error={r.error} />
      {d && (
        <>
          <p className="note">
            {d.coefficient} × W_dec[{d.feature}] (|W_dec| {fmt(d.decoderNorm)}) added at {d.hook} · seed{' '}
            {d.seed} · temperature {d.temperature}
          </p>
          <div className="steer-columns">
            <div>
              <h4>Without</h4>
              <p data-testid="steer-unsteered" data-text={d.unsteered}>
                <b>{d.prompt}</b>
                {d.unsteered}
              </p>
            </div>
            <div>
              <h4>With feature {d.feature}</h4>
              <p data-testid="steer-steered" data-text={d.steered}>
                <b>{d.prompt}</b>
                {d.steered}
              </p>
            </div>
          </div>
          <ExportBar name={`sae-${sae}-steer`} data={d} />
        </>
      )}
    </Panel>
  );
}
