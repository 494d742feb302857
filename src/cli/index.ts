#!/usr/bin/env node
// The `sonde` command line. Every failure is one line on stderr ("sonde: ...") and exit code 1; --debug
// adds the stack trace.
import { Command, CommanderError } from 'commander';
import { registerCache } from './commands/cache.js';
import { registerDemo } from './commands/demo.js';
import { registerGenerate } from './commands/generate.js';
import { registerHooks } from './commands/hooks.js';
import { registerInfo } from './commands/info.js';
import { registerRun } from './commands/run.js';
import { registerToy } from './commands/toy.js';
import { registerHeads } from './commands/heads.js';
import { registerLens } from './commands/lens.js';
import { registerDla } from './commands/dla.js';
import { registerPatch } from './commands/patch.js';
import { registerAttribute } from './commands/attribute.js';
import { registerAblate } from './commands/ablate.js';
import { registerTrain } from './commands/train.js';
import { registerTunedLens } from './commands/tuned-lens.js';
import { registerCompare } from './commands/compare.js';
import { registerProbe } from './commands/probe.js';
import { registerSteer } from './commands/steer.js';
import { registerMonitor } from './commands/monitor.js';
import { registerSae } from './commands/sae.js';
import { registerDownload } from './commands/download.js';
import { registerModels } from './commands/models.js';
import { packageVersion, reportError } from './common.js';
import { removeStaleLeftovers } from '../io/leftovers.js';

export function buildProgram(): Command {
  const program = new Command('sonde')
    .description('Sonde: mechanistic interpretability for transformer language models')
    .version(packageVersion(), '-V, --version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .option(
      '--model <model>',
      'model folder, Hub id (org/name[@revision], downloaded to the HF cache) or alias (sonde models); ' +
        'default: the built-in stories260K',
    )
    .option('--revision <rev>', 'Hub branch, tag or commit for --model and download (default: main)')
    .option('--json', 'machine-readable output: one JSON document on stdout')
    .option('-q, --quiet', 'no progress bars or notes on stderr')
    .option('--debug', 'print stack traces on errors')
    .option('--force', 'overwrite an existing --out instead of refusing')
    .configureHelp({ showGlobalOptions: true, sortSubcommands: false })
    .helpCommand('help [command]', 'show help for a command')
    .showSuggestionAfterError(true)
    .exitOverride()
    // Errors are reported by main(), as one line; help requested without a command is not printed.
    .configureOutput({ outputError: () => {}, writeErr: () => {} })
    .addHelpText(
      'after',
      `
Start with:
  sonde demo
  sonde generate --max-tokens 64 --temperature 0
  sonde run --prompt "Once upon a time" --json`,
    );
  // Subcommands inherit the settings above, so they are registered last.
  registerDemo(program);
  registerRun(program);
  registerGenerate(program);
  registerCache(program);
  registerInfo(program);
  registerHooks(program);
  registerHeads(program);
  registerLens(program);
  registerDla(program);
  registerPatch(program);
  registerAttribute(program);
  registerAblate(program);
  registerTrain(program);
  registerToy(program);
  registerProbe(program);
  registerSteer(program);
  registerMonitor(program);
  registerTunedLens(program);
  registerCompare(program);
  registerSae(program);
  registerModels(program);
  registerDownload(program);
  return program;
}

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // What an earlier run killed mid-write left (a single process has no launcher to clean up after it).
  removeStaleLeftovers();
  const program = buildProgram();
  const args = argv.slice(2);
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help or version printed (including `sonde help run`).
      if (err.exitCode === 0) return 0;
      // Options but no command: commander would print the help on stderr.
      if (err.code === 'commander.help') {
        reportError(new CommanderError(1, err.code, "missing command (see 'sonde --help')"), false);
        return 1;
      }
    }
    reportError(err, args.includes('--debug'));
    return 1;
  }
}

// Exit quietly when stdout is closed early (`sonde hooks | head`).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv);
