// A set of per-layer transcoders on disk: a folder of SAELens folders, one per layer (any names; each
// folder's cfg.json says which MLP it replaces). The built-in stories260K has one committed beside it.
import fs from 'node:fs';
import path from 'node:path';
import { SaeError } from '../errors.js';
import type { ModelConfig } from '../models/config.js';
import { defaultModelDir } from '../models/load.js';
import { loadSaeLens } from '../sae/saelens.js';
import type { SparseAutoencoder } from '../sae/sae.js';
import { checkTranscoders, mlpOutHook } from './replacement-model.js';

/** assets/stories260K-transcoders: the built-in model's transcoders (scripts/train-transcoders.ts). */
export function defaultTranscodersDir(): string {
  return path.join(path.dirname(defaultModelDir()), 'stories260K-transcoders');
}

/** Loads `dir`'s transcoders, ordered by the layer whose MLP each replaces, checked against the model. */
export function loadTranscoders(dir: string, cfg: ModelConfig): SparseAutoencoder[] {
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory())
    throw new SaeError(`transcoder folder '${dir}' does not exist (expected one SAELens folder per layer)`);
  const byLayer = new Map<number, SparseAutoencoder>();
  const subdirs = fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((e) => e.isDirectory() && fs.existsSync(path.join(dir, e.name, 'cfg.json')))
    .map((e) => e.name)
    .sort();
  for (const name of subdirs) {
    const tc = loadSaeLens(path.join(dir, name));
    const layer = Array.from({ length: cfg.nLayers }, (_, l) => l).find(
      (l) => tc.cfg.hookNameOut === mlpOutHook(l),
    );
    if (layer === undefined)
      throw new SaeError(
        `'${path.join(dir, name)}' is not a transcoder of an MLP of this model (it writes '${tc.cfg.hookNameOut ?? tc.cfg.hookName}')`,
      );
    if (byLayer.has(layer)) throw new SaeError(`'${dir}' has two transcoders for layer ${layer}`);
    byLayer.set(layer, tc);
  }
  const missing = Array.from({ length: cfg.nLayers }, (_, l) => l).filter((l) => !byLayer.has(l));
  if (missing.length)
    throw new SaeError(
      `'${dir}' has no transcoder for layer${missing.length > 1 ? 's' : ''} ${missing.join(', ')} (one per layer is needed)`,
    );
  const tcs = Array.from({ length: cfg.nLayers }, (_, l) => byLayer.get(l)!);
  checkTranscoders(cfg, tcs);
  return tcs;
}
