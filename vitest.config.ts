import { defineConfig } from 'vitest/config';
import { SONDE_GLIBC_TUNABLES } from './src/engine/backend/malloc.js';

// Test workers are forked after this runs, so they start with Sonde's malloc settings.
process.env.GLIBC_TUNABLES ??= SONDE_GLIBC_TUNABLES;

/**
 * Run a second time on the backend that only has onnxruntime-node's public, asynchronous API (as in a
 * browser or on a GPU provider): proof that the library never depends on a synchronous read.
 */
export const ASYNC_BACKEND_TESTS = [
  'test/models/reference.test.ts',
  'test/methods/matrix.test.ts',
  'test/sae/splice.test.ts',
  'test/models/attention-pattern.test.ts',
  'test/circuits/reference.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 120_000,
    hookTimeout: 120_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'cpu', include: ['test/**/*.test.ts'], exclude: ['test/web/**'] } },
      // The explorer in a real Chromium (installed and the page built by the global setup).
      {
        extends: true,
        test: {
          name: 'browser',
          include: ['test/web/**/*.test.ts'],
          globalSetup: ['test/web/global-setup.ts'],
        },
      },
      {
        extends: true,
        test: { name: 'async-backend', include: ASYNC_BACKEND_TESTS, env: { SONDE_BACKEND: 'async' } },
      },
    ],
  },
});
