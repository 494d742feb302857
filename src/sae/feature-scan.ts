// Where an SAE's feature store lives and when an existing one can stand for a scan: the rules that
// `sonde sae features` / `sonde sae show` and the explorer's scan job share.
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../errors.js';
import type { HookedTransformer } from '../hooks/hooked-transformer.js';
import { SaeError } from './config.js';
import { defaultCorpusPath, readCorpus } from './corpus.js';
import { FeatureStore, type FeatureStoreInfo } from './feature-store.js';
import {
  corpusFingerprint,
  saeFingerprint,
  scanBos,
  scanFeatures,
  splitCorpus,
  type ScanProgress,
} from './features.js';
import type { SparseAutoencoder } from './sae.js';

/** The store's file name in the SAE's folder. */
export const FEATURE_STORE_FILE = 'features.duckdb';
export const DEFAULT_SCAN_TOKENS = 100_000;
export const DEFAULT_SCAN_CTX = 128;

/** The default feature store of the SAE in `saeDir`. */
export function featureStorePath(saeDir: string): string {
  return path.join(saeDir, FEATURE_STORE_FILE);
}

/** A corpus file's documents: .jsonl of {"text"}, else blank-line separated. */
export function readScanCorpus(file: string): string[] {
  if (file.toLowerCase().endsWith('.jsonl')) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      throw new UsageError(`cannot read corpus '${file}': ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
    }
    const docs = splitCorpus(text, true);
    if (docs.length === 0) throw new UsageError(`corpus '${file}' has no text`);
    return docs;
  }
  return readCorpus(file);
}

/** What a store must have been made from to stand for a scan. */
export type ScanIdentity = Pick<
  FeatureStoreInfo,
  'saeFingerprint' | 'model' | 'corpusFingerprint' | 'ctx' | 'maxTokens' | 'bosExcluded'
>;

/** Which scan settings are compared (the SAE, model and BOS handling always are). */
export interface ScanCompare {
  corpus: boolean;
  tokens: boolean;
  ctx: boolean;
}

/** Compares only the SAE, model and BOS handling: any scan of this SAE will do. */
export const ANY_SCAN: ScanCompare = { corpus: false, tokens: false, ctx: false };

/** Why a store cannot stand for this scan (null when it can). */
export function storeMismatch(
  info: FeatureStoreInfo,
  want: ScanIdentity,
  compare: ScanCompare,
): string | null {
  if (info.saeFingerprint !== want.saeFingerprint) return 'it was made with other SAE weights';
  if (path.resolve(info.model) !== path.resolve(want.model)) return `it was made with model ${info.model}`;
  if (info.bosExcluded !== want.bosExcluded) return 'it was made with other BOS handling';
  if (compare.corpus && info.corpusFingerprint !== want.corpusFingerprint)
    return `it was made from ${info.corpus}`;
  if (compare.ctx && info.ctx !== want.ctx) return `it was made with --ctx ${info.ctx}`;
  if (compare.tokens && info.maxTokens !== want.maxTokens)
    return `it was made with --n-tokens ${info.maxTokens ?? 'all'}`;
  return null;
}

export interface ScanRequest {
  /** The feature store file (default: featureStorePath of the SAE's folder). */
  dbPath: string;
  /** The SAE's folder, recorded in the store. */
  saeDir: string;
  /** Corpus file (default: the built-in stories). */
  data?: string;
  nTokens?: number;
  ctx?: number;
  batchSize?: number;
  /** Scan even when the store there matches. */
  rescan?: boolean;
  compare?: ScanCompare;
  /** What is happening, in one line ('using …', 'rescanning: …', 'scanning …'). */
  onNote?: (line: string) => void;
  onProgress?: (p: ScanProgress) => void;
}

export interface OpenedStore {
  store: FeatureStore;
  reused: boolean;
  /** Seconds the scan took (0 when reused). */
  seconds: number;
}

/**
 * The feature store at `dbPath` when it matches the request (unless `rescan`), else a new scan of the
 * corpus written there. The returned store is open; close it.
 */
export async function openOrScanStore(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  req: ScanRequest,
): Promise<OpenedStore> {
  const nTokens = req.nTokens ?? DEFAULT_SCAN_TOKENS;
  const ctx = req.ctx ?? DEFAULT_SCAN_CTX;
  const dataFile = req.data ?? defaultCorpusPath();
  const texts = readScanCorpus(dataFile);
  const want: ScanIdentity = {
    saeFingerprint: await saeFingerprint(sae),
    model: model.source,
    corpusFingerprint: corpusFingerprint(texts),
    ctx,
    maxTokens: nTokens,
    bosExcluded: scanBos(model, sae) !== null,
  };
  const note = req.onNote ?? (() => {});
  if (fs.existsSync(req.dbPath) && !req.rescan) {
    let store: FeatureStore | null = null;
    let why: string | null;
    try {
      store = await FeatureStore.open(req.dbPath);
      why = storeMismatch(store.info, want, req.compare ?? { corpus: true, tokens: true, ctx: true });
    } catch (e) {
      why = e instanceof SaeError ? e.message : String(e);
    }
    if (store && why === null) {
      note(
        `using ${req.dbPath} (${store.info.tokensScanned} tokens of ${store.info.corpus}; --rescan to redo)`,
      );
      return { store, reused: true, seconds: 0 };
    }
    store?.close();
    note(`rescanning: ${req.dbPath} does not match (${why})`);
  }
  note(`scanning ${nTokens} tokens of ${dataFile} through ${sae.cfg.hookName} into ${req.dbPath}`);
  const t0 = performance.now();
  const store = await scanFeatures(model, sae, texts, {
    dbPath: req.dbPath,
    ctx,
    maxTokens: nTokens,
    batchSize: req.batchSize,
    saeSource: path.resolve(req.saeDir),
    corpus: req.data ? path.resolve(req.data) : dataFile,
    onProgress: req.onProgress,
  });
  return { store, reused: false, seconds: (performance.now() - t0) / 1000 };
}

/**
 * The store at `dbPath` when it is a scan of this SAE with this model (any corpus and size), else null
 * with the reason.
 */
export async function openScanOf(
  model: HookedTransformer,
  sae: SparseAutoencoder,
  dbPath: string,
): Promise<{ store: FeatureStore | null; why: string | null }> {
  if (!fs.existsSync(dbPath)) return { store: null, why: `no feature store at ${dbPath}` };
  const store = await FeatureStore.open(dbPath);
  const why = storeMismatch(
    store.info,
    {
      saeFingerprint: await saeFingerprint(sae),
      model: model.source,
      corpusFingerprint: '',
      ctx: 0,
      maxTokens: null,
      bosExcluded: scanBos(model, sae) !== null,
    },
    ANY_SCAN,
  );
  if (why === null) return { store, why };
  store.close();
  return { store: null, why: `the feature store at ${dbPath} does not fit: ${why}` };
}
