// SAE feature pages (SAEDashboard's panels): the SAE and latent chooser and the feature scan here; the
// feature page in sae/FeaturePage, test your text, search and steering in sae/TextTools.
import { useEffect, useState, type FormEvent } from 'react';
import type { FeatureStoreInfo } from '../../../src/sae/feature-store.js';
import { api } from '../api';
import { ErrorBanner } from '../components/ErrorBanner';
import { JobProgress } from '../components/JobProgress';
import { useExplorer } from '../context';
import { useJob, useRequest, type JobHandle } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';
import { openFeature } from './sae/common';
import { FeaturePage } from './sae/FeaturePage';
import { SearchPanel, SteerPanel, TextPanel } from './sae/TextTools';
import { TrainPanel } from './sae/TrainPanel';

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

export function SaeView() {
  const { info } = useExplorer();
  const open = info.saes.length > 0;
  // One training panel in the same place whether or not an SAE is open, so a job that opens the
  // first SAE keeps its panel (and its result) when the view switches to that SAE.
  return (
    <section aria-label="SAE view" className={open ? 'sae-view' : 'sae-empty'}>
      {open ? <OpenSae /> : <NoSae />}
      <TrainPanel collapsed={open} />
    </section>
  );
}

function NoSae() {
  return (
    <>
      <h2>No SAE is open</h2>
      <p>
        Start the explorer with one or more SAE folders (SAELens format, e.g. from{' '}
        <code>sonde sae train</code>
        ):
      </p>
      <pre>sonde serve --sae DIR</pre>
      <p>or train one here:</p>
    </>
  );
}

function OpenSae() {
  const { info } = useExplorer();
  const params = useUrlParams();
  const sae = info.saes.find((s) => s.id === params.get('sae')) ?? info.saes[0]!;
  const raw = Number(params.get('feature') ?? '0');
  const feature = Number.isFinite(raw) ? raw : 0;
  return (
    <>
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
    </>
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
