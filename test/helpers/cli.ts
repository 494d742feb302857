// Runs the `sonde` CLI from source in a child process, for end-to-end tests.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ENTRY = path.join(ROOT, 'src/cli/index.ts');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export function sonde(...args: string[]): Promise<CliResult> {
  return sondeWithin(120_000, ...args);
}

/** As sonde(), with a longer limit for commands that train. */
export function sondeWithin(timeoutMs: number, ...args: string[]): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', ENTRY, ...args],
      { cwd: ROOT, env: { ...process.env, NO_COLOR: '1' }, timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr }),
    );
  });
}
