// Edge attribution patching (Syed et al. 2023) and EAP with integrated gradients (Hanna et al. 2024): every
// edge's score is the gradient of the metric at its receiver's input · (clean − corrupt) output of its
// sender, summed over positions and averaged over pairs: a first-order estimate of metric(clean) −
// metric(edge patched). EAP-IG averages the gradient over runs whose input embeddings move from the
// corrupt to the clean ones (α = k/steps, k = 1..steps), so one step is EAP.
import { UsageError } from '../errors.js';
import { add, mul, sub } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/nn.js';
import { sum } from '../engine/ops/reduce.js';
import { concat, permute, reshape, slice } from '../engine/ops/shape.js';
import { Tensor, noGrad } from '../engine/tensor.js';
import { compiledReads, lazily, realize } from '../engine/lazy.js';
import { edgeOffsets, edgeRun, receiverGroups, type ReceiverGroup } from './edge-run.js';
import type { CircuitTask, TaskBatch } from './task.js';

export interface EapOptions {
  /** Integrated-gradient steps (1: plain EAP). */
  steps?: number;
  /** Called after each gradient run. */
  onProgress?: (done: number, total: number) => void;
}

/** Token positions one gradient run takes (steps of EAP-IG run together as variants up to this). */
const ROWS_PER_RUN = 4096;

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
  const total = task.batches.reduce((t, b) => t + Math.ceil(steps / stepsPerRun(b)), 0);
  let done = 0;
  for (const b of task.batches) {
    // Forward, backward and every group's scores are one lazy graph, read once (compiled on first
    // sight: EAP-IG runs the same structure once per chunk of steps).
    const perRun = stepsPerRun(b);
    let perGroup: Tensor[] | null = null;
    for (let k0 = 0; k0 < steps; k0 += perRun) {
      const alphas = Array.from({ length: Math.min(perRun, steps - k0) }, (_, i) =>
        steps === 1 ? 1 : (k0 + i + 1) / steps,
      );
      const part = lazily(() => gradientScores(task, b, alphas, groups, N, steps));
      perGroup = perGroup ? perGroup.map((t, i) => noGrad(() => lazily(() => add(t, part[i]!)))) : part;
      await compiledReads(() => realize(...perGroup!));
      opts.onProgress?.(++done, total);
    }
    for (const [gi, g] of groups.entries()) {
      const perEdge = await perGroup![gi]!.f32();
      // perEdge [upstream, count] -> the edges of each receiver of the group.
      for (let j = 0; j < g.count; j++) {
        const o = offsets[g.first + j]!;
        for (let s = 0; s < g.upstream; s++) scores[o + s]! += perEdge[s * g.count + j]!;
      }
    }
  }
  return scores;
}

function stepsPerRun(b: TaskBatch): number {
  return Math.max(1, Math.floor(ROWS_PER_RUN / (b.batch.pairs.length * b.batch.pairs[0]!.clean.length)));
}

/**
 * One backward pass over the steps `alphas` (run together as variants): each receiver group's input
 * gradient, summed over the steps, dotted with its upstream senders' differences: [upstream, count]
 * per group, divided by `steps`.
 */
function gradientScores(
  task: CircuitTask,
  b: TaskBatch,
  alphas: number[],
  groups: ReceiverGroup[],
  N: number,
  steps: number,
): Tensor[] {
  const corruptInput = b.corruptSenders[0]!; // [n, pos, 1, d_model]
  const V = alphas.length;
  const grads = new Map<string, Tensor>(); // by receiver hook
  const { logits } = edgeRun(task.model, b.batch.clean, {
    graph: task.graph,
    corrupt: null,
    variants: V,
    positions: b.positions, // unscored positions carry no gradient: not unembedded
    input: (x) => {
      const [B, P, D] = x.shape as [number, number, number];
      const n = B / V;
      const from = reshape(corruptInput, [1, n, P, D]);
      const moved =
        V === 1 && alphas[0] === 1
          ? x
          : reshape(
              add(
                from,
                mul(sub(reshape(x, [V, n, P, D]), from), new Tensor(Float32Array.from(alphas), [V, 1, 1, 1])),
              ),
              [B, P, D],
            );
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
  return noGrad(() => {
    // The senders' differences, sender-major [senders, n*pos*d_model]: a group's upstream ones are a prefix.
    const [n, P] = b.batch.clean.shape as [number, number];
    const D = task.model.cfg.dModel;
    const rows = b.cleanSenders.map((c, i) => {
      const d = task.ablation === 'corrupt' ? sub(c, b.corruptSenders[i]!) : c;
      return reshape(permute(d, [2, 0, 1, 3]), [c.shape[2]!, n * P * D]);
    });
    const stack = concat(rows, 0);
    return groups.map((g) => {
      let grad = grads.get(g.hook)!; // [V*n, pos, count, d_model]
      if (V > 1) grad = sum(reshape(grad, [V, n, P, g.count, D]), 0);
      const G = reshape(permute(grad, [0, 1, 3, 2]), [n * P * D, g.count]);
      const S = g.upstream === stack.shape[0] ? stack : slice(stack, 0, 0, g.upstream);
      return mul(matmul(S, G), 1 / steps);
    });
  });
}
