import { DeviceError } from '../errors.js';
import { registerBackendFactory } from './backend/backend.js';
import { OrtNodeBackend, type Device } from './backend/ort-node.js';

/** Node entry: onnxruntime-node, device from SONDE_DEVICE (cpu | webgpu), threads from SONDE_THREADS. */
registerBackendFactory(() => {
  const device = (process.env.SONDE_DEVICE ?? 'cpu') as Device;
  if (device !== 'cpu' && device !== 'webgpu') {
    throw new DeviceError(`SONDE_DEVICE must be cpu or webgpu, got '${device}'`);
  }
  const threads = process.env.SONDE_THREADS ? Number(process.env.SONDE_THREADS) : undefined;
  return new OrtNodeBackend({ device, threads });
});
