// The server: the built web app plus a JSON API over the same library functions the CLI calls.
import '../engine/node.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance } from 'fastify';
import { errorAnswer } from './errors.js';
import { JobManager } from './jobs/manager.js';
import type { Registry } from './registry.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerPatchingRoutes } from './routes/patching.js';
import { registerPromptRoutes } from './routes/prompt.js';
import { registerSaeRoutes } from './routes/sae.js';
import { checkRequest } from './security.js';

export interface ServerOptions {
  registry: Registry;
  /** Required on every API call when set (any non-loopback address); null on a loopback server. */
  token: string | null;
  /** The built web app (default: dist/web of this package); the API alone when it is missing. */
  webRoot?: string;
  /** Long jobs that run at once (default 1: each uses ONNX Runtime's threads). */
  concurrency?: number;
}

/** What every route file gets. */
export interface ServerContext {
  registry: Registry;
  jobs: JobManager;
}

/** Largest request body accepted (a prompt is at most a few KB; pair lists stay well under this). */
const BODY_LIMIT = 256 * 1024;

export async function buildServer(opts: ServerOptions): Promise<{ app: FastifyInstance; jobs: JobManager }> {
  const app = Fastify({ bodyLimit: BODY_LIMIT, logger: false });
  const { registry } = opts;
  const jobs = new JobManager({
    concurrency: opts.concurrency,
    models: () => [...registry.models.values()].map((m) => [m.id, m.dir]),
    saes: () => [...registry.saes.values()].map((s) => [s.id, s.dir]),
  });
  const ctx: ServerContext = { registry, jobs };
  const webRoot = opts.webRoot ?? defaultWebRoot();

  app.setErrorHandler((e, _req, reply) => {
    const { status, body } = errorAnswer(e);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    if (req.url.startsWith('/api/'))
      return reply
        .status(404)
        .send({ error: { type: 'request', message: `no API route ${req.method} ${req.url.split('?')[0]}` } });
    // The app routes in the page; every other path gets the app.
    return webRoot
      ? reply.sendFile('index.html')
      : reply.status(404).send('no web app built (npm run build:web)');
  });
  app.addHook('onRequest', async (req) => {
    if (req.url.startsWith('/api/')) checkRequest(req, { token: opts.token });
  });
  app.addHook('onClose', async () => jobs.close());

  if (webRoot) await app.register(fastifyStatic, { root: webRoot, wildcard: false });

  app.get('/api/info', async () => ({ ...registry.info(), auth: opts.token !== null }));
  registerPromptRoutes(app, ctx);
  registerPatchingRoutes(app, ctx);
  registerSaeRoutes(app, ctx);
  registerJobRoutes(app, ctx);
  return { app, jobs };
}

/** dist/web of this package, found from this file in src/server or dist/src/server. */
export function defaultWebRoot(): string | undefined {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!fs.existsSync(path.join(dir, 'package.json'))) {
    const up = path.dirname(dir);
    if (up === dir) return undefined;
    dir = up;
  }
  const web = path.join(dir, 'dist', 'web');
  return fs.existsSync(path.join(web, 'index.html')) ? web : undefined;
}
