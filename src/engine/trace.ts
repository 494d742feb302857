import {
  getBackend,
  type CompiledGraph,
  type GraphSpec,
  type Kernel,
  type RawTensor,
} from './backend/backend.js';
import { appendKernel } from './graph.js';
import { Tensor, withRecorder, type OpRecorder } from './tensor.js';

interface Entry {
  kernel: Kernel;
  inputs: Tensor[];
  outputs: Tensor[];
}

export interface TraceOptions {
  /**
   * Captured tensors (weights) larger than this many elements are fed by reference at each run
   * instead of being baked into the graph. Baking (the default) lets ORT pre-pack matmul weights and
   * fold constants, about 2x faster, at the cost of a copy of the weights per compiled graph.
   */
  inlineLimit?: number;
}

/**
 * A function traced once by running it eagerly, then replayed as one ONNX graph. Replays are valid
 * for inputs of the same shapes and dtypes, and while the captured tensors (weights, masks) keep
 * their values: they are baked into the graph (see TraceOptions), so changed weights need a new trace.
 */
export class TracedFunction {
  private constructor(
    private readonly graph: CompiledGraph,
    private readonly captured: Map<string, RawTensor>,
    private readonly nInputs: number,
    private readonly outputNames: string[],
  ) {}

  /** Runs fn eagerly on the example inputs, recording every kernel, and compiles the recording. */
  static trace(
    fn: (inputs: Tensor[]) => Tensor[],
    example: Tensor[],
    opts: TraceOptions = {},
  ): { fn: TracedFunction; outputs: Tensor[] } {
    const entries: Entry[] = [];
    const rec: OpRecorder = {
      record: (kernel, inputs, outputs) => entries.push({ kernel, inputs, outputs }),
    };
    const outputs = withRecorder(rec, () => fn(example));
    return { fn: TracedFunction.build(entries, example, outputs, opts.inlineLimit ?? Infinity), outputs };
  }

  private static build(
    entries: Entry[],
    inputs: Tensor[],
    outputs: Tensor[],
    inlineLimit: number,
  ): TracedFunction {
    const names = new Map<number, string>();
    inputs.forEach((t, i) => names.set(t.id, `in${i}`));
    const producer = new Map<number, number>();
    entries.forEach((e, i) => e.outputs.forEach((t) => producer.set(t.id, i)));

    // Keep only the entries that outputs depend on.
    const live = new Set<number>();
    const stack = outputs.filter((t) => producer.has(t.id)).map((t) => producer.get(t.id)!);
    while (stack.length) {
      const i = stack.pop()!;
      if (live.has(i)) continue;
      live.add(i);
      for (const t of entries[i]!.inputs) {
        const p = producer.get(t.id);
        if (p !== undefined && !names.has(t.id)) stack.push(p);
      }
    }

    const graph: GraphSpec = {
      nodes: [],
      inputs: inputs.map((t, i) => ({ name: `in${i}`, dtype: t.dtype, shape: t.shape })),
      outputs: [],
      initializers: [],
    };
    const captured = new Map<string, RawTensor>();
    const nameOf = (t: Tensor): string => {
      let n = names.get(t.id);
      if (n) return n;
      n = `v${t.id}`;
      names.set(t.id, n);
      if (!producer.has(t.id)) {
        if (t.size <= inlineLimit) graph.initializers.push({ name: n, tensor: t.raw() });
        else {
          captured.set(n, t.raw());
          graph.inputs.push({ name: n, dtype: t.dtype, shape: t.shape });
        }
      }
      return n;
    };

    entries.forEach((e, i) => {
      if (!live.has(i)) return;
      const inputNames = e.inputs.map(nameOf);
      const outputNames = e.outputs.map((t, j) =>
        // An output already named (an input passed through) gets a fresh alias.
        names.has(t.id) ? `k${i}_y${j}` : nameOf(t),
      );
      appendKernel(graph, i, e.kernel, inputNames, outputNames);
    });

    const outputNames = outputs.map((t, i) => {
      const n = `out${i}`;
      graph.nodes.push({ op: 'Identity', inputs: [nameOf(t)], outputs: [n] });
      return n;
    });
    graph.outputs = outputNames;
    return new TracedFunction(getBackend().compile(graph), captured, inputs.length, outputNames);
  }

  dispose(): void {
    this.graph.dispose();
  }

  run(inputs: Tensor[]): Tensor[] {
    if (inputs.length !== this.nInputs) throw new Error(`traced function takes ${this.nInputs} inputs`);
    const feeds: Record<string, RawTensor> = {};
    inputs.forEach((t, i) => (feeds[`in${i}`] = t.raw()));
    for (const [n, raw] of this.captured) feeds[n] = raw;
    const out = this.graph.run(feeds);
    return this.outputNames.map((n) => Tensor.fromRaw(out[n]!));
  }
}
