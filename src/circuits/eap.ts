// Edge attribution patching (Syed et al. 2023) and EAP with integrated gradients (Hanna et al. 2024): every
// edge's score is the gradient of the metric at its receiver's input · (clean − corrupt) output of its
// sender, summed over positions and averaged over pairs: a first-order estimate of metric(clean) −
// metric(edge patched). EAP-IG averages the gradient over runs whose input embeddings move from the
// corrupt to the clean ones (α = k/steps, k = 1..steps), so one step is EAP.
import { UsageError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { concat, permute, reshape } from '../engine/ops/shape.js';
import { Tensor, noGrad } from '../engine/tensor.js';
import { edgeOffsets, edgeRun, receiverGroups, type ReceiverGroup } from './edge-run.js';
import type { CircuitTask, TaskBatch } from './task.js';

export interface EapOptions {
  /** Integrated-gradient steps (1: plain EAP). */
  steps?: number;
  /** Called after each gradient run. */
  onProgress?: (done: number, total: number) => void;
}

/** Every edge's score, in graph.edges order. */
export async function edgeAttribution(task: CircuitTask, opts: EapOptions = {}): Promise<Float32Array> {
  const steps = opts.steps ?? 1;
  if (!(Number.isInteger(steps) && steps >= 1))
    throw new UsageError(`--steps must be a whole number ≥ 1, got ${steps}`);
  const { graph, model } = task;
  const groups = receiverGroups(graph, model.cfg.nLayers);
  const offsets = edgeOffsets(graph);
  const N = task.pairs.length;
  const scores = new Float32Array(graph.edges.length);
  const total = task.batches.length * steps;
  let done = 0;
  for (const b of task.batches) {
    const grads = new Map<string, Tensor>(); // by receiver hook
    for (let k = 1; k <= steps; k++) {
      await gradientRun(task, b, steps === 1 ? 1 : k / steps, groups, grads, N);
      opts.onProgress?.(++done, total);
    }
    const diffs = noGrad(() =>
      b.cleanSenders.map((c, i) => (task.ablation === 'corrupt' ? sub(c, b.corruptSenders[i]!) : c)),
    );
    for (const g of groups) {
      const perEdge = await noGrad(() => groupScores(diffs, grads.get(g.hook)!, g, steps)).f32();
      // perEdge [upstream, count] -> the edges of each receiver of the group.
      for (let j = 0; j < g.count; j++) {
        const o = offsets[g.first + j]!;
        for (let s = 0; s < g.upstream; s++) scores[o + s]! += perEdge[s * g.count + j]!;
      }
    }
  }
  return scores;
}

/** One backward pass; adds each receiver group's input gradient [n, pos, count, d_model] into `grads`. */
async function gradientRun(
  task: CircuitTask,
  b: TaskBatch,
  alpha: number,
  groups: ReceiverGroup[],
  grads: Map<string, Tensor>,
  N: number,
): Promise<void> {
  const corruptInput = b.corruptSenders[0]!; // [n, pos, 1, d_model]
  const { logits } = edgeRun(task.model, b.batch.clean, {
    graph: task.graph,
    corrupt: null,
    positions: b.positions, // unscored positions carry no gradient: not unembedded
    input: (x) => {
      const [n, P, D] = x.shape as [number, number, number];
      const from = reshape(corruptInput, [n, P, D]);
      const moved = alpha === 1 ? x : add(from, mul(sub(x, from), alpha));
      // A leaf: gradients are wanted at the receivers, not beyond the input.
      return moved.detach().requireGrad();
    },
    onReceiver: (g, x) => {
      x.registerHook((grad) => {
        const have = grads.get(g.hook);
        grads.set(g.hook, have ? add(have, grad) : grad);
      });
    },
  });
  const loss = mul(sum(b.metricAt(logits)), 1 / N);
  loss.backward();
  await Promise.all(groups.map((g) => grads.get(g.hook)?.data()));
}

/** Σ_{pairs, pos, d} diff[s] · grad[r] / steps for the group's upstream senders s and receivers r. */
function groupScores(diffs: Tensor[], grad: Tensor, g: ReceiverGroup, steps: number): Tensor {
  const [n, P, , D] = grad.shape as [number, number, number, number];
  const parts: Tensor[] = [];
  let width = 0;
  for (const d of diffs) {
    if (width >= g.upstream) break;
    parts.push(d);
    width += d.shape[2]!;
  }
  const stacked = parts.length === 1 ? parts[0]! : concat(parts, 2); // [n, pos, upstream, d_model]
  const S = reshape(permute(stacked, [2, 0, 1, 3]), [g.upstream, n * P * D]);
  const G = reshape(permute(grad, [0, 1, 3, 2]), [n * P * D, g.count]);
  return mul(matmul(S, G), 1 / steps);
}
