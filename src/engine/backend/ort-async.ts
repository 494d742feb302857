import { createRequire } from 'node:module';
import os from 'node:os';
import type { DType } from '../dtype.js';
import type { AsyncCompiledGraph, Backend, CompiledGraph, GraphSpec, Kernel, RawTensor } from './backend.js';
import { encodeModel } from './onnx-model.js';

const require = createRequire(import.meta.url);
type Ort = typeof import('onnxruntime-node');
let ort: Ort | undefined;
const lib = (): Ort => (ort ??= require('onnxruntime-node') as Ort);

/**
 * A backend that uses only onnxruntime-node's public, Promise-returning API (InferenceSession.create
 * and run): what onnxruntime-web and GPU providers offer. Nothing runs synchronously, so every op is
 * lazy and values are computed by compiled graphs when read. CI runs the model, methods and SAE
 * tests on it (SONDE_BACKEND=async) to prove the library never relies on a synchronous read.
 */
export class OrtAsyncBackend implements Backend {
  readonly name = 'onnxruntime-node (asynchronous API)';
  readonly device: 'cpu' | 'webgpu';
  readonly synchronous = false;
  private readonly threads: number;
  private sessions = 0;

  constructor(opts: { threads?: number; device?: 'cpu' | 'webgpu' } = {}) {
    this.threads = opts.threads ?? Math.max(1, Math.min(os.availableParallelism(), 8));
    this.device = opts.device ?? 'cpu';
  }

  runKernel(kernel: Kernel): RawTensor[] {
    throw new Error(
      `${this.name} runs no kernel synchronously (${kernel.key}): the engine should be lazy here`,
    );
  }

  compile(): CompiledGraph {
    throw new Error(`${this.name} compiles asynchronously only`);
  }

  async compileAsync(graph: GraphSpec): Promise<AsyncCompiledGraph> {
    const { InferenceSession, Tensor } = lib();
    const session = await InferenceSession.create(encodeModel(graph), {
      intraOpNumThreads: this.threads,
      interOpNumThreads: 1,
      executionMode: 'sequential',
      graphOptimizationLevel: 'all',
      ...(this.device === 'webgpu' ? { executionProviders: ['webgpu', 'cpu'] } : {}),
    });
    this.sessions++;
    const inputNames = graph.inputs.map((v) => v.name);
    return {
      inputNames,
      runAsync: async (feeds) => {
        const ortFeeds: Record<string, InstanceType<typeof Tensor>> = {};
        for (const name of inputNames) {
          const t = feeds[name];
          if (!t) throw new Error(`compiled graph: missing input ${name}`);
          ortFeeds[name] = new Tensor(t.dtype as 'float32', t.data as Float32Array, t.shape);
        }
        const result = await session.run(ortFeeds);
        const out: Record<string, RawTensor> = {};
        for (const name of graph.outputs) {
          const r = result[name]!;
          out[name] = { dtype: r.type as DType, shape: [...r.dims], data: r.data as Float32Array };
        }
        return out;
      },
      dispose: () => void session.release(),
    };
  }

  cachedSessions(): number {
    return this.sessions;
  }
}
