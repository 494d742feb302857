import { AsyncLocalStorage } from 'node:async_hooks';
import { DeviceError } from '../errors.js';
import { registerBackendFactory } from './backend/backend.js';
import { OrtAsyncBackend } from './backend/ort-async.js';
import { OrtNodeBackend, type Device } from './backend/ort-node.js';
import { DEFAULT_ENGINE_STATE, setStateStore, type EngineState } from './context.js';

// Grad mode, laziness and the tracer follow each asynchronous call (AsyncLocalStorage), so two
// computations in flight at once never see each other's state.
const als = new AsyncLocalStorage<EngineState>();
setStateStore({ get: () => als.getStore() ?? DEFAULT_ENGINE_STATE, run: (s, fn) => als.run(s, fn) });

/**
 * Node entry: onnxruntime-node, device from SONDE_DEVICE (cpu | webgpu), threads from SONDE_THREADS.
 * SONDE_BACKEND=async selects the backend that uses only ORT's public asynchronous API.
 */
registerBackendFactory(() => {
  const device = (process.env.SONDE_DEVICE ?? 'cpu') as Device;
  if (device !== 'cpu' && device !== 'webgpu') {
    throw new DeviceError(`SONDE_DEVICE must be cpu or webgpu, got '${device}'`);
  }
  const threads = process.env.SONDE_THREADS ? Number(process.env.SONDE_THREADS) : undefined;
  const kind = process.env.SONDE_BACKEND ?? 'sync';
  if (kind === 'async') return new OrtAsyncBackend({ threads, device });
  if (kind !== 'sync') throw new DeviceError(`SONDE_BACKEND must be sync or async, got '${kind}'`);
  return new OrtNodeBackend({ device, threads });
});
