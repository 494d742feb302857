import path from 'node:path';
import { fileURLToPath } from 'node:url';
import react from '@vitejs/plugin-react';
import { defineConfig } from 'vite';

const here = path.dirname(fileURLToPath(import.meta.url));

// The explorer's page, built into dist/web, which `sonde serve` serves next to its API.
export default defineConfig({
  root: here,
  base: './',
  plugins: [react()],
  build: { outDir: path.join(here, '..', 'dist', 'web'), emptyOutDir: true, chunkSizeWarningLimit: 1000 },
  // `vite` alone (development): the API of a `sonde serve` running on the default port.
  server: { proxy: { '/api': 'http://127.0.0.1:7860' } },
});
