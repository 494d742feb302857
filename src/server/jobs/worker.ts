// A job's worker process: reads its job from the first message, opens what the job names, runs it,
// sends progress and the result, and exits. It ends with the server: when the channel closes.
import '../../engine/node.js';
import { Worker } from 'node:worker_threads';
import { HookedTransformer } from '../../hooks/hooked-transformer.js';
import { loadSaeLens } from '../../sae/saelens.js';
import type { SparseAutoencoder } from '../../sae/sae.js';
import { errorAnswer } from '../errors.js';
import type { JobContext } from './kind.js';
import { JOB_KINDS } from './kinds.js';
import type { WorkerInput, WorkerMessage } from './protocol.js';

// The server gone (closed channel, or killed outright: a watchdog thread sees a new parent even while
// the main thread is inside a long ONNX Runtime call), this worker ends at once.
process.on('disconnect', () => process.exit(1));
new Worker(
  `const { workerData } = require('node:worker_threads');
   setInterval(() => { if (process.ppid !== workerData) process.kill(process.pid, 'SIGKILL'); }, 200);`,
  { eval: true, workerData: process.ppid },
).unref();
const input = await new Promise<WorkerInput>((resolve) =>
  process.once('message', (m) => resolve(m as WorkerInput)),
);
const post = (m: WorkerMessage) => process.send!(m);
const models = new Map<string, HookedTransformer>();
const saes = new Map<string, SparseAutoencoder>();

const ctx: JobContext = {
  model(id) {
    const entry = id === undefined ? input.models[0] : input.models.find(([k]) => k === id);
    if (entry === undefined) throw new Error(`no model '${id}' is open`);
    const [key, dir] = entry;
    let m = models.get(key);
    if (m === undefined) models.set(key, (m = HookedTransformer.load(dir)));
    return m;
  },
  sae(id) {
    const entry = input.saes.find(([k]) => k === id);
    if (entry === undefined) throw new Error(`no SAE '${id}' is open`);
    let s = saes.get(id);
    if (s === undefined) saes.set(id, (s = loadSaeLens(entry[1])));
    return s;
  },
  saeDir(id) {
    const entry = input.saes.find(([k]) => k === id);
    if (entry === undefined) throw new Error(`no SAE '${id}' is open`);
    return entry[1];
  },
  progress(progress) {
    post({ type: 'progress', progress });
  },
};

let last: WorkerMessage;
try {
  const kind = JOB_KINDS[input.kind]!;
  last = { type: 'result', result: await kind.run(ctx, input.params) };
} catch (e) {
  const { status, body } = errorAnswer(e);
  last = { type: 'error', status, error: body };
}
process.send!(last, () => process.exit(0));
