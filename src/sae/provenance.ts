// What an SAE was trained on, as recorded in its cfg.json metadata: the model (model_name, model_path) and
// the training split (which documents or rows were trained on, which were held out). `sae train` records
// them; `sae eval` reads them to evaluate on data the SAE never saw and to warn about another model.
import crypto from 'node:crypto';
import path from 'node:path';
import { SondeError } from '../errors.js';

/** Fraction of the data `sae train` keeps out of training by default, to report its numbers on. */
export const DEFAULT_HOLDOUT = 0.05;

/** The metadata key of the training split in cfg.json. */
export const SPLIT_KEY = 'training_split';

/**
 * A split of the training data: units [0, train) were trained on, [train, total) held out. Documents are
 * a corpus's (blank-line separated, in order; sha256 hashes them so a moved or renamed copy still
 * matches); rows are an activation file's.
 */
export interface TrainingSplit {
  unit: 'documents' | 'rows';
  total: number;
  train: number;
  sha256?: string;
}

/** Keeps the last `fraction` of `total` units out of training (at least one when fraction > 0). */
export function splitData(
  total: number,
  fraction: number,
  unit: TrainingSplit['unit'],
  docs?: string[],
): TrainingSplit {
  if (!(fraction >= 0 && fraction < 1))
    throw new SondeError(`the held-out fraction must be in [0, 1), got ${fraction}`);
  const held = fraction > 0 ? Math.max(1, Math.round(total * fraction)) : 0;
  if (total - held < 1)
    throw new SondeError(
      `the data has ${total} ${unit}: too few to hold out ${held} (use --test-fraction 0 to train on all)`,
    );
  return { unit, total, train: total - held, ...(docs ? { sha256: documentsHash(docs) } : {}) };
}

export function documentsHash(docs: string[]): string {
  const h = crypto.createHash('sha256');
  for (const d of docs) h.update(d).update('\n\n');
  return h.digest('hex');
}

/** The split recorded in an SAE's metadata, or null when there is none (or it is malformed). */
export function recordedSplit(metadata: Record<string, unknown>): TrainingSplit | null {
  const s = metadata[SPLIT_KEY] as Partial<TrainingSplit> | undefined;
  if (!s || typeof s !== 'object') return null;
  const int = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  if ((s.unit !== 'documents' && s.unit !== 'rows') || !int(s.total) || !int(s.train)) return null;
  if (s.train! > s.total!) return null;
  return s as TrainingSplit;
}

/** The documents to evaluate an SAE on, what they are, and a warning when they are (or may be) in-sample. */
export interface EvalDocuments {
  texts: string[];
  /** Index of texts[0] in the corpus. */
  first: number;
  /** 'held-out': documents the SAE's training left out; 'other': not its training corpus; 'training': in-sample. */
  relation: 'held-out' | 'other' | 'training' | 'unknown';
  /** Human-readable, e.g. "documents 2853-3002 (held out of the SAE's training)". */
  label: string;
  warning: string | null;
}

/**
 * Evaluation defaults to data the SAE was not trained on: when its cfg records a split of this very corpus
 * (same documents), only the held-out documents; when it was trained on this corpus with no split recorded,
 * all of it with a warning that the numbers are in-sample.
 */
export function evaluationDocuments(
  metadata: Record<string, unknown>,
  corpusPath: string,
  docs: string[],
): EvalDocuments {
  const split = recordedSplit(metadata);
  const all = (relation: EvalDocuments['relation'], label: string, warning: string | null = null) => ({
    texts: docs,
    first: 0,
    relation,
    label,
    warning,
  });
  if (split?.unit === 'documents' && split.sha256 === documentsHash(docs)) {
    if (split.train >= docs.length)
      return all('training', 'all documents (the SAE trained on all of them)', inSample(corpusPath));
    return {
      texts: docs.slice(split.train),
      first: split.train,
      relation: 'held-out',
      label: `documents ${split.train + 1}-${docs.length} of ${docs.length} (held out of the SAE's training)`,
      warning: null,
    };
  }
  const trainedOn = metadata.dataset_path;
  if (typeof trainedOn !== 'string')
    return all('unknown', 'all documents (the SAE does not record its data)');
  if (path.resolve(trainedOn) === path.resolve(corpusPath))
    return all('training', 'all documents (the SAE was trained on this corpus)', inSample(corpusPath));
  return all('other', "all documents (not the SAE's training corpus)");
}

function inSample(corpus: string): string {
  return `the SAE was trained on ${corpus} and records no held-out part of it: these numbers are in-sample`;
}

/**
 * A warning when the SAE's cfg names another model than the one loaded (null when they agree or the cfg
 * names none). Compares names loosely: case, a Hub org prefix and TransformerLens's "-small" for GPT-2.
 */
export function modelMismatch(metadata: Record<string, unknown>, modelSource: string): string | null {
  const named = metadata.model_name;
  if (typeof named !== 'string' || named === '') return null;
  const loaded = modelName(modelSource);
  if (loaded === null || canonical(named) === canonical(loaded)) return null;
  return `this SAE's cfg.json names model '${named}', but the model loaded is '${loaded}'`;
}

/** A model folder's name: the Hub repo's for a cache snapshot (models--org--name/snapshots/<commit>). */
export function modelName(source: string): string | null {
  const hub = /models--([^/\\]+?)--([^/\\]+)[/\\]snapshots[/\\]/.exec(source);
  if (hub) return `${hub[1]}/${hub[2]}`;
  const base = path.basename(path.resolve(source));
  return base || null;
}

const TRANSFORMER_LENS_NAMES: Record<string, string> = { 'gpt2-small': 'gpt2' };

function canonical(name: string): string {
  const n = name.toLowerCase().split('/').pop()!;
  return TRANSFORMER_LENS_NAMES[n] ?? n;
}
