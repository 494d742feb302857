// Startup: a command loads its own module and what it uses, not every command, plotting, DuckDB or
// ONNX Runtime (most of `sonde info`'s time was module loading).
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT } from '../helpers/cli.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sonde-startup-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// ESM modules, seen by a loader hook. It runs on its own thread, so it writes to stderr synchronously:
// a stream write from that thread can be lost when a quick command exits first.
const esmHook = path.join(dir, 'esm-hook.mjs');
fs.writeFileSync(
  esmHook,
  `import { register } from 'node:module';
register('data:text/javascript,' + encodeURIComponent(
  "import { writeSync } from 'node:fs'; export async function load(url, ctx, next) { writeSync(2, 'LOADED ' + url + '\\\\n'); return next(url, ctx); }"));
`,
);
// CommonJS modules (onnxruntime-node and onnx-proto are required), listed at exit.
const cjsHook = path.join(dir, 'cjs-hook.cjs');
fs.writeFileSync(
  cjsHook,
  `process.on('exit', () => { for (const f of Object.keys(require.cache)) process.stderr.write('LOADED ' + f + '\\n'); });\n`,
);

function loadedBy(...args: string[]): Promise<{ code: number; stdout: string; loaded: string[] }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--require', cjsHook, '--import', esmHook, '--import', 'tsx', 'src/cli/index.ts', ...args],
      { cwd: ROOT, timeout: 300_000, maxBuffer: 64 << 20 },
      (err, stdout, stderr) =>
        resolve({
          code: err ? Number(err.code ?? -1) : 0,
          stdout,
          loaded: stderr
            .split('\n')
            .filter((l) => l.startsWith('LOADED '))
            .map((l) => l.slice(7)),
        }),
    );
  });
}

const HEAVY =
  /node_modules\/(vega|vega-lite|@duckdb\/[^/]+|onnx-proto|protobufjs|onnxruntime-node|proper-lockfile)\//;

describe('startup', () => {
  it('sonde info loads one command and none of vega, DuckDB, protobuf, ONNX Runtime or the download lock', async () => {
    const r = await loadedBy('info', '--json');
    expect(r.code).toBe(0);
    expect((JSON.parse(r.stdout) as { dModel: number }).dModel).toBe(64);
    expect(r.loaded.length).toBeGreaterThan(10);
    expect(r.loaded.filter((u) => HEAVY.test(u))).toEqual([]);
    const commands = r.loaded.filter((u) => u.includes('/src/cli/commands/')).map((u) => path.basename(u));
    expect(commands).toEqual(['info.ts']);
  }, 300_000);

  it('the build marks the bin executable (npx reuses its old link to a rebuilt checkout)', async () => {
    const pkg = path.join(dir, 'pkg');
    fs.mkdirSync(path.join(pkg, 'dist'), { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ bin: { x: 'dist/x.js' } }));
    fs.writeFileSync(path.join(pkg, 'dist/x.js'), '#!/usr/bin/env node\nconsole.log(42)\n', { mode: 0o644 });
    await new Promise<void>((resolve, reject) =>
      execFile(process.execPath, [path.join(ROOT, 'scripts/bin-executable.mjs')], { cwd: pkg }, (e) =>
        e ? reject(e) : resolve(),
      ),
    );
    expect(fs.statSync(path.join(pkg, 'dist/x.js')).mode & 0o777).toBe(0o755);
    const build = (
      JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { scripts: { build: string } }
    ).scripts.build;
    expect(build).toMatch(/^tsc -p tsconfig\.build\.json && node scripts\/bin-executable\.mjs/);
  });
});
