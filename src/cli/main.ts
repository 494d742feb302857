#!/usr/bin/env node
// The `sonde` binary: re-runs itself once with tensor-friendly malloc settings (see
// engine/backend/malloc.ts), removing whatever the re-run left in flight if a signal ended it, then
// loads the CLI.
import { rerunWithTunedMalloc } from '../engine/backend/malloc.js';
import { removeLeftoversOf } from '../io/leftovers.js';
import { isLightCommandLine } from './command-line.js';

// Help, version and info compute nothing: they run in place, without the re-run (about 0.1 s).
const code = isLightCommandLine(process.argv.slice(2)) ? null : await rerunWithTunedMalloc(removeLeftoversOf);
if (code !== null) process.exit(code);
await import('./index.js');
