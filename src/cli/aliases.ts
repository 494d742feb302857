// One option vocabulary across commands: --tokens is always token ids and --n-tokens a token budget;
// counts of model parts are --n-layers/--n-heads; --batch-size, --top-k, --component (what to patch),
// --probe (a probe file). The spellings it replaced stay for one release as hidden aliases: they set the
// new option and leave a one-line deprecation note on stderr.
import { Option, type Command } from 'commander';

/** Deprecated spellings given on each command's line, in order: [old, new]. */
const used = new WeakMap<Command, [string, string][]>();

/**
 * Adds `old` (flags as for .option, e.g. '--batch <n>') to `cmd` as a hidden alias of its option `current`
 * (its long flag, e.g. '--batch-size'), parsed the same way. Call it after `current` is defined.
 */
export function deprecatedAlias(cmd: Command, old: string, current: string): Command {
  const target = cmd.options.find((o) => o.long === current);
  if (!target) throw new Error(`deprecatedAlias: '${cmd.name()}' has no option ${current}`);
  const alias = new Option(old, `deprecated spelling of ${current}`).hideHelp();
  // commander reports a bad value under the flag the user typed.
  if (target.parseArg) alias.argParser(target.parseArg);
  cmd.addOption(alias);
  // Registered after commander's own listener, so the alias's parsed value is already set.
  cmd.on(`option:${alias.name()}`, () => {
    cmd.setOptionValueWithSource(target.attributeName(), cmd.getOptionValue(alias.attributeName()), 'cli');
    used.set(cmd, [...(used.get(cmd) ?? []), [alias.long ?? old, current]]);
  });
  return cmd;
}

/** The deprecation notes for the spellings given to `cmd` ("sonde: --batch is deprecated: use --batch-size"). */
export function deprecationNotes(cmd: Command): string[] {
  return (used.get(cmd) ?? []).map(([o, n]) => `sonde: ${o} is deprecated: use ${n}`);
}

/** The spellings replaced by the common vocabulary, per command path: [old flags, new long flag]. */
const RENAMED: Record<string, [string, string][]> = {
  ablate: [['--batch <n>', '--batch-size']],
  heads: [['--batch <n>', '--batch-size']],
  'toy superposition': [['--batch <b>', '--batch-size']],
  'train induction': [
    ['--batch <n>', '--batch-size'],
    ['--layers <n>', '--n-layers'],
    ['--heads <n>', '--n-heads'],
  ],
  'tuned-lens train': [['--batch <n>', '--batch-size']],
  dla: [['--top <n>', '--top-k']],
  patch: [['--target <name>', '--component']],
  attribute: [['--target <name>', '--component']],
  steer: [['--direction <probe.json>', '--probe']],
  'sae train': [
    ['--tokens <n>', '--n-tokens'],
    ['--k <n>', '--top-k'],
  ],
  'sae eval': [['--tokens <n>', '--n-tokens']],
  'sae features': [
    ['--tokens <n>', '--n-tokens'],
    ['--top <n>', '--top-k'],
  ],
  'sae show': [
    ['--tokens <n>', '--n-tokens'],
    ['--logits <k>', '--top-k'],
  ],
};

/** Adds the hidden aliases of RENAMED to those of the program's commands that are registered. */
export function addDeprecatedAliases(program: Command): void {
  for (const [cmdPath, pairs] of Object.entries(RENAMED)) {
    let cmd: Command | undefined = program;
    for (const name of cmdPath.split(' ')) cmd = cmd?.commands.find((c) => c.name() === name);
    if (cmd) for (const [old, current] of pairs) deprecatedAlias(cmd, old, current);
  }
}

/** Command paths with renamed options. */
export const RENAMED_COMMANDS = Object.keys(RENAMED);
