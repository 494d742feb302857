// A committed SAE fixture copied into a temp folder: a feature scan writes its store next to the SAE.
import fs from 'node:fs';
import path from 'node:path';

export function copySae(fixture: string, into: string): string {
  const dir = path.join(into, path.basename(fixture));
  fs.mkdirSync(dir, { recursive: true });
  for (const f of ['cfg.json', 'sae_weights.safetensors'])
    fs.copyFileSync(path.join(fixture, f), path.join(dir, f));
  return dir;
}
