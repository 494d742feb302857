// Where the cache is, which Hub to talk to, the token and offline mode: read from the same environment
// variables and files as Python's huggingface_hub, at each call (so tests and long-lived processes see
// changes).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const DEFAULT_ENDPOINT = 'https://huggingface.co';

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}

/** huggingface_hub's truthy values: 1, ON, YES, TRUE (any case). */
function isTrue(v: string | undefined): boolean {
  return v !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(v.trim().toUpperCase());
}

/** $HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface. */
export function hfHome(): string {
  const home = env('HF_HOME');
  if (home) return expandHome(home);
  return path.join(expandHome(env('XDG_CACHE_HOME') ?? '~/.cache'), 'huggingface');
}

/** The hub cache: $HF_HUB_CACHE (or the older $HUGGINGFACE_HUB_CACHE), else $HF_HOME/hub. */
export function hubCacheDir(): string {
  const dir = env('HF_HUB_CACHE') ?? env('HUGGINGFACE_HUB_CACHE');
  return dir ? expandHome(dir) : path.join(hfHome(), 'hub');
}

/** $HF_ENDPOINT without a trailing slash, else https://huggingface.co. */
export function hubEndpoint(): string {
  return (env('HF_ENDPOINT') ?? DEFAULT_ENDPOINT).replace(/\/+$/, '');
}

/** $HF_TOKEN (or the older $HUGGING_FACE_HUB_TOKEN), else the token file ($HF_TOKEN_PATH or $HF_HOME/token). */
export function hubToken(): string | undefined {
  const fromEnv = (env('HF_TOKEN') ?? env('HUGGING_FACE_HUB_TOKEN'))?.trim();
  if (fromEnv) return fromEnv;
  const file = env('HF_TOKEN_PATH') ?? path.join(hfHome(), 'token');
  try {
    return fs.readFileSync(expandHome(file), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) set to a truthy value. */
export function hubOffline(): boolean {
  return isTrue(env('HF_HUB_OFFLINE') ?? env('TRANSFORMERS_OFFLINE'));
}
