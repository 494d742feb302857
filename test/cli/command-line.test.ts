import { describe, expect, it } from 'vitest';
import { firstWord, isLightCommandLine } from '../../src/cli/command-line.js';
import { commandNamed } from '../../src/cli/program.js';

describe('reading a command line before the program is built', () => {
  it('skips global options and their values', () => {
    expect(firstWord(['--model', 'info', 'run', '--prompt', 'x'])).toBe('run');
    expect(firstWord(['--json', '--revision', 'main', 'patch'])).toBe('patch');
    expect(commandNamed(['--model', 'x', 'nonsense'])).toBeUndefined();
    expect(commandNamed(['-q', 'sae', 'train'])).toBe('sae');
  });

  it('runs help, version and info in place, and everything that computes through the launcher', () => {
    expect(isLightCommandLine([])).toBe(true);
    expect(isLightCommandLine(['--version'])).toBe(true);
    expect(isLightCommandLine(['--model', 'x', 'info', '--json'])).toBe(true);
    expect(isLightCommandLine(['help', 'run'])).toBe(true);
    expect(isLightCommandLine(['--model', 'info', 'run'])).toBe(false);
    expect(isLightCommandLine(['sae', 'train', '--synthetic'])).toBe(false);
  });
});
