// Reading a command line before the program is built (the launcher and the lazy command loader).

/** Global options that take a value (the next word is not the command). */
const GLOBAL_WITH_VALUE = new Set(['--model', '--revision']);

/** The first word that is not a global option or its value: the command, when the line names one. */
export function firstWord(args: string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') return undefined;
    if (GLOBAL_WITH_VALUE.has(a)) i++;
    else if (!a.startsWith('-')) return a;
  }
  return undefined;
}

/** Commands that compute nothing with tensors, so gain nothing from the tuned-malloc re-run. */
const LIGHT_COMMANDS = new Set(['info', 'models', 'help']);

/** Whether the launcher can run this line in place (help, version, info: about 0.1 s sooner). */
export function isLightCommandLine(args: string[]): boolean {
  const w = firstWord(args);
  return w === undefined || LIGHT_COMMANDS.has(w);
}

/** Every value of a repeatable option (`--model a --model b`, `--model=a`), in order. */
export function allValues(args: string[], flag: string): string[] {
  const values: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a === '--') break;
    if (a === flag && i + 1 < args.length) values.push(args[++i]!);
    else if (a.startsWith(`${flag}=`)) values.push(a.slice(flag.length + 1));
  }
  return values;
}
