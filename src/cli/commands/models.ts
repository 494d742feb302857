// sonde models: the model aliases, their Hub ids, sizes, and whether each is already in the local cache.
import type { Command } from 'commander';
import {
  ARCHITECTURES,
  cachedModel,
  defaultModelDir,
  float32Bytes,
  hubCacheDir,
  MODEL_ALIASES,
  formatBytes,
} from '../../index.js';
import { fmtCount, globalsOf, note, out, printJson, table } from '../common.js';

export function registerModels(program: Command): void {
  program
    .command('models')
    .description('list the model aliases (usable as --model or with sonde download) and which are cached')
    .addHelpText(
      'after',
      `
"float32" is the memory the weights take as Sonde holds them (4 bytes a parameter). "gated" models need
their terms accepted on the Hub and HF_TOKEN set. "supported" says whether this version of Sonde can run
the architecture. "cached" means a complete snapshot of the main revision is in the Hugging Face cache.

With --json: an array of { alias, repo_id, architecture, params, float32_bytes, gated, supported, cached,
path } (repo_id null for the built-in model; path null when not cached).

Examples:
  sonde models
  sonde --model pythia-70m info`,
    )
    .action((_opts: unknown, cmd: Command) => {
      const g = globalsOf(cmd);
      const rows = MODEL_ALIASES.map((a) => {
        const hit = a.repoId === null ? { path: defaultModelDir() } : cachedModel(a.repoId);
        return {
          alias: a.alias,
          repo_id: a.repoId,
          architecture: a.architecture,
          params: a.params,
          float32_bytes: float32Bytes(a),
          gated: a.gated,
          supported: a.architecture in ARCHITECTURES,
          cached: hit !== null,
          path: hit?.path ?? null,
        };
      });
      if (g.json) return printJson(rows);
      const lines = table(
        [
          ['alias', 'hub id', 'architecture', 'params', 'float32', 'gated', 'supported', 'cached'],
          ...rows.map((r) => [
            r.alias,
            r.repo_id ?? '(built in)',
            r.architecture,
            fmtCount(r.params),
            formatBytes(r.float32_bytes),
            r.gated ? 'gated' : '',
            r.supported ? 'yes' : 'no',
            r.cached ? 'yes' : '',
          ]),
        ],
        [false, false, false, true, true, false, false, false],
      );
      for (const line of lines) out(line);
      note(g, `cache: ${hubCacheDir()}`);
    });
}
