// Attribution graphs (`sonde graph`): a prompt's features, error nodes, tokens and top logits with the
// transcoders replacing the MLPs, pruned as circuit-tracer prunes; or a circuit-tracer graph file to view.
import { useRef, useState } from 'react';
import type { GraphFile } from '../../../src/circuits/attribution-file.js';
import type { GraphScores } from '../../../src/circuits/attribution-influence.js';
import type { PlacedCircuit } from '../../../src/plot/circuit.js';
import { api } from '../api';
import { ErrorBanner } from '../components/ErrorBanner';
import { ExportBar } from '../components/ExportBar';
import { GraphCanvas, type GraphEdge } from '../components/GraphCanvas';
import { JobProgress } from '../components/JobProgress';
import { PromptForm, usePrompt } from '../components/PromptForm';
import { ThresholdSlider } from '../components/ThresholdSlider';
import { useExplorer } from '../context';
import { useJob, useStartOnce, type JobHandle } from '../hooks';
import { setUrlParams, useUrlParams } from '../url-state';

interface ShownGraph {
  file: GraphFile;
  drawing: PlacedCircuit;
  scores?: GraphScores;
}

/** circuit-tracer's pruning defaults (the library's GRAPH_DEFAULTS). */
const NODE_THRESHOLD = '0.8';
const EDGE_THRESHOLD = '0.98';

export function AttributionGraphView() {
  const { model } = useExplorer();
  const url = useUrlParams();
  const prompt = usePrompt();
  const nodeThreshold = url.get('nodeThreshold') ?? NODE_THRESHOLD;
  const edgeThreshold = url.get('edgeThreshold') ?? EDGE_THRESHOLD;
  const [nodeField, setNodeField] = useState(nodeThreshold);
  const [edgeField, setEdgeField] = useState(edgeThreshold);
  const job = useJob<ShownGraph>('attribution-graph');
  const [uploaded, setUploaded] = useState<ShownGraph | null>(null);
  const [uploadError, setUploadError] = useState<string | null>(null);
  const key = JSON.stringify({
    model,
    prompt,
    nodeThreshold: Number(nodeThreshold),
    edgeThreshold: Number(edgeThreshold),
  });
  useStartOnce(key, (params) => {
    setUploaded(null);
    job.start(params);
  });
  const shown = uploaded ?? (job.running ? null : job.result);
  return (
    <section aria-label="attribution graph view">
      <PromptForm
        busy={job.running}
        extra={() => ({ nodeThreshold: nodeField, edgeThreshold: edgeField, minWeight: null, pin: null })}
      >
        <Fraction label="Node threshold" value={nodeField} set={setNodeField} />
        <Fraction label="Edge threshold" value={edgeField} set={setEdgeField} />
      </PromptForm>
      <label className="upload">
        Or view a circuit-tracer graph file{' '}
        <input
          type="file"
          accept=".json,application/json"
          onChange={(e) => {
            const f = e.target.files?.[0];
            if (!f) return;
            setUploadError(null);
            f.text()
              .then((text) => {
                let file: unknown;
                try {
                  file = JSON.parse(text);
                } catch {
                  throw new Error(`${f.name} is not JSON`);
                }
                return api.post<ShownGraph>('attribution-graph/file', { file });
              })
              .then(
                (g) => setUploaded(g),
                (err: Error) => setUploadError(err.message),
              );
          }}
        />
      </label>
      <JobProgress handle={job as JobHandle<unknown>} />
      <ErrorBanner error={uploadError ?? job.error} />
      {shown && <GraphResult g={shown} url={url} uploaded={uploaded !== null} />}
    </section>
  );
}

/** A pruning threshold, edited with the prompt and put in the address when it runs. */
function Fraction({ label, value, set }: { label: string; value: string; set(v: string): void }) {
  return (
    <label>
      {label}{' '}
      <input type="number" min={0} max={1} step="any" value={value} onChange={(e) => set(e.target.value)} />
    </label>
  );
}

const NODE_KIND: Record<GraphFile['nodes'][number]['feature_type'], string> = {
  'cross layer transcoder': 'transcoder feature',
  'mlp reconstruction error': 'error node (what the transcoder misses)',
  embedding: 'token embedding',
  logit: 'logit',
};

function GraphResult({ g, url, uploaded }: { g: ShownGraph; url: URLSearchParams; uploaded: boolean }) {
  const svg = useRef<SVGSVGElement>(null);
  const { file } = g;
  const magnitudes = file.links.map((l) => Math.abs(l.weight));
  const threshold = Number(url.get('minWeight') ?? 0);
  const edges: GraphEdge[] = file.links
    .filter((l) => Math.abs(l.weight) >= threshold)
    .map((l) => ({
      id: `${l.source}->${l.target}`,
      source: l.source,
      targets: [l.target],
      weight: l.weight,
    }));
  const byId = new Map(file.nodes.map((n) => [n.node_id, n] as const));
  const tokens = file.metadata.prompt_tokens;
  const labels = new Map(g.drawing.nodes.map((n) => [n.id, n.label] as const));
  /** '#440 L1 @13', 'error L2 @5', 'Lily @13', 'logit saw 0.240'. */
  const nodeName = (id: string) => {
    const n = byId.get(id);
    const label = labels.get(id) ?? id;
    if (!n) return label;
    if (n.feature_type === 'embedding') return `${JSON.stringify(label)} @${n.ctx_idx}`;
    if (n.feature_type === 'logit') return `logit ${label}`;
    return `${label} L${n.layer} @${n.ctx_idx}`;
  };
  return (
    <>
      <p
        className="summary"
        data-testid="graph-summary"
        data-nodes={file.nodes.length}
        data-links={file.links.length}
        data-replacement={g.scores?.replacement ?? ''}
        data-completeness={g.scores?.completeness ?? ''}
      >
        {uploaded ? `uploaded graph “${file.metadata.slug}”: ` : ''}
        {file.nodes.length} nodes, {file.links.length} links (pruned at node threshold{' '}
        {file.metadata.node_threshold ?? 'n/a'})
        {g.scores &&
          ` · replacement score ${g.scores.replacement.toFixed(3)}, completeness score ${g.scores.completeness.toFixed(3)}`}
      </p>
      <ThresholdSlider
        magnitudes={magnitudes}
        value={threshold}
        kept={edges.length}
        onChange={(v) => setUrlParams({ minWeight: String(v) })}
      />
      <GraphCanvas
        ref={svg}
        drawing={g.drawing}
        edges={edges}
        pinned={url.get('pin')}
        onPin={(id) => setUrlParams({ pin: id })}
        edgeLabel={(e) => `${nodeName(e.source)} → ${nodeName(e.targets[0]!)}`}
        describe={(id) => {
          const n = byId.get(id);
          if (!n) return null;
          const feature = n.feature_type === 'cross layer transcoder' ? n.node_id.split('_')[1] : null;
          return (
            <dl
              className="node-facts"
              data-layer={n.layer}
              data-pos={n.ctx_idx}
              data-feature={feature ?? ''}
              data-activation={n.activation ?? ''}
              data-influence={n.influence ?? ''}
            >
              <dt>kind</dt>
              <dd>{NODE_KIND[n.feature_type]}</dd>
              {feature !== null && (
                <>
                  <dt>feature</dt>
                  <dd>#{feature}</dd>
                </>
              )}
              <dt>layer</dt>
              <dd>{n.layer}</dd>
              <dt>position</dt>
              <dd>
                {n.ctx_idx} {JSON.stringify(tokens[n.ctx_idx] ?? '')}
              </dd>
              {n.activation !== null && (
                <>
                  <dt>activation</dt>
                  <dd>{n.activation.toFixed(4)}</dd>
                </>
              )}
              {n.influence !== null && (
                <>
                  <dt>influence</dt>
                  <dd>{n.influence.toFixed(4)} (cumulative)</dd>
                </>
              )}
              {n.clerp && (
                <>
                  <dt>output</dt>
                  <dd>{n.clerp}</dd>
                </>
              )}
            </dl>
          );
        }}
      />
      <ExportBar name="attribution-graph" data={file} svg={() => svg.current} />
    </>
  );
}
