// The server: the built web app plus a JSON API over the same library functions the CLI calls.
import '../engine/node.js';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { errorAnswer } from './errors.js';
import { JOB_KINDS } from './jobs/kinds.js';
import { JobManager, modelOf } from './jobs/manager.js';
import type { Registry } from './registry.js';
import { registerAttentionRoutes } from './routes/attention.js';
import { registerDlaRoutes } from './routes/dla.js';
import { registerCircuitsRoutes } from './routes/circuits.js';
import { registerJobRoutes } from './routes/jobs.js';
import { registerLensRoutes } from './routes/lens.js';
import { registerPatchingRoutes } from './routes/patching.js';
import { registerPromptRoutes } from './routes/prompt.js';
import { registerSaeRoutes } from './routes/sae.js';
import { checkRequest, isLoopback } from './security.js';
import { LIMITS } from './validate.js';

export interface ServerOptions {
  registry: Registry;
  /** Required on every API call when set (any non-loopback address); null on a loopback server. */
  token: string | null;
  /**
   * The address it will listen on (default: loopback without a token, any with one). On a loopback
   * address only loopback Host names are answered, token or not.
   */
  host?: string;
  /** The built web app (default: dist/web of this package); null or missing: the API alone. */
  webRoot?: string | null;
  /** Long jobs that run at once (default 1: each uses ONNX Runtime's threads). */
  concurrency?: number;
  /** Finished jobs remembered for GET /api/jobs (default 50). */
  keepJobs?: number;
}

/** What every route file gets. */
export interface ServerContext {
  registry: Registry;
  jobs: JobManager;
}

/** A route as registered (the tests walk every API route). */
export interface RouteEntry {
  method: string;
  url: string;
  /** The route's own body limit when it differs from the server's (uploads). */
  bodyLimit?: number;
}

export async function buildServer(
  opts: ServerOptions,
): Promise<{ app: FastifyInstance; jobs: JobManager; routes: RouteEntry[] }> {
  const app = Fastify({
    bodyLimit: LIMITS.bodyBytes,
    logger: false,
    // Bad URLs and over-long path parameters are refused by the router itself: in the API's error shape too.
    frameworkErrors: (e, _req, reply) => {
      const { status, body } = errorAnswer(e);
      void (reply as FastifyReply).status(status).send(body);
    },
  });
  const { registry } = opts;
  const jobs = new JobManager({
    concurrency: opts.concurrency,
    keep: opts.keepJobs,
    models: () => [...registry.models.values()].map((m) => [m.id, m.dir]),
    saes: () => [...registry.saes.values()].map((s) => [s.id, s.dir]),
    adopt: (kind, result) => {
      const adopt = JOB_KINDS[kind]?.adopt;
      return adopt ? adopt(result, registry) : result;
    },
    check: (kind, params) => {
      registry.model(modelOf(params));
      JOB_KINDS[kind]?.check?.(params, registry);
    },
  });
  const ctx: ServerContext = { registry, jobs };
  const webRoot = opts.webRoot === undefined ? defaultWebRoot() : (opts.webRoot ?? undefined);
  const policy = {
    token: opts.token,
    loopback: opts.host === undefined ? opts.token === null : isLoopback(opts.host),
  };
  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat())
      if (r.url.startsWith('/api/')) routes.push({ method, url: r.url, bodyLimit: r.bodyLimit });
  });

  app.setErrorHandler((e, req, reply) => {
    const { status, body } = errorAnswer(e, req.routeOptions.bodyLimit);
    void reply.status(status).send(body);
  });
  app.setNotFoundHandler((req, reply) => {
    if (isApiRequest(req))
      return reply
        .status(404)
        .send({ error: { type: 'request', message: `no API route ${req.method} ${req.url.split('?')[0]}` } });
    // The app routes in the page; every other path gets the app.
    return webRoot
      ? reply.sendFile('index.html')
      : reply.status(404).type('text/plain; charset=utf-8').send(NO_WEB_APP);
  });
  app.addHook('onRequest', async (req) => {
    // The static page loads without the token (it reads it from its own address).
    if (isApiRequest(req)) checkRequest(req, policy);
  });
  app.addHook('onSend', async (req, reply) => {
    // Never framed by another site, never sniffed into another type; answers of the API are not cached.
    void reply.header('x-content-type-options', 'nosniff');
    void reply.header('x-frame-options', 'DENY');
    void reply.header('content-security-policy', "frame-ancestors 'none'");
    if (isApiRequest(req)) void reply.header('cache-control', 'no-store');
  });
  app.addHook('onClose', async () => jobs.close());

  if (webRoot) await app.register(fastifyStatic, { root: webRoot, wildcard: false });

  app.get('/api/info', async () => ({ ...registry.info(), auth: opts.token !== null }));
  registerPromptRoutes(app, ctx);
  registerPatchingRoutes(app, ctx);
  registerAttentionRoutes(app, ctx);
  registerLensRoutes(app, ctx);
  registerDlaRoutes(app, ctx);
  registerCircuitsRoutes(app, ctx);
  registerSaeRoutes(app, ctx);
  registerJobRoutes(app, ctx);
  return { app, jobs, routes };
}

/** What the page address answers in a source checkout where the web app was never built. */
export const NO_WEB_APP =
  "Sonde's explorer page is not built. In the Sonde folder run `npm run build:web` (or `npm run build`), then reload this page. The JSON API works without it: /api/info.";

/**
 * Whether a request is for the API, by the route it matched (the router decodes the path, so
 * /%61pi/info reaches /api/info) or, when none matched, by its decoded path.
 */
function isApiRequest(req: FastifyRequest): boolean {
  const route = req.routeOptions.url;
  if (route !== undefined && route !== '*') return route.startsWith('/api/');
  let p = req.url.split('?')[0]!;
  try {
    p = decodeURIComponent(p);
  } catch {
    // left as it is
  }
  return /^\/+api(\/|$)/i.test(p);
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
