// Train an SAE from the page: the sae-train job (harvest, train, save, held-out evaluation); when it is
// done the server has opened the SAE and the view shows it.
import { useEffect, useState } from 'react';
import type { SaeTrainResult } from '../../../../src/server/routes/sae-train.js';
import { ErrorBanner } from '../../components/ErrorBanner';
import { JobProgress } from '../../components/JobProgress';
import { useExplorer } from '../../context';
import { useJob, type JobHandle } from '../../hooks';
import { setUrlParams } from '../../url-state';

const ARCHS = ['topk', 'batchtopk', 'standard', 'jumprelu', 'gated'];

/** `collapsed`: folded under "Train another SAE" until opened (or until a job runs in it). */
export function TrainPanel({ collapsed }: { collapsed: boolean }) {
  const { model, info, refresh } = useExplorer();
  const m = info.models.find((x) => x.id === model)!;
  const job = useJob<SaeTrainResult>('sae-train');
  const [form, setForm] = useState({
    hook: `blocks.${Math.floor(m.nLayers / 2)}.hook_resid_post`,
    arch: 'topk',
    width: String(8 * m.dModel),
    k: '32',
    nTokens: String(1 << 17),
  });
  const set = (k: keyof typeof form) => (e: { target: { value: string } }) =>
    setForm((f) => ({ ...f, [k]: e.target.value }));
  const done = job.result;
  useEffect(() => {
    if (done?.sae === undefined) return;
    refresh();
    setUrlParams({ view: 'sae', sae: done.sae, feature: '0' });
    // Once per finished job (refresh is a new function each render).
  }, [done?.sae]);
  return (
    <details className="sae-train" aria-label="train an SAE" open={!collapsed || job.job !== null}>
      <summary>
        {collapsed ? 'Train another SAE' : 'Train an SAE'} on {model}
      </summary>
      <form
        className="inline-form"
        onSubmit={(e) => {
          e.preventDefault();
          job.start({
            model,
            hook: form.hook,
            arch: form.arch,
            width: Number(form.width),
            k: Number(form.k),
            nTokens: Number(form.nTokens),
          });
        }}
      >
        <label>
          Hook <input value={form.hook} onChange={set('hook')} size={28} />
        </label>
        <label>
          Architecture{' '}
          <select value={form.arch} onChange={set('arch')}>
            {ARCHS.map((a) => (
              <option key={a}>{a}</option>
            ))}
          </select>
        </label>
        <label>
          Width <input type="number" value={form.width} onChange={set('width')} min={1} />
        </label>
        <label>
          k <input type="number" value={form.k} onChange={set('k')} min={1} />
        </label>
        <label>
          Tokens <input type="number" value={form.nTokens} onChange={set('nTokens')} min={1024} />
        </label>
        <button type="submit" disabled={job.running}>
          Train
        </button>
      </form>
      <JobProgress handle={job as JobHandle<unknown>} />
      <ErrorBanner error={job.error} />
      {done?.heldOut && (
        <p data-testid="sae-train-result" data-ev={done.heldOut.explainedVariance}>
          {done.sae}: on {done.heldOut.on}, L0 {done.heldOut.l0.toFixed(1)}, explained variance{' '}
          {done.heldOut.explainedVariance.toFixed(3)}, CE loss recovered {done.heldOut.ceRecovered.toFixed(3)}
          , {done.heldOut.deadLatents} dead latents
        </p>
      )}
    </details>
  );
}
