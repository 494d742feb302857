// Which files of a Hub repo Sonde needs to load it as a model, and downloading just those: config,
// safetensors weights (the index's shards when sharded, as SafetensorsCheckpoint reads them) and
// tokenizer files. PyTorch .bin, TF .h5, Flax .msgpack, ONNX, GGUF and subfolders are skipped.
import fs from 'node:fs';
import path from 'node:path';
import { existsFollowing } from './cache-layout.js';
import { fetchFile, settingsOf, type CachedFile, type HubOptions } from './download.js';
import { EntryNotFoundError, NoSafetensorsError } from './errors.js';
import { cachedSnapshot, syncSnapshot, type Snapshot } from './snapshot.js';

const INDEX = 'model.safetensors.index.json';

/** Top-level files a model folder may use besides its weights. */
export const MODEL_FILES = [
  'config.json',
  'generation_config.json',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.model',
];

const OTHER_WEIGHTS = /\.(bin|h5|msgpack|onnx|gguf|pt|pth|ckpt)$/;

/** The shard file names an index's weight_map points at, sorted. */
export function indexShards(indexFile: string): string[] {
  const index = JSON.parse(fs.readFileSync(indexFile, 'utf8')) as { weight_map?: Record<string, string> };
  return [...new Set(Object.values(index.weight_map ?? {}))].sort();
}

/** The safetensors files to load, from a repo's top-level file names, as the checkpoint loader picks them. */
function weightFiles(names: Set<string>): string[] {
  if (names.has('model.safetensors')) return ['model.safetensors'];
  return [...names].filter((n) => n.endsWith('.safetensors')).sort();
}

/** Files of a model folder that are missing (config.json, the index's shards or any weights). */
export function missingModelFiles(dir: string): string[] {
  const has = (f: string) => existsFollowing(path.join(dir, f));
  const missing = has('config.json') ? [] : ['config.json'];
  if (has(INDEX)) {
    try {
      missing.push(...indexShards(path.join(dir, INDEX)).filter((f) => !has(f)));
    } catch {
      missing.push(INDEX);
    }
  } else {
    const listing = fs.existsSync(dir) ? fs.readdirSync(dir) : [];
    if (!listing.some((f) => f.endsWith('.safetensors') && has(f))) missing.push('model.safetensors');
  }
  return missing;
}

/** The model files present in a cached snapshot folder (for offline answers). */
function presentModelFiles(dir: string, commit: string): CachedFile[] {
  return fs
    .readdirSync(dir)
    .filter(
      (f) =>
        (MODEL_FILES.includes(f) || f === INDEX || f.endsWith('.safetensors')) &&
        existsFollowing(path.join(dir, f)),
    )
    .sort()
    .map((f) => ({
      filename: f,
      path: path.join(dir, f),
      commit,
      size: fs.statSync(path.join(dir, f)).size,
      downloaded: false,
    }));
}

/** A complete cached model snapshot for the revision (default main), or null. Never uses the network. */
export function cachedModel(repoId: string, opts: HubOptions = {}): { commit: string; path: string } | null {
  const hit = cachedSnapshot(repoId, settingsOf(opts));
  return hit && missingModelFiles(hit.path).length === 0 ? hit : null;
}

/**
 * Downloads what Sonde needs to load a Hub model (config, safetensors, tokenizer) into the cache and
 * returns its snapshot. Offline, or when the Hub cannot be reached, a complete cached snapshot answers.
 */
export async function downloadModel(repoId: string, opts: HubOptions = {}): Promise<Snapshot> {
  const s = settingsOf(opts);
  return syncSnapshot(repoId, s, {
    select: async (listing) => {
      const top = new Set(listing.files.filter((f) => !f.includes('/')));
      if (!top.has('config.json')) throw new EntryNotFoundError(repoId, s.revision, 'config.json');
      const extras = MODEL_FILES.filter((f) => top.has(f));
      if (!top.has(INDEX)) {
        const weights = weightFiles(top);
        if (weights.length === 0) {
          throw new NoSafetensorsError(
            repoId,
            s.revision,
            [...top].filter((f) => OTHER_WEIGHTS.test(f)),
          );
        }
        return [...extras, ...weights];
      }
      // Sharded: only the shards the index names (a repo may also hold a consolidated copy).
      const index = await fetchFile(repoId, INDEX, { ...s, revision: listing.commit });
      const shards = indexShards(index.path);
      const absent = shards.find((f) => !top.has(f));
      if (absent) throw new EntryNotFoundError(repoId, s.revision, `${absent} (named in ${INDEX})`);
      return [...extras, INDEX, ...shards];
    },
    cachedFiles: presentModelFiles,
    missing: missingModelFiles,
  });
}
