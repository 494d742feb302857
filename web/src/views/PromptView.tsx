// Prompt → tokens coloured by their loss, with the top predictions after each (what `sonde run` prints).
import { useState } from 'react';
import type { PromptPredictions } from '../../../src/methods/predictions.js';
import { api } from '../api';
import { sequential, inkOn } from '../colour';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { PromptForm, usePrompt } from '../components/PromptForm';
import { useExplorer } from '../context';
import { useRequest } from '../hooks';
import { tokenText } from '../token-text';

/** Loss (nats) drawn darkest: above this every token looks equally surprising. */
const LOSS_SCALE = 6;

export function PromptView() {
  const { model } = useExplorer();
  const prompt = usePrompt();
  const topK = 5;
  const r = useRequest(JSON.stringify([model, prompt]), () =>
    api.post<PromptPredictions>('prompt', { model, prompt, topK }),
  );
  const [at, setAt] = useState<number | null>(null);
  const d = r.data;
  return (
    <section aria-label="prompt view">
      <PromptForm busy={r.loading} />
      <ErrorBanner error={r.error} />
      {d && (
        <>
          <p className="summary">
            {d.tokens.length} tokens · mean loss{' '}
            <span data-testid="mean-loss" data-value={d.loss ?? ''}>
              {d.loss === null ? 'n/a' : d.loss.toFixed(4)}
            </span>{' '}
            nats
          </p>
          <div className="tokens" role="list" aria-label="tokens (colour: loss of predicting this token)">
            {d.strings.map((s, p) => {
              const loss = p === 0 ? null : d.losses[p - 1]!;
              const bg = loss === null ? '#eee' : sequential(loss, LOSS_SCALE);
              return (
                <button
                  key={p}
                  type="button"
                  role="listitem"
                  className="token"
                  data-pos={p}
                  data-loss={loss ?? ''}
                  style={{ background: bg, color: inkOn(bg) }}
                  onMouseEnter={() => setAt(p)}
                  onFocus={() => setAt(p)}
                  aria-pressed={at === p}
                >
                  {tokenText(s)}
                </button>
              );
            })}
          </div>
          {at !== null && (
            <div className="detail" aria-live="polite" data-testid="token-detail">
              <p>
                position {at} · id {d.tokens[at]} · “{d.strings[at]}”
                {at > 0 && ` · loss ${d.losses[at - 1]!.toFixed(4)} nats`}
              </p>
              <table>
                <caption>top {d.topK} predictions after this token</caption>
                <thead>
                  <tr>
                    <th>token</th>
                    <th>probability</th>
                    <th>logit</th>
                  </tr>
                </thead>
                <tbody>
                  {d.predictions[at]!.map((q) => (
                    <tr key={q.id} data-id={q.id} data-prob={q.prob}>
                      <td>{JSON.stringify(q.token)}</td>
                      <td>{(q.prob * 100).toFixed(2)}%</td>
                      <td>{q.logit.toFixed(3)}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            </div>
          )}
          <ExportBar name="prompt" data={d} />
        </>
      )}
    </section>
  );
}
