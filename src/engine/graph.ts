import type { GraphSpec, Kernel } from './backend/backend.js';

/**
 * Appends kernel number `i` to a graph: its inputs x0.. and outputs y0.. take the given graph names,
 * its constants become initializers, and its temporaries are prefixed so that kernels never clash.
 * The tracer and the lazy engine both assemble graphs this way.
 */
export function appendKernel(
  graph: GraphSpec,
  i: number,
  kernel: Kernel,
  inputNames: string[],
  outputNames: string[],
): void {
  const local = new Map<string, string>();
  inputNames.forEach((n, j) => local.set(`x${j}`, n));
  (kernel.consts ?? []).forEach((c, j) => {
    const n = `k${i}_c${j}`;
    graph.initializers.push({ name: n, tensor: c });
    local.set(`c${j}`, n);
  });
  outputNames.forEach((n, j) => local.set(`y${j}`, n));
  const rename = (s: string) => (s === '' ? '' : (local.get(s) ?? `k${i}_${s}`));
  for (const node of kernel.nodes)
    graph.nodes.push({ ...node, inputs: node.inputs.map(rename), outputs: node.outputs.map(rename) });
}
