// Every long job the server runs, by name: each surface file contributes its own.
import type { JobKind } from './kind.js';
import { lensJobs } from '../routes/lens.js';
import { circuitsJobs } from '../routes/circuits.js';
import { patchingJobs } from '../routes/patching.js';
import { saeJobs } from '../routes/sae.js';
import { saeTrainJobs } from '../routes/sae-train.js';

export const JOB_KINDS: Record<string, JobKind> = {
  ...patchingJobs,
  ...lensJobs,
  ...circuitsJobs,
  ...saeJobs,
  ...saeTrainJobs,
};
