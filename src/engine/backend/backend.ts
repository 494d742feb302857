import type { DType, TypedData } from '../dtype.js';

/** A tensor as the backend sees it: plain data, no autograd. */
export interface RawTensor {
  dtype: DType;
  shape: number[];
  data: TypedData;
}

export type Attr =
  | { i: number }
  | { f: number }
  | { ints: number[] }
  | { floats: number[] }
  | { s: string }
  | { t: RawTensor };

/** One ONNX node. Kernel-local names: inputs x0.., constant inputs c0.., outputs y0.., temporaries t0... */
export interface OnnxNode {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, Attr>;
  domain?: string;
}

/**
 * A kernel is a tiny ONNX graph (usually one node) that the eager engine runs as one session.
 * `key` identifies the graph up to the values of `consts`, which are fed as inputs in eager mode
 * (so one session serves every slice start, say) and baked in as initializers when traced.
 */
export interface Kernel {
  key: string;
  nodes: OnnxNode[];
  nIn: number;
  nOut: number;
  consts?: RawTensor[];
}

export interface GraphValue {
  name: string;
  dtype: DType;
  shape?: number[];
}

/** A whole graph, as assembled by the tracer. */
export interface GraphSpec {
  nodes: OnnxNode[];
  inputs: GraphValue[];
  outputs: string[];
  initializers: { name: string; tensor: RawTensor }[];
}

export interface CompiledGraph {
  readonly inputNames: string[];
  run(feeds: Record<string, RawTensor>): Record<string, RawTensor>;
  /** Frees the runtime session now rather than at garbage collection. */
  dispose(): void;
}

/** A compiled graph on a backend that computes asynchronously (also offered by synchronous ones). */
export interface AsyncCompiledGraph {
  readonly inputNames: string[];
  runAsync(feeds: Record<string, RawTensor>): Promise<Record<string, RawTensor>>;
  dispose(): void;
}

/** The only surface that touches a runtime: onnxruntime-node now, onnxruntime-web later. */
export interface Backend {
  readonly name: string;
  readonly device: string;
  /**
   * Whether kernels run synchronously (runKernel, compile). A backend that cannot (onnxruntime-web,
   * a GPU provider read back asynchronously) makes every op lazy: values are computed by compiled
   * graphs when read with `await t.data()`.
   */
  readonly synchronous: boolean;
  runKernel(kernel: Kernel, inputs: RawTensor[]): RawTensor[];
  compile(graph: GraphSpec): CompiledGraph;
  compileAsync(graph: GraphSpec): Promise<AsyncCompiledGraph>;
  /** Number of cached one-kernel sessions (for benchmarks and tests). */
  cachedSessions(): number;
}

let current: Backend | null = null;
let factory: (() => Backend) | null = null;

/** Surfaces register a factory; the backend is created lazily on first use. */
export function registerBackendFactory(f: () => Backend): void {
  factory = f;
}

/** Uses this backend from now on (tests, embedders); returns the one it replaces. */
export function setBackend(b: Backend | null): Backend | null {
  const prev = current;
  current = b;
  return prev;
}

export function getBackend(): Backend {
  if (!current) {
    if (!factory)
      throw new Error('no Sonde backend registered: import "sonde" (Node) or the web entry point');
    current = factory();
  }
  return current;
}
