// One error class per way a Hub download can fail. Messages name the repo, revision and file and say
// what to do, because the CLI prints nothing but the message.
import { SondeError } from '../../errors.js';

/** Base class of every Hugging Face Hub error. */
export class HubError extends SondeError {}

const TOKEN_HINT =
  'set HF_TOKEN to a read token from https://huggingface.co/settings/tokens (or save one in $HF_HOME/token)';

/** The repository does not exist, or is private and the token (if any) cannot read it. */
export class RepoNotFoundError extends HubError {
  constructor(
    readonly repoId: string,
    endpoint: string,
    hasToken: boolean,
  ) {
    super(
      `repository '${repoId}' was not found on ${endpoint}: check the id (org/name)` +
        (hasToken ? ' and that your HF_TOKEN can read it' : `; if it is private, ${TOKEN_HINT}`),
    );
  }
}

/** The repository exists but the branch, tag or commit does not. */
export class RevisionNotFoundError extends HubError {
  constructor(
    readonly repoId: string,
    readonly revision: string,
  ) {
    super(
      `revision '${revision}' was not found in '${repoId}': give a branch, tag or full commit sha ` +
        `(see https://huggingface.co/${repoId}/commits/main)`,
    );
  }
}

/** The repository and revision exist but the file does not. */
export class EntryNotFoundError extends HubError {
  constructor(
    readonly repoId: string,
    readonly revision: string,
    readonly filename: string,
  ) {
    super(
      `file '${filename}' is not in '${repoId}' at revision '${revision}' ` +
        `(list the files at https://huggingface.co/${repoId}/tree/${revision})`,
    );
  }
}

/** A gated or private repository that needs a token, or terms accepted on the Hub. */
export class GatedRepoError extends HubError {
  constructor(
    readonly repoId: string,
    readonly status: number,
    hasToken: boolean,
    hubMessage?: string,
  ) {
    const why = hubMessage ? ` (the Hub says: ${hubMessage})` : '';
    super(
      hasToken
        ? `access to '${repoId}' was refused (HTTP ${status}) with your HF_TOKEN${why}: accept the model's ` +
            `terms at https://huggingface.co/${repoId} with the account the token belongs to, and wait for ` +
            `approval if the model asks for it`
        : `'${repoId}' is gated or private (HTTP ${status})${why}: accept the model's terms at ` +
            `https://huggingface.co/${repoId}, then ${TOKEN_HINT}`,
    );
  }
}

/** The Hub rejected the token itself. */
export class HubAuthError extends HubError {
  constructor(repoId: string) {
    super(
      `the Hub rejected your token (HF_TOKEN or $HF_HOME/token) while fetching '${repoId}': replace it ` +
        `with a valid read token from https://huggingface.co/settings/tokens`,
    );
  }
}

/** HF_HUB_OFFLINE=1 (or offline: true) and what was asked for is not in the local cache. */
export class HubOfflineError extends HubError {
  constructor(
    readonly repoId: string,
    readonly revision: string,
    readonly filename: string | null,
    cacheDir: string,
  ) {
    const what = filename ? `file '${filename}' of '${repoId}'` : `a snapshot of '${repoId}'`;
    super(
      `${what} at revision '${revision}' is not in the cache ${cacheDir} and HF_HUB_OFFLINE=1 is set: ` +
        `download it once with network access (sonde download ${repoId}${revision === 'main' ? '' : ` --revision ${revision}`}), ` +
        `or unset HF_HUB_OFFLINE`,
    );
  }
}

/** The Hub could not be reached (DNS, refused connection, reset, timeout). */
export class HubNetworkError extends HubError {
  constructor(url: string, what: string, cause: string) {
    super(
      `cannot reach ${new URL(url).origin} (${cause}) while fetching ${what}: check your connection or ` +
        `HF_ENDPOINT, or set HF_HUB_OFFLINE=1 to use only files already in the cache`,
    );
  }
}

/** Any other HTTP failure (5xx, 429, unexpected status). */
export class HubHttpError extends HubError {
  constructor(
    readonly status: number,
    url: string,
    what: string,
    hubMessage?: string,
  ) {
    super(
      `the Hub answered HTTP ${status} for ${what} (${url})${hubMessage ? `: ${hubMessage}` : ''}; ` +
        (status >= 500 || status === 429 ? 'try again later' : 'check the repo id, revision and file name'),
    );
  }
}

/** A response without the headers every Hub resolve answer carries: probably not a Hub endpoint. */
export class HubProtocolError extends HubError {
  constructor(url: string, missing: string) {
    super(
      `${url} answered without ${missing}: is HF_ENDPOINT (${new URL(url).origin}) a Hugging Face Hub? ` +
        `A proxy or firewall may be rewriting the response`,
    );
  }
}

/** Downloaded bytes whose size or checksum do not match what the Hub announced; they were discarded. */
export class HubIntegrityError extends HubError {
  constructor(repoId: string, revision: string, filename: string, detail: string) {
    super(
      `download of '${filename}' from '${repoId}' (revision ${revision}) is corrupt: ${detail}; the partial ` +
        `file was deleted and nothing was added to the cache. Run the command again`,
    );
  }
}

/** The repo has weights, but none in safetensors format. */
export class NoSafetensorsError extends HubError {
  constructor(repoId: string, revision: string, weightFiles: string[]) {
    const has = weightFiles.length
      ? `it has ${weightFiles.slice(0, 4).join(', ')}`
      : 'it has no weight files';
    super(
      `'${repoId}' at revision '${revision}' has no .safetensors weights (${has}); Sonde reads safetensors only. ` +
        `Look for a conversion: the Hub's bot often opens one as a pull request (try --revision refs/pr/1), ` +
        `or convert the checkpoint with transformers and save_pretrained(safe_serialization=True)`,
    );
  }
}

/** A --model value that is not a folder, an alias or a Hub id. */
export class UnknownModelError extends HubError {
  constructor(spec: string, close: string[]) {
    super(
      `'${spec}' is not a model folder, a Sonde alias or a Hub id (org/name)` +
        (close.length ? `; did you mean ${close.map((c) => `'${c}'`).join(', ')}?` : '') +
        ` (list the aliases with 'sonde models')`,
    );
  }
}
