// Long jobs: start, read, cancel, and follow as server-sent events.
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ServerContext } from '../app.js';
import { parse } from '../validate.js';

const StartJob = z.object({ kind: z.string().max(100), params: z.unknown().optional() });
const JobId = z.object({ id: z.string().max(100) });

export function registerJobRoutes(app: FastifyInstance, { jobs }: ServerContext): void {
  app.post('/api/jobs', async (req, reply) => {
    const { kind, params } = parse(StartJob, req.body);
    return reply.status(202).send(jobs.start(kind, params));
  });
  app.get('/api/jobs', async () => jobs.list());
  app.get('/api/jobs/:id', async (req) => jobs.get(parse(JobId, req.params).id));
  app.delete('/api/jobs/:id', async (req) => jobs.cancel(parse(JobId, req.params).id));
  app.get('/api/jobs/:id/events', (req, reply) => {
    const { id } = parse(JobId, req.params);
    jobs.get(id); // a 404 before the stream starts
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, {
      'content-type': 'text/event-stream',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
    const unsubscribe = jobs.subscribe(id, (e) => {
      res.write(`event: ${e.type}\ndata: ${JSON.stringify(e.state)}\n\n`);
      if (['done', 'failed', 'cancelled'].includes(e.state.status)) res.end();
    });
    req.raw.on('close', unsubscribe);
  });
}
