// sonde serve: the explorer (web app + JSON API) over the models and SAEs named on the command line.
import { randomBytes } from 'node:crypto';
import os from 'node:os';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { allValues } from '../command-line.js';
import { globalsOf, intArg, note, out, warn } from '../common.js';

interface ServeFlags {
  sae?: string[];
  tunedLens?: string[];
  port: number;
  host: string;
  token?: string;
}

export const DEFAULT_PORT = 7860;

export function registerServe(program: Command): void {
  program
    .command('serve')
    .description(
      'open the explorer: a local web app over the library (prompt, attention, lenses, patching, SAEs, circuits)',
    )
    .option('--sae <dir...>', 'SAE folders to open (SAELens layout, e.g. from sonde sae train); repeatable')
    .option(
      '--tuned-lens <dir...>',
      "tuned lenses to open (folders from 'sonde tuned-lens train'), each paired with the model it fits",
    )
    .option('--port <n>', 'port to listen on (0 picks a free one)', intArg(0, 65535), DEFAULT_PORT)
    .option(
      '--host <address>',
      'address to listen on; any but 127.0.0.1, localhost or ::1 requires the token',
      '127.0.0.1',
    )
    .option('--token <token>', 'the API token (default: a random one when --host is not loopback)')
    .addHelpText(
      'after',
      `
Open the address it prints in a browser. --model may be given several times (the first is the default
model); each SAE is paired with the open model its cfg.json names, else the first.

Security: by default it answers this machine only (127.0.0.1), and only pages it served itself (other
sites' requests, DNS rebinding and cross-site forms are refused; no CORS). With any other --host every API
call needs the token: it is printed in the address (?token=…). Long jobs (sweeps, scans, training) run
in worker processes, one at a time, and can be cancelled from the page. Ctrl-C stops the server and
its jobs.

Examples:
  sonde serve
  sonde serve --sae sae-l2 --port 8080
  sonde serve --tuned-lens lens-260k
  sonde --model stories260K --model test/fixtures/induction-2l serve
  sonde --model gpt2 serve --host 0.0.0.0 --port 7860`,
    )
    .action(async (opts: ServeFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      const { buildServer, defaultWebRoot } = await import('../../server/app.js');
      const { Registry } = await import('../../server/registry.js');
      const { isLoopback } = await import('../../server/security.js');
      const models = allValues(process.argv.slice(2), '--model');
      const registry = await Registry.open(models, opts.sae ?? [], opts.tunedLens ?? []);
      const token = opts.token ?? (isLoopback(opts.host) ? null : randomBytes(18).toString('base64url'));
      if (token !== null && token.length < 8)
        throw new UsageError('--token is too short to protect anything: use 8 characters or more');
      const { app, jobs } = await buildServer({ registry, token, host: opts.host });
      let address: string;
      try {
        address = await app.listen({ port: opts.port, host: opts.host });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE')
          throw new UsageError(`--port ${opts.port} is in use: pick another (--port 0 picks a free one)`);
        if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND' || code === 'EAFNOSUPPORT')
          throw new UsageError(`--host ${opts.host} is not an address of this machine`);
        if (code === 'EACCES')
          throw new UsageError(`--port ${opts.port} needs privileges here: pick one above 1023`);
        throw e;
      }
      stopOnSignals(() => jobs.killAll());
      const url = pageUrl(address, token);
      const info = registry.info();
      if (g.json)
        out(
          JSON.stringify({
            url,
            token,
            models: info.models.map((m) => m.id),
            saes: info.saes.map((s) => s.id),
          }),
        );
      else {
        out(`Sonde explorer: ${url}`);
        out(
          `models: ${info.models.map((m) => m.id).join(', ')}` +
            (info.saes.length
              ? ` · SAEs: ${info.saes.map((s) => `${s.id} (on ${s.modelId})`).join(', ')}`
              : '') +
            (info.tunedLenses.length
              ? ` · tuned lenses: ${info.tunedLenses.map((l) => `${l.id} (on ${l.modelId})`).join(', ')}`
              : ''),
        );
        if (/^(0\.0\.0\.0|::)$/.test(opts.host))
          note(
            g,
            `listening on every address: from another machine use this one's name (${os.hostname()}) with the same ?token=…`,
          );
        note(g, 'Ctrl-C stops it');
      }
      for (const s of info.saes) if (s.warning) warn(`SAE ${s.id}: ${s.warning}`);
      if (defaultWebRoot() === undefined)
        warn(
          'the explorer page is not built (a source checkout): run `npm run build:web`; the API answers meanwhile',
        );
    });
}

/** The page's address: a wildcard bind is shown as localhost, the token in the query. */
function pageUrl(address: string, token: string | null): string {
  const u = new URL(address);
  if (u.hostname === '0.0.0.0' || u.hostname === '[::]') u.hostname = 'localhost';
  if (token !== null) u.searchParams.set('token', token);
  return u.href;
}

/**
 * Ctrl-C and kill: the job workers are killed at once (they are processes of their own), then the
 * server exits with the code a shell gives a process that a signal ended (130, 143), as every command.
 */
function stopOnSignals(killJobs: () => void): void {
  for (const [sig, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const)
    process.once(sig, () => {
      killJobs();
      process.exit(code);
    });
}
