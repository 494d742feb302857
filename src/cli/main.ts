#!/usr/bin/env node
// The `sonde` binary: re-runs itself once with tensor-friendly malloc settings (see
// engine/backend/malloc.ts), then loads the CLI.
import { rerunWithTunedMalloc } from '../engine/backend/malloc.js';

const code = rerunWithTunedMalloc();
if (code !== null) process.exit(code);
await import('./index.js');
