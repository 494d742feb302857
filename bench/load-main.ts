// `npm run bench:load`: re-runs with Sonde's malloc settings (as the CLI loads models), then benchmarks.
import { rerunWithTunedMalloc } from '../src/engine/backend/malloc.js';

const code = await rerunWithTunedMalloc();
if (code !== null) process.exit(code);
await import('./load.js');
