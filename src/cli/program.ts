// The `sonde` program: global options and the commands, each command's module imported only when needed.
import { Command } from 'commander';
import { addDeprecatedAliases, deprecationNotes } from './aliases.js';
import { firstWord } from './command-line.js';
import { packageVersion } from './common.js';

type Register = (program: Command) => void;

/**
 * The commands, in the order of the help. Each module is imported only when needed: a command line that
 * names one loads that one (most of startup is module loading); help and unknown words load them all.
 */
const COMMANDS: [name: string, load: () => Promise<Register>][] = [
  ['demo', async () => (await import('./commands/demo.js')).registerDemo],
  ['run', async () => (await import('./commands/run.js')).registerRun],
  ['generate', async () => (await import('./commands/generate.js')).registerGenerate],
  ['cache', async () => (await import('./commands/cache.js')).registerCache],
  ['info', async () => (await import('./commands/info.js')).registerInfo],
  ['hooks', async () => (await import('./commands/hooks.js')).registerHooks],
  ['heads', async () => (await import('./commands/heads.js')).registerHeads],
  ['lens', async () => (await import('./commands/lens.js')).registerLens],
  ['dla', async () => (await import('./commands/dla.js')).registerDla],
  ['patch', async () => (await import('./commands/patch.js')).registerPatch],
  ['attribute', async () => (await import('./commands/attribute.js')).registerAttribute],
  ['circuit', async () => (await import('./commands/circuit.js')).registerCircuit],
  ['graph', async () => (await import('./commands/graph.js')).registerGraph],
  ['ablate', async () => (await import('./commands/ablate.js')).registerAblate],
  ['scrub', async () => (await import('./commands/scrub.js')).registerScrub],
  ['train', async () => (await import('./commands/train.js')).registerTrain],
  ['toy', async () => (await import('./commands/toy.js')).registerToy],
  ['probe', async () => (await import('./commands/probe.js')).registerProbe],
  ['steer', async () => (await import('./commands/steer.js')).registerSteer],
  ['monitor', async () => (await import('./commands/monitor.js')).registerMonitor],
  ['tuned-lens', async () => (await import('./commands/tuned-lens.js')).registerTunedLens],
  ['compare', async () => (await import('./commands/compare.js')).registerCompare],
  ['sae', async () => (await import('./commands/sae.js')).registerSae],
  ['models', async () => (await import('./commands/models.js')).registerModels],
  ['download', async () => (await import('./commands/download.js')).registerDownload],
  ['serve', async () => (await import('./commands/serve.js')).registerServe],
];

/** The command a command line names (its first word that is not a global option), if it is one of ours. */
export function commandNamed(args: string[]): string | undefined {
  const w = firstWord(args);
  return COMMANDS.some(([n]) => n === w) ? w : undefined;
}

/** The program with every command, or only `only` (the rest are not imported). */
export async function buildProgram(only?: string): Promise<Command> {
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
    .option('--force', 'overwrite an existing --out or --plot instead of refusing')
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
  const chosen = COMMANDS.filter(([name]) => only === undefined || name === only);
  for (const register of await Promise.all(chosen.map(([, load]) => load()))) register(program);
  addDeprecatedAliases(program);
  program.hook('preAction', (_program, action) => {
    if (action.optsWithGlobals().quiet !== true)
      for (const line of deprecationNotes(action)) process.stderr.write(line + '\n');
  });
  return program;
}
