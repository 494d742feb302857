import { ShapeError } from '../errors.js';
import { getBackend, type Kernel, type RawTensor } from './backend/backend.js';
import { engineState, withEngineState, type OpRecorder } from './context.js';
import { allocate, dtypeOf, isFloat, sizeOf, type DType, type TypedData } from './dtype.js';
import type { Meta } from './infer.js';
import { inferKernel } from './infer.js';
import { realizeAsync, realizeSync } from './lazy.js';

/** How a tensor was made, for reverse-mode autodiff. */
export interface GradFn {
  name: string;
  inputs: Tensor[];
  /** Gradients for each input (null where none flows). Runs under noGrad. */
  backward(grad: Tensor): (Tensor | null)[];
}

type GradHook = (grad: Tensor) => Tensor | void;

let nextId = 1;

/** Runs fn without recording autodiff history (as torch.no_grad), including what fn awaits. */
export function noGrad<T>(fn: () => T): T {
  return withEngineState({ gradEnabled: false }, fn);
}

export function isGradEnabled(): boolean {
  return engineState().gradEnabled;
}

/** Runs fn with every kernel it issues passed to `r` (the tracer). */
export function withRecorder<T>(r: OpRecorder | null, fn: () => T): T {
  return withEngineState({ recorder: r }, fn);
}

/** A kernel waiting to run: its outputs are lazy tensors until one of them is read. */
export interface PendingOp {
  kernel: Kernel;
  inputs: Tensor[];
  outputs: Tensor[];
}

/**
 * An n-dimensional array on the Sonde engine. Immutable: every op returns a new tensor. Memory is
 * garbage-collected; there is nothing to dispose.
 *
 * A tensor's values live where its backend keeps them, and may not be computed yet (a lazy tensor:
 * its shape and dtype are known, its values are computed when first read). Read them with
 * `await t.data()`, which works on every backend.
 */
export class Tensor {
  readonly id = nextId++;
  readonly shape: number[];
  readonly dtype: DType;
  requiresGrad = false;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  private retain = false;
  private hooks: GradHook[] = [];
  /** The values, once computed (host memory on the CPU backends). */
  private _data: TypedData | null;
  /** @internal The kernel that will compute this tensor, while it is lazy. */
  _pending: PendingOp | null = null;
  /** @internal Tensors computed together with this one when any of them is read (a forward's cache). */
  _group: Tensor[] | null = null;

  constructor(data: TypedData, shape: readonly number[]);
  /** @internal A lazy tensor. */
  constructor(data: null, shape: readonly number[], dtype: DType);
  constructor(data: TypedData | null, shape: readonly number[], dtype?: DType) {
    if (data !== null && sizeOf(shape) !== data.length) {
      throw new ShapeError(
        `tensor data has ${data.length} elements but shape [${shape}] needs ${sizeOf(shape)}`,
      );
    }
    this._data = data;
    this.shape = [...shape];
    this.dtype = data === null ? dtype! : dtypeOf(data);
  }

  /** @internal A tensor that `op` will compute. */
  static lazy(meta: Meta, op: PendingOp): Tensor {
    const t = new Tensor(null, meta.shape, meta.dtype);
    t._pending = op;
    return t;
  }

  /** Whether the values are computed (reads will not run anything). */
  get isReady(): boolean {
    return this._data !== null;
  }

  /** @internal Stores computed values (the lazy engine). */
  _fill(data: TypedData): void {
    if (data.length !== this.size)
      throw new ShapeError(`computed ${data.length} values for a tensor of shape [${this.shape}]`);
    this._data = data;
    this._pending = null;
  }

  static fromRaw(raw: RawTensor): Tensor {
    return new Tensor(raw.data, raw.shape);
  }

  /** From nested arrays or a flat array plus shape. */
  static from(
    values: number[] | number[][] | number[][][] | TypedData,
    shape?: number[],
    dtype: DType = 'float32',
  ): Tensor {
    if (ArrayBuffer.isView(values)) return new Tensor(values as TypedData, shape ?? [values.length]);
    const inferred: number[] = [];
    let v: unknown = values;
    while (Array.isArray(v)) {
      inferred.push(v.length);
      v = v[0];
    }
    const flat = (values as unknown[]).flat(Infinity) as number[];
    const data = allocate(dtype, flat.length);
    if (data instanceof BigInt64Array) flat.forEach((x, i) => (data[i] = BigInt(x)));
    else data.set(flat);
    return new Tensor(data, shape ?? inferred);
  }

  static scalar(value: number, dtype: DType = 'float32'): Tensor {
    const data = allocate(dtype, 1);
    if (data instanceof BigInt64Array) data[0] = BigInt(value);
    else data[0] = value;
    return new Tensor(data, []);
  }

  static zeros(shape: number[], dtype: DType = 'float32'): Tensor {
    return new Tensor(allocate(dtype, sizeOf(shape)), shape);
  }

  static full(shape: number[], value: number, dtype: DType = 'float32'): Tensor {
    const data = allocate(dtype, sizeOf(shape));
    if (data instanceof BigInt64Array) data.fill(BigInt(value));
    else data.fill(value);
    return new Tensor(data, shape);
  }

  get size(): number {
    return sizeOf(this.shape);
  }
  get rank(): number {
    return this.shape.length;
  }

  /**
   * The tensor's values on the host (shared: do not mutate unless you own the tensor). Works on every
   * backend: the values may still be computing, or live on a device, so this waits for them.
   */
  async data(): Promise<TypedData> {
    if (this._data === null) await realizeAsync([this]);
    return this._data!;
  }

  /**
   * The values now, where the backend can hand them over synchronously (the CPU backend). Library
   * code and examples use `await t.data()`, which works everywhere.
   */
  dataSync(): TypedData {
    if (this._data === null) realizeSync([this]);
    return this._data!;
  }

  /** Values as float32 (throws for other dtypes). */
  async f32(): Promise<Float32Array> {
    return asF32(await this.data(), this.dtype);
  }

  f32Sync(): Float32Array {
    return asF32(this.dataSync(), this.dtype);
  }

  /** Values as a flat array of numbers. */
  async toArray(): Promise<number[]> {
    return Array.from((await this.data()) as ArrayLike<number | bigint>, Number);
  }

  toArraySync(): number[] {
    return Array.from(this.dataSync() as ArrayLike<number | bigint>, Number);
  }

  /** Nested JS arrays, shaped like the tensor. */
  async toNested(): Promise<unknown> {
    return nest(await this.toArray(), this.shape);
  }

  toNestedSync(): unknown {
    return nest(this.toArraySync(), this.shape);
  }

  /** The value of a one-element tensor. */
  async item(): Promise<number> {
    this.checkItem();
    return Number((await this.data())[0]);
  }

  itemSync(): number {
    this.checkItem();
    return Number(this.dataSync()[0]);
  }

  private checkItem(): void {
    if (this.size !== 1) throw new ShapeError(`item() needs a one-element tensor, got shape [${this.shape}]`);
  }

  raw(): RawTensor {
    return { dtype: this.dtype, shape: this.shape, data: this.dataSync() };
  }

  /** Marks a leaf as needing gradients (as torch's requires_grad_). */
  requireGrad(on = true): this {
    if (on && !isFloat(this.dtype))
      throw new ShapeError(`only float tensors can require grad, got ${this.dtype}`);
    this.requiresGrad = on;
    return this;
  }

  /** Keeps .grad on a non-leaf tensor after backward(). */
  retainGrad(): this {
    this.retain = true;
    return this;
  }

  /** Called with this tensor's gradient during backward(); may return a replacement gradient. */
  registerHook(fn: GradHook): this {
    this.hooks.push(fn);
    return this;
  }

  /** The same values with no autodiff history (shares data). */
  detach(): Tensor {
    if (this._data === null || engineState().lazy) return noGrad(() => exec(IDENTITY_KERNEL, [this])[0]!);
    const out = new Tensor(this._data, this.shape);
    engineState().recorder?.record(IDENTITY_KERNEL, [this], [out]);
    return out;
  }

  /** Reverse-mode autodiff from this tensor. A non-scalar needs an explicit upstream gradient. */
  backward(grad?: Tensor): void {
    if (!grad && this.size !== 1) {
      throw new ShapeError(`backward() on a tensor of shape [${this.shape}] needs a gradient argument`);
    }
    if (grad && (grad.shape.length !== this.shape.length || grad.shape.some((d, i) => d !== this.shape[i]))) {
      throw new ShapeError(
        `backward(): gradient shape [${grad.shape}] does not match the tensor's shape [${this.shape}]`,
      );
    }
    const seed = grad ?? Tensor.full(this.shape, 1, this.dtype);
    runBackward(this, seed);
  }

  toString(): string {
    return `Tensor(${this.dtype}, [${this.shape}])`;
  }
}

function asF32(data: TypedData, dtype: DType): Float32Array {
  if (!(data instanceof Float32Array)) throw new ShapeError(`expected a float32 tensor, got ${dtype}`);
  return data;
}

function nest(flat: number[], shape: readonly number[]): unknown {
  const build = (dim: number, offset: number): unknown => {
    if (dim === shape.length) return flat[offset];
    const stride = sizeOf(shape.slice(dim + 1));
    return Array.from({ length: shape[dim]! }, (_, i) => build(dim + 1, offset + i * stride));
  };
  return build(0, 0);
}

function topoOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const seen = new Set<number>();
  // Iterative DFS: transformer graphs are deep enough to overflow recursion.
  const stack: [Tensor, boolean][] = [[root, false]];
  while (stack.length) {
    const [t, expanded] = stack.pop()!;
    if (expanded) {
      order.push(t);
      continue;
    }
    if (seen.has(t.id)) continue;
    seen.add(t.id);
    stack.push([t, true]);
    for (const inp of t.gradFn?.inputs ?? [])
      if (!seen.has(inp.id) && inp.requiresGrad) stack.push([inp, false]);
  }
  return order.reverse();
}

function runBackward(root: Tensor, seed: Tensor): void {
  if (!root.requiresGrad)
    throw new ShapeError('backward(): this tensor does not depend on anything that requires grad');
  const grads = new Map<number, Tensor>();
  grads.set(root.id, seed);
  noGrad(() => {
    for (const t of topoOrder(root)) {
      let g = grads.get(t.id);
      if (!g) continue;
      grads.delete(t.id);
      for (const h of (t as unknown as { hooks: GradHook[] }).hooks) g = h(g) ?? g;
      const isLeaf = !t.gradFn;
      if (isLeaf || (t as unknown as { retain: boolean }).retain) {
        t.grad = t.grad ? addRaw(t.grad, g) : g;
      }
      if (!t.gradFn) continue;
      const inGrads = t.gradFn.backward(g);
      t.gradFn.inputs.forEach((inp, i) => {
        const gi = inGrads[i];
        if (!gi || !inp.requiresGrad) return;
        const prev = grads.get(inp.id);
        grads.set(inp.id, prev ? addRaw(prev, gi) : gi);
      });
    }
  });
}

const IDENTITY_KERNEL: Kernel = {
  key: 'Identity',
  nodes: [{ op: 'Identity', inputs: ['x0'], outputs: ['y0'] }],
  nIn: 1,
  nOut: 1,
};
const ADD_KERNEL: Kernel = {
  key: 'Add',
  nodes: [{ op: 'Add', inputs: ['x0', 'x1'], outputs: ['y0'] }],
  nIn: 2,
  nOut: 1,
};
function addRaw(a: Tensor, b: Tensor): Tensor {
  return exec(ADD_KERNEL, [a, b])[0]!;
}

/**
 * Runs a kernel eagerly and wires up autodiff. `backward` gets the output gradient(s) and returns one
 * gradient per input; it is only attached when grad mode is on and some input requires grad.
 */
export function exec(
  kernel: Kernel,
  inputs: Tensor[],
  backward?: (grads: Tensor[], outputs: Tensor[]) => (Tensor | null)[],
): Tensor[] {
  const state = engineState();
  let outputs: Tensor[];
  if (state.lazy || !getBackend().synchronous) {
    const metas = inferKernel(
      kernel,
      inputs.map((t) => ({ shape: t.shape, dtype: t.dtype })),
    );
    const op: PendingOp = { kernel, inputs, outputs: [] };
    outputs = metas.map((m) => Tensor.lazy(m, op));
    op.outputs = outputs;
  } else {
    const raws = getBackend().runKernel(
      kernel,
      inputs.map((t) => t.raw()),
    );
    outputs = raws.map((r) => Tensor.fromRaw(r));
  }
  state.recorder?.record(kernel, inputs, outputs);
  if (backward) attachGrad(kernel.key, inputs, outputs, backward);
  return outputs;
}

/** Attaches autodiff to outputs made outside exec (views computed in JS). */
export function attachGrad(
  name: string,
  inputs: Tensor[],
  outputs: Tensor[],
  backward: (grads: Tensor[], outputs: Tensor[]) => (Tensor | null)[],
): void {
  if (!engineState().gradEnabled || !inputs.some((t) => t.requiresGrad)) return;
  const out0 = outputs[0]!;
  if (!isFloat(out0.dtype)) return;
  out0.requiresGrad = true;
  // Multi-output kernels (TopK) only differentiate their first output.
  out0.gradFn = { name, inputs, backward: (g) => backward([g], outputs) };
}

export type { OpRecorder };

/** Records a JS-side op (reshape) for the tracer, which must see every value-producing step. */
export function recordView(kernel: Kernel, inputs: Tensor[], outputs: Tensor[]): void {
  engineState().recorder?.record(kernel, inputs, outputs);
}
