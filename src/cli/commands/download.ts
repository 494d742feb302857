// sonde download: a Hub model's config, safetensors and tokenizer files into the Hugging Face cache
// (shared with Python's huggingface_hub); prints the snapshot folder.
import type { Command } from 'commander';
import { downloadModel, findAlias, UsageError, formatBytes } from '../../index.js';
import { downloadProgress, globalsOf, note, out, printJson } from '../common.js';

export function registerDownload(program: Command): void {
  program
    .command('download')
    .description("download a Hub model's config, safetensors and tokenizer files into the Hugging Face cache")
    .argument('<repo>', 'Hub id (org/name, optionally org/name@revision) or an alias from `sonde models`')
    .addHelpText(
      'after',
      `
The cache is Python huggingface_hub's ($HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub):
files either side downloaded are reused by the other. Only config.json, generation_config.json,
*.safetensors (the index's shards when sharded) and tokenizer files are fetched. Gated models need their
terms accepted on the Hub and HF_TOKEN set. Prints the snapshot folder, usable as --model.

With --json: { repo_id, revision, commit, path, files: [{ name, size }] }.

Examples:
  sonde download gpt2
  sonde download EleutherAI/pythia-70m --revision step3000
  sonde --model pythia-70m info`,
    )
    .action(async (repo: string, _opts: unknown, cmd: Command) => {
      const g = globalsOf(cmd);
      const at = repo.lastIndexOf('@');
      const name = at > 0 ? repo.slice(0, at) : repo;
      let revision = g.revision ?? 'main';
      if (at > 0) {
        const r = repo.slice(at + 1);
        if (g.revision !== undefined && g.revision !== r) {
          throw new UsageError(`${repo} names revision '${r}' but --revision is '${g.revision}'`);
        }
        revision = r;
      }
      const alias = findAlias(name);
      if (alias && alias.repoId === null) {
        throw new UsageError(`'${alias.alias}' is built into Sonde: there is nothing to download`);
      }
      const repoId = alias?.repoId ?? name;
      const progress = downloadProgress(g);
      let snap;
      try {
        snap = await downloadModel(repoId, { revision, onProgress: progress.onProgress });
      } finally {
        progress.stop();
      }
      const files = snap.files.map((f) => ({ name: f.filename, size: f.size }));
      if (g.json) {
        return printJson({ repo_id: repoId, revision, commit: snap.commit, path: snap.path, files });
      }
      const total = files.reduce((n, f) => n + f.size, 0);
      const fetched = snap.files.filter((f) => f.downloaded).length;
      note(
        g,
        `${repoId}@${revision} (commit ${snap.commit.slice(0, 12)}): ${files.length} files, ` +
          `${formatBytes(total)}, ${fetched} downloaded, ${files.length - fetched} from the cache`,
      );
      out(snap.path);
    });
}
