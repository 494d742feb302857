import { ShapeError } from '../../errors.js';
import { exec, Tensor } from '../tensor.js';
import { add, div, mul, neg, sqrt, sub } from './elementwise.js';
import { broadcastShapes, int, node1, normAxis } from './kernel.js';
import { mean, sum } from './reduce.js';
import { expand, gatherElements, reshape, squeeze, sumTo, transpose, unsqueeze } from './shape.js';

/** Batched matrix product [..., m, k] @ [..., k, n] with broadcasting over batch dims. */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank < 2 || b.rank < 2) {
    throw new ShapeError(
      `matmul needs rank >= 2 tensors, got [${a.shape}] and [${b.shape}] (unsqueeze vectors first)`,
    );
  }
  if (a.shape[a.rank - 1] !== b.shape[b.rank - 2]) {
    throw new ShapeError(`matmul: inner dimensions differ: [${a.shape}] @ [${b.shape}]`);
  }
  if (a.dtype !== b.dtype) throw new ShapeError(`matmul: dtypes differ (${a.dtype} vs ${b.dtype})`);
  broadcastShapes(a.shape.slice(0, -2), b.shape.slice(0, -2));
  const [y] = exec(node1('MatMul', 2), [a, b], ([g]) => [
    a.requiresGrad ? sumTo(matmulTransposed(g!, b, false, true), a.shape) : null,
    b.requiresGrad ? sumTo(matmulTransposed(a, g!, true, false), b.shape) : null,
  ]);
  return y!;
}

/**
 * a @ b with either operand's last two axes transposed inside the kernel (ORT's FusedMatMul), for
 * gradients: transposing a weight first would copy it, which for a multi-GB model's unembedding is
 * hundreds of MB per backward. Not differentiable itself (backward runs without recording).
 */
function matmulTransposed(a: Tensor, b: Tensor, transA: boolean, transB: boolean): Tensor {
  const attrs = { transA: int(transA ? 1 : 0), transB: int(transB ? 1 : 0) };
  return exec(node1('FusedMatMul', 2, attrs, 1, 'com.microsoft'), [a, b])[0]!;
}

/** x @ W^T + b with W in [out, in] layout (torch.nn.Linear). */
export function linear(x: Tensor, w: Tensor, b?: Tensor): Tensor {
  const y = matmul(x, transpose(w));
  return b ? add(y, b) : y;
}

export function softmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis(axis, x.rank);
  const [y] = exec(node1('Softmax', 1, { axis: int(a) }), [x], ([g], [out]) => {
    const gy = mul(g!, out!);
    return [sub(gy, mul(out!, sum(gy, a, true)))];
  });
  return y!;
}

export function logSoftmax(x: Tensor, axis = -1): Tensor {
  const a = normAxis(axis, x.rank);
  const [y] = exec(node1('LogSoftmax', 1, { axis: int(a) }), [x], ([g], [out]) => {
    const p = exec(node1('Exp', 1), [out!])[0]!;
    return [sub(g!, mul(p, sum(g!, a, true)))];
  });
  return y!;
}

/** LayerNorm over the last axis; returns the pieces TransformerLens hooks (scale, normalized). */
export function layerNormParts(x: Tensor, eps: number): { scale: Tensor; normalized: Tensor } {
  const centered = sub(x, mean(x, -1, true));
  const scale = sqrt(add(mean(mul(centered, centered), -1, true), eps));
  return { scale, normalized: div(centered, scale) };
}

export function layerNorm(x: Tensor, weight: Tensor | null, bias: Tensor | null, eps = 1e-5): Tensor {
  let y = layerNormParts(x, eps).normalized;
  if (weight) y = mul(y, weight);
  if (bias) y = add(y, bias);
  return y;
}

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps). */
export function rmsNormParts(x: Tensor, eps: number): { scale: Tensor; normalized: Tensor } {
  const scale = sqrt(add(mean(mul(x, x), -1, true), eps));
  return { scale, normalized: div(x, scale) };
}

export function rmsNorm(x: Tensor, weight: Tensor | null, eps = 1e-6): Tensor {
  const y = rmsNormParts(x, eps).normalized;
  return weight ? mul(y, weight) : y;
}

/**
 * Cross-entropy of logits [..., vocab] against integer targets [...].
 * reduction 'mean' (default), 'sum' or 'none' (per position).
 */
export function crossEntropy(
  logits: Tensor,
  targets: Tensor,
  reduction: 'mean' | 'sum' | 'none' = 'mean',
): Tensor {
  if (targets.rank !== logits.rank - 1 || targets.shape.some((d, i) => d !== logits.shape[i])) {
    throw new ShapeError(
      `crossEntropy: targets [${targets.shape}] must match logits [${logits.shape}] without the last axis`,
    );
  }
  const lp = logSoftmax(logits, -1);
  const picked = squeeze(gatherElements(lp, -1, unsqueeze(targets, -1)), -1);
  const nll = neg(picked);
  if (reduction === 'none') return nll;
  return reduction === 'sum' ? sum(nll) : mean(nll);
}

/**
 * Einstein summation over one or two operands, e.g. einsum('bpd,dv->bpv', x, W).
 * Each index may appear once per operand; '...' is not supported (reshape first).
 */
export function einsum(equation: string, ...operands: Tensor[]): Tensor {
  const eq = equation.replace(/\s+/g, '');
  const [lhs, out] = eq.split('->');
  if (out === undefined || !lhs)
    throw new ShapeError(`einsum '${equation}': write the output explicitly, as 'ij,jk->ik'`);
  const subs = lhs.split(',');
  if (subs.length !== operands.length || subs.length > 2) {
    throw new ShapeError(
      `einsum '${equation}': ${subs.length} subscripts for ${operands.length} operands (1 or 2 supported)`,
    );
  }
  const sizes = new Map<string, number>();
  subs.forEach((s, i) => {
    const t = operands[i]!;
    if (s.length !== t.rank)
      throw new ShapeError(
        `einsum '${equation}': '${s}' has ${s.length} indices but operand ${i} has shape [${t.shape}]`,
      );
    if (new Set(s).size !== s.length)
      throw new ShapeError(`einsum '${equation}': repeated index in '${s}' is not supported`);
    [...s].forEach((c, j) => {
      const d = t.shape[j]!;
      if (sizes.has(c) && sizes.get(c) !== d)
        throw new ShapeError(`einsum '${equation}': index '${c}' is ${sizes.get(c)} and ${d}`);
      sizes.set(c, d);
    });
  });
  for (const c of out)
    if (!sizes.has(c)) throw new ShapeError(`einsum '${equation}': output index '${c}' is not in any input`);
  const [y] = exec(node1('Einsum', operands.length, { equation: { s: eq } }), operands, ([g]) =>
    operands.map((t, i) => {
      if (!t.requiresGrad) return null;
      const others = subs.filter((_, j) => j !== i);
      const available = new Set([...out, ...others.join('')]);
      const target = subs[i]!;
      const kept = [...target].filter((c) => available.has(c)).join('');
      const otherOps = operands.filter((_, j) => j !== i);
      let gi = einsum(`${[out, ...others].join(',')}->${kept}`, g!, ...otherOps);
      if (kept.length !== target.length) {
        gi = reshape(
          gi,
          [...target].map((c) => (available.has(c) ? sizes.get(c)! : 1)),
        );
        gi = expand(gi, t.shape);
      }
      return gi;
    }),
  );
  return y!;
}
