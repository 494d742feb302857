#!/usr/bin/env node
// The `sonde` command line. A failure is one line on stderr ("sonde: ...") and exit code 1, or with
// --json one {"error": {"type", "message"}} object on stdout; --debug adds the stack trace.
import { CommanderError } from 'commander';
import { reportError } from './common.js';
import { buildProgram, commandNamed } from './program.js';
import { removeStaleLeftovers } from '../io/leftovers.js';

/** Runs the CLI; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  // What an earlier run killed mid-write left (a single process has no launcher to clean up after it).
  removeStaleLeftovers();
  const args = argv.slice(2);
  const program = await buildProgram(commandNamed(args));
  if (args.length === 0) {
    program.outputHelp();
    return 0;
  }
  // Read from the words, not the parsed options: a parse error can come before --json is parsed.
  const flags = { json: args.includes('--json'), debug: args.includes('--debug') };
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help or version printed (including `sonde help run`).
      if (err.exitCode === 0) return 0;
      // Options but no command: commander would print the help on stderr.
      if (err.code === 'commander.help') {
        reportError(new CommanderError(1, err.code, "missing command (see 'sonde --help')"), flags);
        return 1;
      }
    }
    reportError(err, flags);
    return 1;
  }
}

// Exit quietly when stdout is closed early (`sonde hooks | head`).
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});

process.exitCode = await main(process.argv);
