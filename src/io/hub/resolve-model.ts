// What `--model X` (and resolveModel(X)) means, in order: an existing folder; an alias (sonde models);
// a Hub id org/name, optionally org/name@revision, taken from the cache or downloaded into it.
import fs from 'node:fs';
import { MemoryError, UsageError } from '../../errors.js';
import { closeAliases, findAlias, float32Bytes } from '../../models/aliases.js';
import { defaultModelDir } from '../../models/load.js';
import { formatBytes, resolveMemoryLimit } from '../../models/memory.js';
import { isRepoId } from './cache-layout.js';
import { downloadFile, type HubOptions } from './download.js';
import { UnknownModelError } from './errors.js';
import { cachedModel, downloadModel } from './model-files.js';

export interface ModelSpec {
  kind: 'builtin' | 'folder' | 'hub';
  /** The folder (builtin, folder) or null until downloaded (hub). */
  dir: string | null;
  repoId?: string;
  revision?: string;
  alias?: string;
}

/** Parses a model spec without touching the network. Throws UnknownModelError for what matches nothing. */
export function parseModelSpec(spec: string | undefined, revision?: string): ModelSpec {
  if (spec === undefined) return { kind: 'builtin', dir: defaultModelDir() };
  if (fs.existsSync(spec) && fs.statSync(spec).isDirectory()) return { kind: 'folder', dir: spec };
  const at = spec.lastIndexOf('@');
  const name = at > 0 ? spec.slice(0, at) : spec;
  const specRevision = at > 0 ? spec.slice(at + 1) : undefined;
  if (specRevision !== undefined && revision !== undefined && specRevision !== revision) {
    throw new UsageError(`--model ${spec} names revision '${specRevision}' but --revision is '${revision}'`);
  }
  const rev = specRevision ?? revision;
  const a = findAlias(name);
  if (a) {
    if (a.repoId === null) {
      if (rev !== undefined) throw new UsageError(`'${a.alias}' is built in: it has no revisions`);
      return { kind: 'builtin', dir: defaultModelDir(), alias: a.alias };
    }
    return { kind: 'hub', dir: null, repoId: a.repoId, revision: rev, alias: a.alias };
  }
  if (isRepoId(name)) return { kind: 'hub', dir: null, repoId: name, revision: rev };
  // Looks like a path (./x, /x, a/b/c): say the folder is missing rather than guess an alias.
  if (/^[./~]/.test(spec) || spec.split('/').length > 2 || spec.includes('\\')) {
    throw new UsageError(`model folder '${spec}' does not exist`);
  }
  throw new UnknownModelError(spec, closeAliases(name));
}

/**
 * A model folder for `spec`: the folder itself, the built-in model (undefined or 'stories260K'), or the
 * cache snapshot of an alias or Hub id, downloaded first if it is not cached (never when offline).
 */
export async function resolveModel(spec: string | undefined, opts: HubOptions = {}): Promise<string> {
  const m = parseModelSpec(spec, opts.revision);
  if (m.dir !== null) return m.dir;
  if (m.alias) refuseIfTooBig(m.alias);
  const hubOpts = { ...opts, revision: m.revision ?? 'main' };
  await refuseIfShardsTooBig(m.repoId!, hubOpts);
  const snap = await downloadModel(m.repoId!, hubOpts);
  return snap.path;
}

/**
 * An alias's published size is known before anything is downloaded: refuse a model whose float32 weights
 * alone exceed the memory limit rather than fetch gigabytes it cannot load (`sonde download` still can).
 */
function refuseIfTooBig(alias: string): void {
  const a = findAlias(alias)!;
  refuseOver(float32Bytes(a), `${a.alias} (${a.repoId}) has ${(a.params / 1e9).toFixed(2)}B parameters`);
}

/**
 * A sharded checkpoint's index gives its total size (and config.json its dtype) before the shards are
 * fetched, so any Hub id, not only an alias, is refused before gigabytes are downloaded.
 */
async function refuseIfShardsTooBig(repoId: string, opts: HubOptions): Promise<void> {
  if (cachedModel(repoId, opts)) return; // nothing to download
  let index: { metadata?: { total_size?: unknown } };
  let config: Record<string, unknown>;
  try {
    index = readJson(await downloadFile(repoId, 'model.safetensors.index.json', opts));
    config = readJson(await downloadFile(repoId, 'config.json', opts));
  } catch {
    // Not sharded, offline, unreachable, gated...: downloadModel says what is wrong, and the load checks.
    return;
  }
  const total = index.metadata?.total_size;
  const text = (config.text_config ?? {}) as Record<string, unknown>;
  const dtype = config.torch_dtype ?? config.dtype ?? text.torch_dtype ?? text.dtype;
  const width = { bfloat16: 2, float16: 2, float32: 4 }[String(dtype)];
  if (typeof total !== 'number' || width === undefined) return;
  refuseOver((total / width) * 4, `${repoId} has ${formatBytes(total)} of ${String(dtype)} weights`);
}

function refuseOver(need: number, what: string): void {
  const limit = resolveMemoryLimit();
  if (need <= limit.bytes) return;
  const by = limit.source === 'SONDE_MAX_MEMORY' ? 'the limit SONDE_MAX_MEMORY sets' : 'the memory available';
  throw new MemoryError(
    `${what}: Sonde holds them as float32, ${formatBytes(need)}, more than ${by} ` +
      `(${formatBytes(limit.bytes)}). No weights were downloaded. Use a smaller model, or raise ` +
      'SONDE_MAX_MEMORY if you know it will fit (sonde download fetches it regardless)',
  );
}

function readJson<T>(file: string): T {
  return JSON.parse(fs.readFileSync(file, 'utf8')) as T;
}
