// Child process for the cross-process lock test: downloads one file (HF_* variables from the parent)
// and prints its path.
import { downloadFile } from '../../../src/io/hub/index.js';

const [repoId, filename] = process.argv.slice(2) as [string, string];
process.stdout.write(await downloadFile(repoId, filename));
