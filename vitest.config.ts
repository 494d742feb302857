import { defineConfig } from 'vitest/config';
import { SONDE_GLIBC_TUNABLES } from './src/engine/backend/malloc.js';

// Test workers are forked after this runs, so they start with Sonde's malloc settings.
process.env.GLIBC_TUNABLES ??= SONDE_GLIBC_TUNABLES;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
  },
});
