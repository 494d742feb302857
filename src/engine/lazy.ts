import { DeviceError, ShapeError } from '../errors.js';
import {
  getBackend,
  type AsyncCompiledGraph,
  type CompiledGraph,
  type GraphSpec,
  type RawTensor,
} from './backend/backend.js';
import { withEngineState } from './context.js';
import { appendKernel } from './graph.js';
import type { PendingOp, Tensor } from './tensor.js';

/**
 * Computing lazy tensors. The pending kernels behind the tensors asked for become one ONNX graph,
 * named by position so that its text (the cache key) depends only on the graph's structure, the
 * shapes of what it reads and its kernel constants: never on the values of the tensors it reads.
 * Those are fed as graph inputs, so a sweep that changes a patched position or a steering vector
 * (passed as tensors) reuses one compiled graph.
 */
interface Plan {
  key: string;
  spec: GraphSpec;
  /** Ready tensors read by the graph, in the order of spec.inputs. */
  feeds: Tensor[];
  /** Tensors computed, in the order of spec.outputs. */
  outputs: Tensor[];
  ops: PendingOp[];
}

function constKey(c: RawTensor): string {
  return `${c.dtype}[${c.shape}]=${Array.from(c.data as ArrayLike<number | bigint>, String).join(',')}`;
}

function plan(targets: Tensor[]): Plan | null {
  const wanted: Tensor[] = [];
  const seen = new Set<Tensor>();
  const want = (t: Tensor) => {
    if (t.isReady || seen.has(t)) return;
    seen.add(t);
    wanted.push(t);
  };
  for (const t of targets) {
    want(t);
    for (const g of t._group ?? []) want(g);
  }
  if (wanted.length === 0) return null;

  // Pending ops in dependency order (iterative: a transformer's graph is deep).
  const ops: PendingOp[] = [];
  const visited = new Set<PendingOp>();
  const stack: [PendingOp, boolean][] = wanted.map((t) => [t._pending!, false]);
  stack.reverse();
  while (stack.length) {
    const [op, expanded] = stack.pop()!;
    if (expanded) {
      ops.push(op);
      continue;
    }
    if (visited.has(op)) continue;
    visited.add(op);
    stack.push([op, true]);
    for (let j = op.inputs.length - 1; j >= 0; j--) {
      const p = op.inputs[j]!._pending;
      if (p && !op.inputs[j]!.isReady && !visited.has(p)) stack.push([p, false]);
    }
  }

  const names = new Map<Tensor, string>();
  const spec: GraphSpec = { nodes: [], inputs: [], outputs: [], initializers: [] };
  const feeds: Tensor[] = [];
  const key: string[] = [];
  const nameOf = (t: Tensor): string => {
    let n = names.get(t);
    if (n) return n;
    // Not made by an op of this plan: a value the graph reads.
    n = `i${feeds.length}`;
    names.set(t, n);
    feeds.push(t);
    spec.inputs.push({ name: n, dtype: t.dtype, shape: t.shape });
    key.push(`${n}:${t.dtype}[${t.shape}]`);
    return n;
  };
  ops.forEach((op, i) => {
    const inputNames = op.inputs.map((t) => (t.isReady ? nameOf(t) : (names.get(t) ?? nameOf(t))));
    const outputNames = op.outputs.map((t, j) => {
      const n = `k${i}_y${j}`;
      if (!t.isReady) names.set(t, n);
      return n;
    });
    appendKernel(spec, i, op.kernel, inputNames, outputNames);
    key.push(`${op.kernel.key}(${inputNames.join(',')})` + (op.kernel.consts ?? []).map(constKey).join(';'));
  });
  const outputs = wanted;
  spec.outputs = outputs.map((t) => names.get(t)!);
  key.push(`->${spec.outputs.join(',')}`);
  return { key: key.join('\n'), spec, feeds, outputs, ops };
}

function fill(p: Plan, result: Record<string, RawTensor>): void {
  p.outputs.forEach((t, i) => {
    const r = result[p.spec.outputs[i]!]!;
    if (r.shape.length !== t.shape.length || r.shape.some((d, j) => d !== t.shape[j]))
      throw new ShapeError(
        `lazy engine: ${t._pending?.kernel.key} computed shape [${r.shape}] where [${t.shape}] was inferred`,
      );
    t._fill(r.data);
  });
}

function feedsOf(p: Plan): Record<string, RawTensor> {
  const feeds: Record<string, RawTensor> = {};
  p.feeds.forEach((t, i) => (feeds[p.spec.inputs[i]!.name] = t.raw()));
  return feeds;
}

/** A small LRU of compiled graphs, disposed when evicted. */
class GraphCache<G extends { dispose(): void }> {
  private readonly map = new Map<string, G>();
  constructor(private readonly capacity: number) {}
  get(key: string): G | undefined {
    const g = this.map.get(key);
    if (g) {
      this.map.delete(key);
      this.map.set(key, g);
    }
    return g;
  }
  set(key: string, g: G): void {
    this.map.set(key, g);
    while (this.map.size > this.capacity) {
      const [k, old] = this.map.entries().next().value as [string, G];
      this.map.delete(k);
      old.dispose();
    }
  }
  get size(): number {
    return this.map.size;
  }
}

const syncGraphs = new GraphCache<CompiledGraph>(32);
const asyncGraphs = new GraphCache<{ graph: Promise<AsyncCompiledGraph>; dispose(): void }>(32);
/** Structures seen once: computed kernel by kernel, since compiling costs more than one run. */
const seenOnce = new Set<string>();
/** > 0 while a sweep reads: its structures will run again, so they compile on first sight. */
let sweeping = 0;

/**
 * Runs `read` (which reads lazy tensors) compiling every structure on its first sight: for sweeps that
 * run one structure many times (a patched run per batch of edges), where the kernel-by-kernel first
 * pass of a large graph costs many compiled runs.
 */
export async function compiledReads<T>(read: () => Promise<T>): Promise<T> {
  sweeping++;
  try {
    return await read();
  } finally {
    sweeping--;
  }
}

/** Computes the tensors on a backend that runs synchronously (the CPU backend). */
export function realizeSync(targets: Tensor[]): void {
  const backend = getBackend();
  if (!backend.synchronous)
    throw new DeviceError(
      `the ${backend.name} backend computes asynchronously: read tensors with await t.data() (not dataSync())`,
    );
  const p = plan(targets);
  if (!p) return;
  let graph = syncGraphs.get(p.key);
  if (!graph && !seenOnce.has(p.key) && sweeping === 0) {
    seenOnce.add(p.key);
    replay(p);
    return;
  }
  if (!graph) {
    seenOnce.delete(p.key);
    graph = backend.compile(p.spec);
    syncGraphs.set(p.key, graph);
  }
  fill(p, graph.run(feedsOf(p)));
}

/**
 * Runs a plan kernel by kernel (the eager path). Every tensor computed keeps its values, as in eager
 * mode: a hook that reads an activation mid-forward does not make later reads recompute the prefix.
 */
function replay(p: Plan): void {
  const backend = getBackend();
  for (const op of p.ops) {
    const outs = backend.runKernel(
      op.kernel,
      op.inputs.map((t) => t.raw()),
    );
    op.outputs.forEach((t, j) => t._fill(outs[j]!.data));
  }
}

/** Computes the tensors on any backend, yielding to the event loop while the backend works. */
export async function realizeAsync(targets: Tensor[]): Promise<void> {
  const backend = getBackend();
  if (backend.synchronous) {
    // Let timers, I/O and signals in between two pieces of synchronous work (a server's other
    // requests, a progress bar, Ctrl-C) before this one blocks the thread.
    if (targets.some((t) => !t.isReady)) await yieldToEventLoop();
    realizeSync(targets);
    return;
  }
  const p = plan(targets);
  if (!p) return;
  let entry = asyncGraphs.get(p.key);
  if (!entry) {
    const graph = backend.compileAsync(p.spec);
    entry = { graph, dispose: () => void graph.then((g) => g.dispose()) };
    asyncGraphs.set(p.key, entry);
  }
  const graph = await entry.graph;
  fill(p, await graph.runAsync(feedsOf(p)));
}

/** Computes several tensors in one graph (one pass over shared work). */
export async function realize(...tensors: Tensor[]): Promise<void> {
  await realizeAsync(tensors);
}

/** Makes reading any of these tensors compute all of them (a forward's logits and its cache). */
export function computeTogether(tensors: Tensor[]): void {
  const pending = tensors.filter((t) => !t.isReady);
  for (const t of pending) t._group = pending;
}

/** Compiled graphs held by the lazy engine (for tests and benchmarks). */
export function lazyGraphCount(): number {
  return syncGraphs.size + asyncGraphs.size;
}

/**
 * Runs fn with every op recorded instead of run: nothing is computed until a value is read, and then
 * everything the read needs runs as one compiled graph (after the first sight of its structure).
 */
export function lazily<T>(fn: () => T): T {
  return withEngineState({ lazy: true }, fn);
}

/** One turn of the event loop (setImmediate where it exists: setTimeout waits at least 1 ms). */
function yieldToEventLoop(): Promise<void> {
  const g = globalThis as { setImmediate?: (fn: () => void) => void };
  return new Promise((resolve) => (g.setImmediate ? g.setImmediate(resolve) : setTimeout(resolve, 0)));
}
