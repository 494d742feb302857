// Text corpora for SAE work: documents separated by blank lines (the built-in stories corpus's layout).
import fs from 'node:fs';
import { UsageError } from '../errors.js';
import { defaultCorpus } from '../organisms/induction.js';

/** The built-in corpus: 3,000 stories sampled from stories260K at temperature 1 (seed 0). */
export function defaultCorpusPath(): string {
  return defaultCorpus();
}

/** Documents of a text file (blank-line separated), trimmed, empty ones dropped. */
export function readCorpus(file: string): string[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new UsageError(`cannot read corpus '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
  const docs = text
    .split(/\n\s*\n/)
    .map((d) => d.trim())
    .filter((d) => d.length > 0);
  if (docs.length === 0) throw new UsageError(`corpus '${file}' has no text`);
  return docs;
}
