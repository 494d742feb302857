// Circuit discovery (`sonde circuit`): ACDC, EAP or EAP-IG over clean/corrupt pairs, drawn as the model's
// graph by layer with every scored edge; a slider keeps the edges with |score| ≥ a threshold.
import { useEffect, useRef, useState } from 'react';
import type { DiscoveryResult } from '../../../src/circuits/discover.js';
import type { GraphDrawing } from '../../../src/circuits/drawing.js';
import type { ExamplePairs } from '../../../src/circuits/pairs.js';
import { api } from '../api';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { GraphCanvas, type GraphEdge } from '../components/GraphCanvas';
import { JobProgress } from '../components/JobProgress';
import { ThresholdSlider } from '../components/ThresholdSlider';
import { useExplorer } from '../context';
import { useJob, useStartOnce, useRequest, type JobHandle } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';

type CircuitResult = DiscoveryResult & { drawing: GraphDrawing };

const METHODS = ['eap', 'eap-ig', 'acdc'] as const;
const METRICS = ['logit-diff', 'kl', 'loss'] as const;

/** The form's fields, as the address holds them. */
interface CircuitForm {
  method: string;
  metric: string;
  pairs: string;
  /** ACDC's threshold. */
  cut: string;
  /** EAP / EAP-IG: edges kept. */
  top: string;
  steps: string;
  ablation: string;
}

function formFromUrl(url: URLSearchParams): CircuitForm {
  return {
    method: url.get('method') ?? 'eap',
    metric: url.get('metric') ?? 'logit-diff',
    pairs: url.get('pairs') ?? '',
    cut: url.get('cut') ?? '0.02',
    top: url.get('top') ?? '30',
    steps: url.get('steps') ?? '5',
    ablation: url.get('ablation') ?? 'corrupt',
  };
}

/** The job's params for the form (numbers as typed: the server refuses bad ones). */
function jobParams(model: string, f: CircuitForm) {
  return {
    model,
    method: f.method,
    metric: f.metric,
    pairs: f.pairs,
    ablation: f.ablation,
    ...(f.method === 'acdc' ? { threshold: Number(f.cut) } : { top: Number(f.top) }),
    ...(f.method === 'eap-ig' ? { steps: Number(f.steps) } : {}),
  };
}

export function CircuitView() {
  const { model } = useExplorer();
  const url = useUrlParams();
  const examples = useRequest('circuit-examples', () => api.get<ExamplePairs[]>('circuits/examples'));
  const job = useJob<CircuitResult>('circuit');
  const form = formFromUrl(url);
  // The address holds the request: opening it runs the same job again.
  const key = form.pairs ? JSON.stringify(jobParams(model, form)) : null;
  useStartOnce(key, job.start);
  const r = job.result;
  return (
    <section aria-label="circuit view">
      <CircuitFormView initial={form} examples={examples.data ?? []} busy={job.running} />
      <JobProgress handle={job as JobHandle<unknown>} />
      <ErrorBanner error={job.error ?? examples.error} />
      {r && !job.running && <CircuitResultView r={r} url={url} />}
    </section>
  );
}

function CircuitFormView({
  initial,
  examples,
  busy,
}: {
  initial: CircuitForm;
  examples: ExamplePairs[];
  busy: boolean;
}) {
  const [f, setF] = useState(initial);
  const set = (change: Partial<CircuitForm>) => setF((x) => ({ ...x, ...change }));
  // With no pairs yet, the first example fills the box.
  useEffect(() => {
    if (f.pairs === '' && examples.length > 0) set({ pairs: examples[0]!.text, metric: examples[0]!.metric });
  }, [examples]);
  return (
    <form
      className="circuit-form"
      onSubmit={(e) => {
        e.preventDefault();
        setUrlParams({ ...f, minScore: null, pin: null });
      }}
    >
      <label>
        Method{' '}
        <select value={f.method} onChange={(e) => set({ method: e.target.value })}>
          {METHODS.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      <label>
        Metric{' '}
        <select value={f.metric} onChange={(e) => set({ metric: e.target.value })}>
          {METRICS.map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      {f.method === 'acdc' ? (
        <label>
          ACDC threshold{' '}
          <input
            type="number"
            min={0}
            step="any"
            value={f.cut}
            onChange={(e) => set({ cut: e.target.value })}
          />
        </label>
      ) : (
        <label>
          Keep top{' '}
          <input
            type="number"
            min={1}
            step={1}
            value={f.top}
            onChange={(e) => set({ top: e.target.value })}
          />
        </label>
      )}
      {f.method === 'eap-ig' && (
        <label>
          Steps{' '}
          <input
            type="number"
            min={1}
            step={1}
            value={f.steps}
            onChange={(e) => set({ steps: e.target.value })}
          />
        </label>
      )}
      <label>
        Ablation{' '}
        <select value={f.ablation} onChange={(e) => set({ ablation: e.target.value })}>
          <option>corrupt</option>
          <option>zero</option>
        </select>
      </label>
      <label>
        Example pairs{' '}
        <select
          value=""
          onChange={(e) => {
            const ex = examples.find((x) => x.name === e.target.value);
            if (ex) set({ pairs: ex.text, metric: ex.metric });
          }}
        >
          <option value="">choose…</option>
          {examples.map((x) => (
            <option key={x.name} value={x.name}>
              {x.file} ({x.about})
            </option>
          ))}
        </select>
      </label>
      <label className="pairs">
        Pairs (one {'{"clean", "corrupt", "answer", "wrong"}'} object per line)
        <textarea
          rows={5}
          value={f.pairs}
          spellCheck={false}
          onChange={(e) => set({ pairs: e.target.value })}
        />
      </label>
      <button type="submit" disabled={busy}>
        Find circuit
      </button>
    </form>
  );
}

function CircuitResultView({ r, url }: { r: CircuitResult; url: URLSearchParams }) {
  const svg = useRef<SVGSVGElement>(null);
  const scored = r.drawing.edges.filter((e) => e.score !== null);
  const magnitudes = scored.map((e) => Math.abs(e.score!));
  // By default the threshold of the weakest circuit edge: the drawing starts as (about) the circuit.
  const inCircuit = scored.filter((e) => e.inCircuit).map((e) => Math.abs(e.score!));
  const fallback = inCircuit.length ? Math.min(...inCircuit) : Math.max(0, ...magnitudes);
  const threshold = Number(url.get('minScore') ?? fallback);
  const edges: GraphEdge[] = scored
    .filter((e) => Math.abs(e.score!) >= threshold)
    .map((e) => ({ id: e.edge, source: e.source, targets: e.targets, weight: e.score! }));
  const pin = url.get('pin');
  const c = r.circuit;
  const nodeIn = new Set(c.nodes);
  return (
    <>
      <p
        className="summary"
        data-testid="circuit-summary"
        data-faithfulness={c.faithfulness}
        data-metric={c.metric}
      >
        {r.method.toUpperCase()} on {r.pairs} pair{r.pairs === 1 ? '' : 's'} · {r.metric}: clean{' '}
        {r.cleanMetric.toFixed(4)}, corrupt {r.corruptMetric.toFixed(4)} · circuit {c.edges.length} of{' '}
        {r.graph.edges} edges, {c.nodes.length} nodes, {r.metric} {c.metric.toFixed(4)}, faithfulness{' '}
        {c.faithfulness.toFixed(3)}
      </p>
      {r.warnings.map((w) => (
        <p key={w} className="warning">
          {w}
        </p>
      ))}
      <ThresholdSlider
        magnitudes={magnitudes}
        value={threshold}
        kept={edges.length}
        label="|score| ≥"
        onChange={(v) => setUrlParams({ minScore: String(v) })}
      />
      <GraphCanvas
        ref={svg}
        drawing={r.drawing}
        edges={edges}
        pinned={pin}
        onPin={(id) => setUrlParams({ pin: id })}
        describe={(id) => (
          <p>
            {nodeIn.has(id) ? 'in the circuit' : 'not in the circuit'}
            {r.method === 'acdc' && ' · ACDC scores are measured; untested edges are not drawn'}
          </p>
        )}
      />
      <ExportBar name="circuit" data={r} svg={() => svg.current} />
    </>
  );
}
