// A job's worker thread: opens what the job names, runs it, posts progress and the result.
import '../../engine/node.js';
import { parentPort, workerData } from 'node:worker_threads';
import { HookedTransformer } from '../../hooks/hooked-transformer.js';
import { loadSaeLens } from '../../sae/saelens.js';
import type { SparseAutoencoder } from '../../sae/sae.js';
import { errorAnswer } from '../errors.js';
import { JobCancelled, type JobContext } from './kind.js';
import { JOB_KINDS } from './kinds.js';
import type { WorkerInput, WorkerMessage } from './protocol.js';

const input = workerData as WorkerInput;
const post = (m: WorkerMessage) => parentPort!.postMessage(m);
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
    if (Atomics.load(input.cancel, 0) !== 0) throw new JobCancelled();
    post({ type: 'progress', progress });
  },
};

try {
  const kind = JOB_KINDS[input.kind]!;
  const result = await kind.run(ctx, input.params);
  post({ type: 'result', result });
} catch (e) {
  const { status, body } = errorAnswer(e);
  post({ type: 'error', status, error: body });
}
