// Before the browser tests: Debian's Chromium (installed by the repo's script when missing) and a fresh
// build of the web app, so the page tested is the page in the sources.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export default function setup(): void {
  execFileSync('bash', [path.join(root, 'scripts/install-chromium.sh')], { stdio: 'inherit' });
  execFileSync(
    process.execPath,
    [
      path.join(root, 'node_modules/vite/bin/vite.js'),
      'build',
      '--config',
      'web/vite.config.ts',
      '--logLevel',
      'warn',
    ],
    {
      cwd: root,
      stdio: 'inherit',
      // vitest sets NODE_ENV=test, which would build React's development bundle (StrictMode runs each
      // effect twice there): test the production page that `npm run build:web` makes.
      env: { ...process.env, NODE_ENV: 'production' },
    },
  );
}
