// Direct logit attribution (what `sonde dla` shows): each head, MLP, embedding and bias's direct
// contribution to logit(answer) (− logit(wrong)) at one position, as sorted signed bars.
import { useRef, useState } from 'react';
import type { DlaAnswer } from '../../../src/server/routes/dla.js';
import { api } from '../api';
import { Bars } from '../components/Bars';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { usePrompt } from '../components/PromptForm';
import { useExplorer } from '../context';
import { useRequest } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';
import { tokenText } from '../token-text';

const DEFAULT_ANSWER = ' Lily';

export function DlaView() {
  const { model } = useExplorer();
  const url = useUrlParams();
  const prompt = usePrompt();
  const answer = url.get('answer') ?? DEFAULT_ANSWER;
  const wrong = url.get('wrong') ?? '';
  const pos = url.get('pos') ?? '';
  const [form, setForm] = useState({ prompt, answer, wrong, pos });
  const body = {
    model,
    prompt,
    answer,
    ...(wrong === '' ? {} : { wrong }),
    ...(pos === '' ? {} : { pos: Number(pos) }),
  };
  const r = useRequest(JSON.stringify(body), () => api.post<DlaAnswer>('dla', body));
  const svg = useRef<SVGSVGElement>(null);
  const d = r.data;
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [k]: e.target.value }));
  const metric = d
    ? `logit(${JSON.stringify(d.answer.token)})${d.wrong ? ` − logit(${JSON.stringify(d.wrong.token)})` : ''}`
    : '';
  return (
    <section aria-label="direct logit attribution view">
      <form
        className="prompt-form"
        onSubmit={(e) => {
          e.preventDefault();
          setUrlParams(form);
        }}
      >
        <label>
          Prompt
          <textarea value={form.prompt} rows={2} onChange={set('prompt')} />
        </label>
        <label>
          Answer token
          <input value={form.answer} size={10} onChange={set('answer')} />
        </label>
        <label>
          Wrong token (optional)
          <input value={form.wrong} size={10} onChange={set('wrong')} />
        </label>
        <label>
          Position (default: last)
          <input value={form.pos} size={5} inputMode="numeric" onChange={set('pos')} />
        </label>
        <button type="submit" disabled={r.loading}>
          Run
        </button>
      </form>
      <ErrorBanner error={r.error} />
      {d && (
        <>
          <p className="summary">
            {metric} after position {d.pos} ({JSON.stringify(d.strings[d.pos])}): model{' '}
            <span data-testid="logit-diff" data-value={d.logitDiff}>
              {d.logitDiff.toFixed(4)}
            </span>
            , sum of {d.components.length} components{' '}
            <span data-testid="total" data-value={d.total}>
              {d.total.toFixed(4)}
            </span>
          </p>
          <div className="tokens" role="list" aria-label="tokens (choose the position explained)">
            {d.strings.map((t, p) => (
              <button
                key={p}
                type="button"
                role="listitem"
                className="token"
                data-pos={p}
                aria-pressed={p === d.pos}
                title={`explain the prediction after position ${p}`}
                onClick={() => {
                  setForm((f) => ({ ...f, pos: String(p) }));
                  setUrlParams({ pos: String(p) });
                }}
              >
                {tokenText(t)}
              </button>
            ))}
          </div>
          <Bars
            ref={svg}
            title={`Direct logit attribution: ${metric}`}
            measure="direct contribution (logits), largest first"
            bars={d.components.map((c) => ({ label: c.name, value: c.contribution, detail: c.kind }))}
          />
          <ExportBar name="dla" data={d} svg={() => svg.current} />
        </>
      )}
    </section>
  );
}
