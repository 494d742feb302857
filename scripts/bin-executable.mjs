// Marks the package's bin files executable after tsc wrote them (tsc creates files 0644). npm sets the
// mode when it links a bin, but npx reuses a link it made before: a rebuilt or re-cloned checkout would
// then fail with "sonde: Permission denied".
import fs from 'node:fs';

const { bin } = JSON.parse(fs.readFileSync('package.json', 'utf8'));
for (const file of Object.values(typeof bin === 'string' ? { bin } : bin)) {
  fs.chmodSync(file, fs.statSync(file).mode | 0o111);
}
