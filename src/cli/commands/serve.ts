// sonde serve: the explorer (web app + JSON API) over the models and SAEs named on the command line.
import { randomBytes } from 'node:crypto';
import type { Command } from 'commander';
import { UsageError } from '../../errors.js';
import { allValues } from '../command-line.js';
import { globalsOf, intArg, note, out } from '../common.js';

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
    .option('--port <n>', 'port (0 picks a free one)', intArg(0), DEFAULT_PORT)
    .option(
      '--host <address>',
      'address to bind; anything but 127.0.0.1/localhost/::1 requires the token',
      '127.0.0.1',
    )
    .option('--token <token>', 'the API token (default: a random one, when the host is not loopback)')
    .addHelpText(
      'after',
      `
--model may be given several times to open several models (the first is the default one).

Examples:
  sonde serve
  sonde serve --sae sae-l2 --port 8080
  sonde serve --tuned-lens lens-260k
  sonde --model gpt2 --model path/to/pythia serve --host 0.0.0.0`,
    )
    .action(async (opts: ServeFlags, cmd: Command) => {
      const g = globalsOf(cmd);
      const { buildServer } = await import('../../server/app.js');
      const { Registry } = await import('../../server/registry.js');
      const { isLoopback } = await import('../../server/security.js');
      const models = allValues(process.argv.slice(2), '--model');
      const registry = await Registry.open(models, opts.sae ?? [], opts.tunedLens ?? []);
      const token = opts.token ?? (isLoopback(opts.host) ? null : randomBytes(18).toString('base64url'));
      const { app } = await buildServer({ registry, token });
      let address: string;
      try {
        address = await app.listen({ port: opts.port, host: opts.host });
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EADDRINUSE')
          throw new UsageError(`--port ${opts.port} is in use: pick another (--port 0 picks a free one)`);
        if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND')
          throw new UsageError(`--host ${opts.host} is not an address of this machine`);
        throw e;
      }
      const url = `${address.replace('0.0.0.0', 'localhost')}/${token ? `?token=${token}` : ''}`;
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
          `models: ${info.models.map((m) => m.id).join(', ')}${info.saes.length ? ` · SAEs: ${info.saes.map((s) => s.id).join(', ')}` : ''}${info.tunedLenses.length ? ` · tuned lenses: ${info.tunedLenses.map((l) => `${l.id} (${l.modelId})`).join(', ')}` : ''}`,
        );
        for (const s of info.saes) if (s.warning) note(g, `warning: ${s.id}: ${s.warning}`);
        note(g, 'Ctrl-C stops it');
      }
    });
}
