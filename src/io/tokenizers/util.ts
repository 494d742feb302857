import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenizerError } from '../../errors.js';

const strictDecoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * The display string of an id the tokenizer lacks. Real checkpoints pad the embedding past the tokenizer
 * (Pythia 50304 over 50277 tokens, Qwen 151936 over 151665), so a top-k prediction can land there.
 */
export function unknownTokenString(id: number): string {
  return `<id ${id}>`;
}

export function byteHex(b: number): string {
  return `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`;
}

/** UTF-8 bytes as display text; bytes that do not form a whole valid character become `<0xXX>`. */
export function bytesToDisplay(bytes: Uint8Array): string {
  try {
    return strictDecoder.decode(bytes);
  } catch {
    // fall through to the byte-by-byte path
  }
  let out = '';
  let i = 0;
  while (i < bytes.length) {
    const b = bytes[i];
    const len =
      b < 0x80 ? 1 : (b & 0xe0) === 0xc0 ? 2 : (b & 0xf0) === 0xe0 ? 3 : (b & 0xf8) === 0xf0 ? 4 : 0;
    if (len > 0 && i + len <= bytes.length) {
      try {
        out += strictDecoder.decode(bytes.subarray(i, i + len));
        i += len;
        continue;
      } catch {
        // invalid sequence: show the lead byte and resync
      }
    }
    out += byteHex(b);
    i++;
  }
  return out;
}

/** Reads and parses a JSON file, or returns undefined when it does not exist. */
export function readJsonIfExists(dir: string, name: string): unknown {
  const path = join(dir, name);
  if (!existsSync(path)) return undefined;
  return readJson(path);
}

export function readJson(path: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new TokenizerError(`Cannot read ${path}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch (e) {
    throw new TokenizerError(`Malformed JSON in ${path}: ${(e as Error).message}`);
  }
}

export function isRecord(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}

/** A token id from a config value: a number, or the first of an array of numbers (Llama 3.1 eos). */
export function idFromConfig(x: unknown): number | null {
  if (typeof x === 'number' && Number.isInteger(x) && x >= 0) return x;
  if (Array.isArray(x) && x.length > 0) return idFromConfig(x[0]);
  return null;
}

/** A token string from tokenizer_config.json: a plain string or an AddedToken object `{ content }`. */
export function tokenContent(x: unknown): string | null {
  if (typeof x === 'string') return x;
  if (isRecord(x) && typeof x.content === 'string') return x.content;
  return null;
}
