/** Element types the engine computes with. Weights in F16/BF16 are widened to float32 on load. */
export type DType = 'float32' | 'float64' | 'int32' | 'int64' | 'bool';

export type TypedData = Float32Array | Float64Array | Int32Array | BigInt64Array | Uint8Array;

export function allocate(dtype: DType, size: number): TypedData {
  switch (dtype) {
    case 'float32':
      return new Float32Array(size);
    case 'float64':
      return new Float64Array(size);
    case 'int32':
      return new Int32Array(size);
    case 'int64':
      return new BigInt64Array(size);
    case 'bool':
      return new Uint8Array(size);
  }
}

export function dtypeOf(data: TypedData): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  if (data instanceof BigInt64Array) return 'int64';
  return 'bool';
}

export function isFloat(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64';
}

/** ONNX TensorProto.DataType codes. */
export const ONNX_DTYPE: Record<DType, number> = { float32: 1, float64: 11, int32: 6, int64: 7, bool: 9 };

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}
