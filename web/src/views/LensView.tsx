// Logit lens and tuned lens (what `sonde lens` prints): layer × position, the top token and its
// probability read off each residual stream. A tuned lens is opened with the server or trained here.
import { useEffect, useRef } from 'react';
import type { LensAnswer, TrainedLensResult } from '../../../src/server/routes/lens.js';
import { api } from '../api';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { Heatmap } from '../components/Heatmap';
import { JobProgress } from '../components/JobProgress';
import { PromptForm, usePrompt } from '../components/PromptForm';
import { useExplorer } from '../context';
import { useJob, useRequest } from '../hooks';
import { setUrlParams, useUrlParam, useUrlParams } from '../url-state';

const pct = (p: number) => `${(p * 100).toFixed(1)}%`;

export function LensView() {
  const { model, info } = useExplorer();
  const prompt = usePrompt();
  const [kind, setKind] = useUrlParam('lensKind', 'logit');
  const [steps, setSteps] = useUrlParam('lensSteps', '200');
  const chosen = useUrlParams().get('lens');
  const train = useJob<TrainedLensResult>('tuned-lens');
  const lenses = info.tunedLenses.filter((l) => l.modelId === model).map((l) => l.id);
  if (chosen !== null && !lenses.includes(chosen)) lenses.push(chosen);
  const lens = chosen ?? lenses[0] ?? null;
  const tuned = kind === 'tuned';
  const key = tuned && lens === null ? null : JSON.stringify([model, prompt, kind, tuned ? lens : null]);
  const r = useRequest(key, () =>
    api.post<LensAnswer>('lens', { model, prompt, kind, ...(tuned ? { lens } : {}), topK: 5 }),
  );
  // A finished training shows its lens at once (named by the job's id, which the server knows it by).
  const trainedId = train.result ? train.job!.id : null;
  useEffect(() => {
    if (trainedId) setUrlParams({ lens: trainedId, lensKind: 'tuned' });
  }, [trainedId]);
  const svg = useRef<SVGSVGElement>(null);
  // With no lens to read, an earlier answer (another lens) is not shown.
  const d = key === null ? null : r.data;
  const columns = d?.strings.map((s, p) => `${p} ${JSON.stringify(s)}`) ?? [];
  const describe = (l: number, p: number) => {
    const top = d!.top[l]![p]!.map((t) => `${JSON.stringify(t.token)} ${pct(t.prob)}`).join(', ');
    const next = d!.next?.[l]?.[p];
    return (
      `${d!.labels[l]} · position ${columns[p]} → ${top}` +
      (next ? ` · next token ${JSON.stringify(next.token)}: rank ${next.rank}, ${pct(next.prob)}` : '')
    );
  };
  return (
    <section aria-label="lens view">
      <PromptForm busy={r.loading}>
        <label>
          Lens
          <select value={kind} onChange={(e) => setKind(e.target.value)}>
            <option value="logit">logit lens</option>
            <option value="tuned">tuned lens</option>
          </select>
        </label>
        {tuned && lenses.length > 0 && (
          <label>
            Tuned lens
            <select value={lens ?? ''} onChange={(e) => setUrlParams({ lens: e.target.value })}>
              {lenses.map((id) => (
                <option key={id} value={id}>
                  {id === trainedId || !info.tunedLenses.some((l) => l.id === id)
                    ? `trained here (${id.slice(0, 8)})`
                    : id}
                </option>
              ))}
            </select>
          </label>
        )}
      </PromptForm>
      {tuned && (
        <form
          className="lens-train"
          onSubmit={(e) => {
            e.preventDefault();
            train.start({ model, steps: Number(steps) });
          }}
        >
          {lens === null && (
            <p data-testid="no-tuned-lens">
              No tuned lens is open for {model}: train one here (on the built-in stories260K samples), or
              start <code>sonde serve --tuned-lens DIR</code> with one from{' '}
              <code>sonde tuned-lens train</code>.
            </p>
          )}
          <label>
            Steps
            <input
              type="number"
              min={1}
              max={2000}
              value={steps}
              onChange={(e) => setSteps(e.target.value)}
            />
          </label>
          <button type="submit" disabled={train.running}>
            Train a tuned lens
          </button>
          <JobProgress handle={train} />
          {train.result && (
            <p className="summary" data-testid="trained-kl">
              held-out KL(final ‖ lens) per layer, logit → tuned:{' '}
              {train.result.heldOutKL.logit
                .map((k, l) => `L${l} ${k.toFixed(2)} → ${train.result!.heldOutKL.tuned[l]!.toFixed(2)}`)
                .join(' · ')}
            </p>
          )}
        </form>
      )}
      <ErrorBanner error={train.error ?? r.error} />
      {d && (
        <>
          <Heatmap
            ref={svg}
            title={`${d.kind === 'tuned' ? 'Tuned' : 'Logit'} lens: top token and its probability`}
            rows={d.labels}
            columns={columns}
            values={d.top.map((row) => row.map((t) => t[0]!.prob))}
            rowAxis="residual stream"
            columnAxis="position"
            scale="probability"
            format={pct}
            cellText={(l, p) => {
              const t = d.top[l]![p]![0]!.token;
              return t.length > 7 ? `${t.slice(0, 6)}…` : t;
            }}
            cellData={(l, p) => ({
              'data-token': d.top[l]![p]![0]!.token,
              'data-id': d.top[l]![p]![0]!.id,
              'data-next-rank': d.next?.[l]?.[p]?.rank ?? '',
              'data-next-prob': d.next?.[l]?.[p]?.prob ?? '',
            })}
            describe={describe}
          />
          <ExportBar name={`${d.kind}-lens`} data={{ prompt, ...d }} svg={() => svg.current} />
        </>
      )}
    </section>
  );
}
