import { createRequire } from 'node:module';
import os from 'node:os';
import { DeviceError } from '../../errors.js';
import type { DType, TypedData } from '../dtype.js';
import type { AsyncCompiledGraph, Backend, CompiledGraph, GraphSpec, Kernel, RawTensor } from './backend.js';
import { encodeModel } from './onnx-model.js';

// onnxruntime-node's public run() is async only to defer to setImmediate; its native binding is
// synchronous. The eager engine needs synchronous ops, so we talk to the binding directly.
// Loaded at the first backend, not at import: commands that run no model (help, info) skip the native
// library's ~0.15 s.
const require = createRequire(import.meta.url);
interface OrtLib {
  ort: typeof import('onnxruntime-node');
  binding: { InferenceSession: new () => NativeSession };
  initOrt: () => void;
}
let lib: OrtLib | undefined;
function ortLib(): OrtLib {
  return (lib ??= {
    ort: require('onnxruntime-node') as typeof import('onnxruntime-node'),
    ...(require('onnxruntime-node/dist/binding.js') as Omit<OrtLib, 'ort'>),
  });
}

interface NativeSession {
  loadModel(buffer: ArrayBuffer, byteOffset: number, byteLength: number, options: object): void;
  run(
    feeds: Record<string, unknown>,
    fetches: Record<string, null>,
    options: object,
  ): Record<string, OrtTensor>;
  dispose(): void;
  readonly inputMetadata: { name: string }[];
}
interface OrtTensor {
  type: string;
  dims: readonly number[];
  data: TypedData;
}

const ORT_TYPE: Record<DType, string> = {
  float32: 'float32',
  float64: 'float64',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
};
const FROM_ORT: Record<string, DType> = {
  float32: 'float32',
  float64: 'float64',
  int32: 'int32',
  int64: 'int64',
  bool: 'bool',
};

export type Device = 'cpu' | 'webgpu';

export interface OrtBackendOptions {
  device?: Device;
  threads?: number;
}

export function toOrt(t: RawTensor): unknown {
  return new (ortLib().ort.Tensor)(ORT_TYPE[t.dtype] as 'float32', t.data as Float32Array, t.shape);
}

export function fromOrt(t: OrtTensor): RawTensor {
  const dtype = FROM_ORT[t.type];
  if (!dtype) throw new Error(`onnxruntime returned unsupported type ${t.type}`);
  return { dtype, shape: [...t.dims], data: t.data };
}

export class OrtNodeBackend implements Backend {
  readonly name = 'onnxruntime-node';
  readonly synchronous = true;
  readonly device: Device;
  private readonly threads: number;
  private readonly sessions = new Map<string, { session: NativeSession; outputs: Record<string, null> }>();

  constructor(opts: OrtBackendOptions = {}) {
    ortLib().initOrt();
    this.device = opts.device ?? 'cpu';
    this.threads = opts.threads ?? Math.max(1, Math.min(os.availableParallelism(), 8));
  }

  private createSession(bytes: Uint8Array, optimize: boolean): NativeSession {
    const session = new (ortLib().binding.InferenceSession)();
    const options: Record<string, unknown> = {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: optimize ? 'all' : 'basic',
      // Spinning threads burn the other core between the many short eager calls (10x slower).
      extra: { session: { intra_op: { allow_spinning: '0' }, inter_op: { allow_spinning: '0' } } },
    };
    if (this.device === 'webgpu') options.executionProviders = [{ name: 'webgpu' }, { name: 'cpu' }];
    try {
      session.loadModel(bytes.buffer as ArrayBuffer, bytes.byteOffset, bytes.byteLength, options);
    } catch (e) {
      const msg = (e as Error).message;
      if (this.device === 'webgpu' && /adapter|webgpu/i.test(msg)) {
        throw new DeviceError(
          `SONDE_DEVICE=webgpu: ONNX Runtime found no usable WebGPU adapter (${msg.split('\n')[0]}); use SONDE_DEVICE=cpu`,
        );
      }
      throw e;
    }
    return session;
  }

  runKernel(kernel: Kernel, inputs: RawTensor[]): RawTensor[] {
    const consts = kernel.consts ?? [];
    const key = `${kernel.key}|${inputs.map((t) => `${t.dtype}${t.shape.length}`).join(',')}|${consts
      .map((t) => `${t.dtype}${t.shape.length}`)
      .join(',')}`;
    let entry = this.sessions.get(key);
    if (!entry) {
      const graph: GraphSpec = {
        nodes: kernel.nodes,
        inputs: [
          ...inputs.map((t, i) => ({ name: `x${i}`, dtype: t.dtype })),
          ...consts.map((t, i) => ({ name: `c${i}`, dtype: t.dtype })),
        ],
        outputs: Array.from({ length: kernel.nOut }, (_, i) => `y${i}`),
        initializers: [],
      };
      const outputs: Record<string, null> = {};
      for (const o of graph.outputs) outputs[o] = null;
      entry = { session: this.createSession(encodeModel(graph), false), outputs };
      this.sessions.set(key, entry);
    }
    const feeds: Record<string, unknown> = {};
    inputs.forEach((t, i) => (feeds[`x${i}`] = toOrt(t)));
    consts.forEach((t, i) => (feeds[`c${i}`] = toOrt(t)));
    const result = entry.session.run(feeds, entry.outputs, {});
    const out: RawTensor[] = [];
    for (let i = 0; i < kernel.nOut; i++) out.push(fromOrt(result[`y${i}`]!));
    return out;
  }

  compile(graph: GraphSpec): CompiledGraph {
    const session = this.createSession(encodeModel(graph), true);
    const outputs: Record<string, null> = {};
    for (const o of graph.outputs) outputs[o] = null;
    const inputNames = graph.inputs.map((v) => v.name);
    return {
      inputNames,
      run(feeds: Record<string, RawTensor>): Record<string, RawTensor> {
        const ortFeeds: Record<string, unknown> = {};
        for (const name of inputNames) {
          const t = feeds[name];
          if (!t) throw new Error(`compiled graph: missing input ${name}`);
          ortFeeds[name] = toOrt(t);
        }
        const result = session.run(ortFeeds, outputs, {});
        const out: Record<string, RawTensor> = {};
        for (const name of graph.outputs) out[name] = fromOrt(result[name]!);
        return out;
      },
      dispose: () => session.dispose(),
    };
  }

  async compileAsync(graph: GraphSpec): Promise<AsyncCompiledGraph> {
    const compiled = this.compile(graph);
    return {
      inputNames: compiled.inputNames,
      runAsync: async (feeds) => compiled.run(feeds),
      dispose: () => compiled.dispose(),
    };
  }

  cachedSessions(): number {
    return this.sessions.size;
  }
}
