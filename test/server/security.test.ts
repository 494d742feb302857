// Who may call the API: a loopback server answers its own pages only (Origin, Host, Sec-Fetch-Site, JSON
// bodies, no CORS); a token server (any other address) answers only requests that carry its token.
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildServer } from '../../src/server/app.js';
import { Registry } from '../../src/server/registry.js';
import { hostName, isLoopback } from '../../src/server/security.js';

let registry: Registry;
let local: FastifyInstance;
let tokened: FastifyInstance;
let tokenedLoopback: FastifyInstance;
const TOKEN = 'sekret-token-123';
const HOST = '127.0.0.1:7860';
const JSON_POST = { 'content-type': 'application/json' };

beforeAll(async () => {
  registry = await Registry.open([], []);
  // A page is served (a stand-in for dist/web) so that the static route is covered too.
  local = (await buildServer({ registry, token: null, webRoot: null })).app;
  tokened = (await buildServer({ registry, token: TOKEN, host: '0.0.0.0', webRoot: null })).app;
  tokenedLoopback = (await buildServer({ registry, token: TOKEN, host: '127.0.0.1', webRoot: null })).app;
});
afterAll(async () => {
  await Promise.all([local, tokened, tokenedLoopback].map((a) => a?.close()));
});

function refusal(r: { statusCode: number; json(): unknown }, status: number, message: RegExp): void {
  expect(r.statusCode).toBe(status);
  const body = r.json() as { error: { type: string; message: string } };
  expect(body.error.type).toBe('request');
  expect(body.error.message).toMatch(message);
}

describe('a loopback server', () => {
  it('answers its own page: same Origin (IPv4, localhost, IPv6 literal, any port), or none', async () => {
    for (const [host, origin] of [
      [HOST, undefined],
      [HOST, `http://${HOST}`],
      ['localhost:7860', 'http://localhost:7860'],
      ['LOCALHOST:7860', 'http://localhost:7860'],
      ['[::1]:7860', 'http://[::1]:7860'],
      ['127.0.0.1', 'http://127.0.0.1'],
      ['127.0.0.1:80', 'http://127.0.0.1'],
    ] as const) {
      const r = await local.inject({ url: '/api/info', headers: { host, ...(origin ? { origin } : {}) } });
      expect(r.statusCode, `${host} ${origin}`).toBe(200);
    }
  });

  it('refuses another site’s Origin with 403 (another host, another port, another scheme, null)', async () => {
    for (const origin of [
      'http://evil.example',
      'http://127.0.0.1:8080',
      'http://localhost:7860',
      'ftp://127.0.0.1:7860',
      'null',
      'junk',
    ]) {
      const get = await local.inject({ url: '/api/info', headers: { host: HOST, origin } });
      refusal(get, 403, /not allowed/);
      const post = await local.inject({
        method: 'POST',
        url: '/api/prompt',
        headers: { host: HOST, origin, ...JSON_POST },
        payload: { prompt: 'Once' },
      });
      refusal(post, 403, /not allowed/);
    }
  });

  it('refuses a request a browser marks cross-site even without an Origin', async () => {
    const r = await local.inject({
      url: '/api/info',
      headers: { host: HOST, 'sec-fetch-site': 'cross-site' },
    });
    refusal(r, 403, /other sites/);
    const same = await local.inject({
      url: '/api/info',
      headers: { host: HOST, 'sec-fetch-site': 'same-origin' },
    });
    expect(same.statusCode).toBe(200);
  });

  it('refuses a Host that is not loopback (DNS rebinding) with 403, and junk Host headers with 400', async () => {
    for (const host of [
      'evil.example',
      'evil.example:7860',
      '127.0.0.2:7860',
      '10.0.0.1',
      'localhost.evil.example',
    ])
      refusal(await local.inject({ url: '/api/info', headers: { host } }), 403, /not this server's/);
    for (const host of ['evil.example@127.0.0.1', '127.0.0.1/x', '127.0.0.1:7860 evil'])
      refusal(await local.inject({ url: '/api/info', headers: { host } }), 400, /not a host name/);
  });

  it('checks the API however its path is spelled (the router decodes %61pi; dot segments)', async () => {
    for (const url of ['/%61pi/info', '/api/./info', '/x/../api/info', '//api/info', '/API/info']) {
      const r = await local.inject({ url, headers: { host: 'evil.example' } });
      expect(r.statusCode, url).toBe(403);
    }
    // Decoded once, as the router does: /%2561pi is the page's path '/%61pi', not the API.
    const page = await local.inject({ url: '/%2561pi/info', headers: { host: 'evil.example' } });
    expect(page.headers['content-type']).toMatch(/^text\/plain/);
  });

  it('refuses a body that is not application/json with 415 (a cross-site form cannot send JSON)', async () => {
    for (const type of [
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/jsonp',
    ]) {
      const r = await local.inject({
        method: 'POST',
        url: '/api/prompt',
        headers: { host: HOST, 'content-type': type },
        payload: '{"prompt":"Once"}',
      });
      refusal(r, 415, /application\/json/);
    }
    const none = await local.inject({
      method: 'POST',
      url: '/api/prompt',
      headers: { host: HOST },
      payload: 'x',
    });
    refusal(none, 415, /application\/json/);
    const charset = await local.inject({
      method: 'POST',
      url: '/api/prompt',
      headers: { host: HOST, 'content-type': 'Application/JSON; charset=utf-8' },
      payload: '{"prompt":"Once"}',
    });
    expect(charset.statusCode).toBe(200);
  });

  it('grants no CORS: no Access-Control-Allow-* on any answer, preflights refused', async () => {
    const answers = [
      await local.inject({ url: '/api/info', headers: { host: HOST } }),
      await local.inject({ url: '/api/info', headers: { host: HOST, origin: 'http://evil.example' } }),
      await local.inject({ url: '/api/nothing', headers: { host: HOST } }),
      await local.inject({ url: '/', headers: { host: HOST } }),
      await local.inject({
        method: 'POST',
        url: '/api/prompt',
        headers: { host: HOST, ...JSON_POST },
        payload: { prompt: 'Once' },
      }),
    ];
    for (const method of ['/api/prompt', '/api/info', '/api/jobs'])
      for (const origin of ['http://evil.example', `http://${HOST}`]) {
        const pre = await local.inject({
          method: 'OPTIONS',
          url: method,
          headers: {
            host: HOST,
            origin,
            'access-control-request-method': 'POST',
            'access-control-request-headers': 'content-type',
          },
        });
        expect(pre.statusCode).toBeGreaterThanOrEqual(400);
        answers.push(pre);
      }
    for (const r of answers) {
      const cors = Object.keys(r.headers).filter((h) => h.startsWith('access-control-'));
      expect(cors).toEqual([]);
      // Never framed by another site; API answers are not cached.
      expect(r.headers['x-frame-options']).toBe('DENY');
      expect(r.headers['x-content-type-options']).toBe('nosniff');
    }
    expect(answers[0]!.headers['cache-control']).toBe('no-store');
  });
});

describe('a token server (--host 0.0.0.0)', () => {
  const host = '192.168.1.20:7860';

  it('refuses calls without the token or with a wrong one (401), naming what to do', async () => {
    refusal(await tokened.inject({ url: '/api/info', headers: { host } }), 401, /needs its token.*\?token=/);
    for (const headers of [
      { authorization: 'Bearer wrong' },
      { authorization: `Bearer ${TOKEN}x` },
      { authorization: `Bearer ${TOKEN.slice(0, -1)}` },
    ])
      refusal(await tokened.inject({ url: '/api/info', headers: { host, ...headers } }), 401, /wrong token/);
    refusal(await tokened.inject({ url: '/api/info?token=nope', headers: { host } }), 401, /wrong token/);
    // The token on another scheme is not a token.
    refusal(
      await tokened.inject({ url: '/api/info', headers: { host, authorization: `Basic ${TOKEN}` } }),
      401,
      /needs its token/,
    );
    // Encoded paths are checked too.
    refusal(await tokened.inject({ url: '/%61pi/info', headers: { host } }), 401, /needs its token/);
    refusal(
      await tokened.inject({
        method: 'POST',
        url: '/api/jobs',
        headers: { host, ...JSON_POST },
        payload: { kind: 'patching' },
      }),
      401,
      /token/,
    );
  });

  it('accepts the token as Authorization: Bearer and as ?token= (what EventSource can send)', async () => {
    const bearer = await tokened.inject({
      url: '/api/info',
      headers: { host, authorization: `Bearer ${TOKEN}` },
    });
    expect(bearer.statusCode).toBe(200);
    expect((bearer.json() as { auth: boolean }).auth).toBe(true);
    const lower = await tokened.inject({
      url: '/api/info',
      headers: { host, authorization: `bearer ${TOKEN}` },
    });
    expect(lower.statusCode).toBe(200);
    const query = await tokened.inject({ url: `/api/info?token=${TOKEN}`, headers: { host } });
    expect(query.statusCode).toBe(200);
    const prompt = await tokened.inject({
      method: 'POST',
      url: `/api/prompt?token=${TOKEN}`,
      headers: { host, ...JSON_POST },
      payload: { prompt: 'Once' },
    });
    expect(prompt.statusCode).toBe(200);
    // The job events stream takes it from the query: an unknown job is a 404, not a 401.
    const events = await tokened.inject({ url: `/api/jobs/nope/events?token=${TOKEN}`, headers: { host } });
    expect(events.statusCode).toBe(404);
  });

  it('still refuses other sites’ Origin with the token', async () => {
    const r = await tokened.inject({
      url: '/api/info',
      headers: { host, origin: 'http://evil.example', authorization: `Bearer ${TOKEN}` },
    });
    refusal(r, 403, /not allowed/);
  });

  it('serves the page without the token (the page reads it from its own address)', async () => {
    const r = await tokened.inject({ url: '/?token=', headers: { host } });
    expect(r.statusCode).not.toBe(401);
    expect(r.statusCode).not.toBe(403);
  });

  it('checks Host as well when it listens on loopback', async () => {
    const r = await tokenedLoopback.inject({
      url: '/api/info',
      headers: { host: 'evil.example', authorization: `Bearer ${TOKEN}` },
    });
    refusal(r, 403, /not this server's/);
    const ok = await tokenedLoopback.inject({
      url: '/api/info',
      headers: { host: HOST, authorization: `Bearer ${TOKEN}` },
    });
    expect(ok.statusCode).toBe(200);
  });
});

describe('addresses', () => {
  it('knows loopback names and IPv6 literals', () => {
    for (const h of ['127.0.0.1', 'localhost', 'LocalHost', '::1', '[::1]'])
      expect(isLoopback(h), h).toBe(true);
    for (const h of ['0.0.0.0', '::', '192.168.1.2', 'example.com', '127.0.0.1.nip.io'])
      expect(isLoopback(h), h).toBe(false);
    expect(hostName('[::1]:7860')).toBe('::1');
    expect(hostName('LOCALHOST:80')).toBe('localhost');
    expect(hostName('a@b')).toBeNull();
    expect(hostName('::1')).toBeNull();
  });
});
