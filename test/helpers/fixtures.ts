import path from 'node:path';

/** The reference checkpoints under test/fixtures, one per architecture variant (scripts/reference/). */
export const ARCHITECTURE_FIXTURES = [
  'gpt2-tiny',
  'gpt-neo-tiny',
  'pythia-tiny',
  'pythia-seq-tiny',
  'llama-tiny',
  'mistral-tiny',
  'qwen2-tiny',
  'qwen3-tiny',
  'gemma-tiny',
  'gemma2-tiny',
  'gemma3-tiny',
] as const;

export const FIXTURES_DIR = path.resolve('test/fixtures');

/** A fixture's folder; 'stories260K' is the built-in model. */
export function fixtureDir(name: string): string {
  return name === 'stories260K' ? path.resolve('assets/stories260K') : path.join(FIXTURES_DIR, name);
}
