// `npm run bench:train`: re-runs with Sonde's malloc settings (PyTorch inherits them too), then benchmarks.
import { rerunWithTunedMalloc } from '../src/engine/backend/malloc.js';

const code = await rerunWithTunedMalloc();
if (code !== null) process.exit(code);
await import('./train.js');
