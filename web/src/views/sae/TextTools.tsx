// The SAE view's tools on any text: per-token activations (test your own text), latents by text (search),
// and generation steered by a latent, side by side.
import { useState, type ReactNode } from 'react';
import type { FeatureMatch, FeatureSteering, TextActivations } from '../../../../src/sae/text-features.js';
import { api } from '../../api';
import { ActivationTokens } from '../../components/ActivationTokens';
import { ErrorBanner } from '../../components/ErrorBanner';
import { ExportBar } from '../../components/ExportBar';
import { DEFAULT_PROMPT } from '../../components/PromptForm';
import { useRequest } from '../../hooks';
import { setUrlParams, useUrlParams } from '../../url-state';
import { fmt, openFeature, Panel } from './common';

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

export function TextPanel({ sae, feature, width }: { sae: string; feature: number; width: number }) {
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

export function SearchPanel({ sae }: { sae: string }) {
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

export function SteerPanel({ sae, feature }: { sae: string; feature: number }) {
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
