import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { appParts } from '../../server/routes/index.js';
import { createServices } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { eventBody, seedPortal } from '../helpers/event-builder.js';
import { hostileBodies } from '../helpers/hostile-input.js';

describe('event intake against generated hostile input', () => {
  let t: TestDeps;
  let server: http.Server;
  let port: number;
  beforeAll(async () => {
    t = await createTestDeps();
    const listener = buildListener(t.deps, appParts(t.deps, createServices(t.deps)));
    server = http.createServer(listener);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise((r) => server.close(r));
    await t.close();
  });

  it('answers 1,500 malformed bodies without a 5xx and stays healthy', async () => {
    const portal = await seedPortal(t.deps);
    const bodies = hostileBodies(eventBody({ portal, id: 1 }), 1500, 20261127);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 });
    const statuses = new Map<number, number>();
    const send = (body: Buffer) =>
      new Promise<number>((resolve) => {
        const req = http.request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/b24/events',
            agent,
            headers: {
              'content-type': 'application/x-www-form-urlencoded',
              'content-length': body.length,
            },
          },
          (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode ?? 0));
          },
        );
        req.on('error', () => resolve(-1));
        req.end(body);
      });
    for (let i = 0; i < bodies.length; i += 50) {
      const batch = await Promise.all(bodies.slice(i, i + 50).map(send));
      for (const s of batch) statuses.set(s, (statuses.get(s) ?? 0) + 1);
    }
    agent.destroy();
    const summary = Object.fromEntries(statuses);
    process.stdout.write(`hostile intake: ${JSON.stringify(summary)}\n`);
    for (const status of statuses.keys()) {
      expect(status).toBeGreaterThanOrEqual(200);
      expect(status).toBeLessThan(500);
    }
    const health = await fetch(`http://127.0.0.1:${port}/healthz`);
    expect(health.status).toBe(200);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    // A genuine delivery still goes through.
    const ok = await fetch(`http://127.0.0.1:${port}/b24/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: eventBody({ portal, id: 2 }),
    });
    expect(ok.status).toBe(200);
  });
});
