// What the activation and attribution patching views share: the clean/corrupt form (its state in the
// address), the job with progress and Cancel, and the layer × position (or head) heatmap of the answer.
import { useEffect, useRef, useState, type FormEvent, type Ref } from 'react';
import type {
  AttributionAnswer,
  PatchingAnswer,
  PatchingOptionsAnswer,
} from '../../../src/server/routes/patching.js';
import { api } from '../api';
import { useExplorer } from '../context';
import { useJob, useRequest } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';
import { ErrorBanner } from './ErrorBanner';
import { ExportBar } from './ExportBar';
import { Heatmap } from './Heatmap';
import { JobProgress } from './JobProgress';

export type SweepKind = 'patching' | 'attribution';

/** The form's fields, as the address holds them. */
const DEFAULTS = {
  clean: 'Once upon a time, there was a little girl named Lily. One day,',
  corrupt: 'Once upon a time, there was a little girl named Tim. One day,',
  answer: ' Lily',
  wrong: ' Tim',
  target: 'resid_pre',
  direction: 'denoise',
  /** 'default' (per position for block targets, all at once for heads), 'each' or 'all'. */
  positions: 'default',
  /** What the heatmap draws: 'normalised' (0 = corrupt, 1 = clean) or 'raw' (the patched logit difference). */
  metric: 'normalised',
  /** Attribution only: AtP*'s QK fix, and the comparison with activation patching. */
  qkfix: '1',
  compare: '0',
};
type Fields = typeof DEFAULTS;
const NAMES = Object.keys(DEFAULTS) as (keyof Fields)[];

function readFields(url: URLSearchParams): Fields {
  return Object.fromEntries(NAMES.map((k) => [k, url.get(k) ?? DEFAULTS[k]])) as Fields;
}

/** The job's params for the fields (the metric is how the answer is drawn, not part of the job). */
function requestOf(kind: SweepKind, model: string, f: Fields) {
  return {
    model,
    clean: f.clean,
    corrupt: f.corrupt,
    answer: f.answer,
    wrong: f.wrong,
    target: f.target,
    direction: f.direction,
    perPosition: f.positions === 'default' ? undefined : f.positions === 'each',
    ...(kind === 'attribution' ? { qkFix: f.qkfix === '1', compare: f.compare === '1' } : {}),
  };
}

export function SweepPanel({ kind, method }: { kind: SweepKind; method: string }) {
  const { model } = useExplorer();
  const url = useUrlParams();
  const current = readFields(url);
  const job = useJob<AttributionAnswer>(kind);
  const [form, setForm] = useState(current);
  const targets = useRequest('patching-targets', () => api.get<PatchingOptionsAnswer>('patching/targets'));
  const set = (k: keyof Fields) => (v: string) => setForm((f) => ({ ...f, [k]: v }));

  // An address with the prompts in it (a shared view) runs its sweep once when opened.
  const request = requestOf(kind, model, current);
  const key = url.has('clean') ? JSON.stringify(request) : null;
  const started = useRef<string | null>(null);
  useEffect(() => {
    if (key === null || started.current === key) return;
    started.current = key;
    job.start(request);
  }, [key]);

  const run = (e: FormEvent) => {
    e.preventDefault();
    setUrlParams(form);
    const r = requestOf(kind, model, form);
    started.current = JSON.stringify(r);
    job.start(r);
  };
  const setMetric = (m: string) => {
    set('metric')(m);
    setUrlParams({ metric: m });
  };

  return (
    <section aria-label={`${method} view`}>
      <form className="prompt-form sweep-form" onSubmit={run}>
        <label>
          Clean prompt
          <textarea value={form.clean} rows={2} onChange={(e) => set('clean')(e.target.value)} />
        </label>
        <label>
          Corrupt prompt (same number of tokens)
          <textarea value={form.corrupt} rows={2} onChange={(e) => set('corrupt')(e.target.value)} />
        </label>
        <label>
          Answer token
          <input value={form.answer} size={10} onChange={(e) => set('answer')(e.target.value)} />
        </label>
        <label>
          Wrong token
          <input value={form.wrong} size={10} onChange={(e) => set('wrong')(e.target.value)} />
        </label>
        <label>
          Target
          <select value={form.target} onChange={(e) => set('target')(e.target.value)}>
            {(targets.data?.[kind] ?? [form.target]).map((t) => (
              <option key={t}>{t}</option>
            ))}
          </select>
        </label>
        <label>
          Direction
          <select value={form.direction} onChange={(e) => set('direction')(e.target.value)}>
            <option value="denoise">denoise (clean into corrupt)</option>
            <option value="noise">noise (corrupt into clean)</option>
          </select>
        </label>
        <label>
          Positions
          <select value={form.positions} onChange={(e) => set('positions')(e.target.value)}>
            <option value="default">default (each for blocks, all for heads)</option>
            <option value="each">each position</option>
            <option value="all">all at once</option>
          </select>
        </label>
        {kind === 'attribution' && (
          <>
            <label className="check">
              <input
                type="checkbox"
                checked={form.qkfix === '1'}
                onChange={(e) => set('qkfix')(e.target.checked ? '1' : '0')}
              />
              QK fix (q, k)
            </label>
            <label className="check">
              <input
                type="checkbox"
                checked={form.compare === '1'}
                onChange={(e) => set('compare')(e.target.checked ? '1' : '0')}
              />
              compare with activation patching
            </label>
          </>
        )}
        <button type="submit" disabled={job.running}>
          Run
        </button>
      </form>
      <label className="metric-choice">
        Metric{' '}
        <select value={current.metric} onChange={(e) => setMetric(e.target.value)}>
          <option value="normalised">normalised logit difference (0 = corrupt, 1 = clean)</option>
          <option value="raw">logit difference of the patched run</option>
        </select>
      </label>
      <JobProgress handle={job} />
      <ErrorBanner error={job.error} />
      {job.result && <SweepResult r={job.result} kind={kind} method={method} metric={current.metric} />}
    </section>
  );
}

function SweepResult({
  r,
  kind,
  method,
  metric,
}: {
  r: AttributionAnswer;
  kind: SweepKind;
  method: string;
  metric: string;
}) {
  const svg = useRef<SVGSVGElement>(null);
  const measure = `logit(${JSON.stringify(r.answer?.token)}) − logit(${JSON.stringify(r.wrong?.token)})`;
  return (
    <>
      <p className="summary">
        {measure} at the last position: clean{' '}
        <span data-testid="clean-metric" data-value={r.cleanMetric}>
          {r.cleanMetric.toFixed(3)}
        </span>
        , corrupt{' '}
        <span data-testid="corrupt-metric" data-value={r.corruptMetric}>
          {r.corruptMetric.toFixed(3)}
        </span>
        {metric === 'normalised' &&
          (r.direction === 'denoise'
            ? ' · 0 = corrupt, 1 = the patch restores the clean answer'
            : ' · 1 = no effect, 0 = the patch destroys the clean answer')}
      </p>
      {kind === 'attribution' && r.correlation !== null && (
        <p className="summary">
          correlation with activation patching:{' '}
          <span data-testid="correlation" data-value={r.correlation}>
            {r.correlation.toFixed(3)}
          </span>
        </p>
      )}
      <SweepHeatmap
        ref={svg}
        r={r}
        metric={metric}
        title={`${method}${kind === 'attribution' && r.qkFixed ? ' (QK fix)' : ''}: ${r.target}`}
      />
      <ExportBar name={kind} data={r} svg={() => svg.current} />
      {r.actual && (
        <div data-testid="actual">
          <SweepHeatmap r={r.actual} metric={metric} title={`Activation patching: ${r.actual.target}`} />
        </div>
      )}
    </>
  );
}

const SweepHeatmap = ({
  ref,
  r,
  metric,
  title,
}: {
  ref?: Ref<SVGSVGElement>;
  r: PatchingAnswer;
  metric: string;
  title: string;
}) => {
  const t = r.table;
  const raw = metric === 'raw';
  const what = r.direction === 'denoise' ? 'clean patched into corrupt' : 'corrupt patched into clean';
  const column = (c: number) =>
    t.columnAxis === 'position'
      ? `position ${c}: clean ${JSON.stringify(t.cleanStrings[c])} / corrupt ${JSON.stringify(t.corruptStrings[c])}`
      : `${t.columnAxis} ${t.columns[c]}`;
  return (
    <Heatmap
      ref={ref}
      title={`${title} (${what})`}
      rows={t.rows}
      columns={t.columns}
      values={raw ? t.raw : t.values}
      rowAxis={t.rowAxis}
      columnAxis={t.columnAxis}
      scale={raw ? r.scale.raw : r.scale.normalised}
      describe={(i, c) =>
        `${t.rowAxis} ${t.rows[i]} · ${column(c)} · normalised ${t.values[i]![c]!.toFixed(3)} · logit difference ${t.raw[i]![c]!.toFixed(3)}`
      }
    />
  );
};
