// The project's .npmrc: onnxruntime-node's postinstall is told to skip its CUDA download
// (ONNXRUNTIME_NODE_INSTALL=skip in every lifecycle script) through settings npm knows, so that npm
// prints no "Unknown project config" warning before every npx/npm command.
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

/** `npm exec` of a Node one-liner in the project, with the given environment on top of a clean one. */
function npmExec(
  script: string,
  env: Record<string, string> = {},
): Promise<{ stdout: string; stderr: string }> {
  const base = { ...process.env };
  // The test itself may run under `npm test`, which already set these.
  delete base.ONNXRUNTIME_NODE_INSTALL;
  delete base.NODE_OPTIONS;
  for (const k of Object.keys(base)) if (k.toLowerCase().startsWith('npm_')) delete base[k];
  return new Promise((resolve, reject) => {
    execFile(
      'npm',
      ['exec', '--', 'node', '-e', script],
      { cwd: ROOT, env: { ...base, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => (err ? reject(err) : resolve({ stdout, stderr })),
    );
  });
}

describe('.npmrc', () => {
  it('lifecycle scripts see ONNXRUNTIME_NODE_INSTALL=skip, npm warns about nothing', async () => {
    const r = await npmExec('console.log(process.env.ONNXRUNTIME_NODE_INSTALL)');
    expect(r.stdout).toBe('skip\n');
    expect(r.stderr).not.toMatch(/npm warn/i);
  }, 150_000);

  it("the caller's ONNXRUNTIME_NODE_INSTALL and NODE_OPTIONS are kept", async () => {
    const r = await npmExec('console.log(process.env.ONNXRUNTIME_NODE_INSTALL, process.env.NODE_OPTIONS)', {
      ONNXRUNTIME_NODE_INSTALL: 'cuda12',
      NODE_OPTIONS: '--max-old-space-size=1234',
    });
    expect(r.stdout).toMatch(/^cuda12 --max-old-space-size=1234 --import=data:/);
  }, 150_000);
});
