export { Tensor, noGrad, isGradEnabled } from './tensor.js';
export type { DType, TypedData } from './dtype.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/shape.js';
export * from './ops/nn.js';
export { Rng, randn } from './random.js';
export { getBackend, registerBackendFactory } from './backend/backend.js';
export type { Backend, RawTensor } from './backend/backend.js';
