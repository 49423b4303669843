import { Router } from 'express';
import path from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { migrations } from '../../db/migrations/index.js';
import { createDeps } from '../../server/deps.js';
import { buildListener } from '../../server/start.js';
import { createCollectingLogger } from '../helpers/collecting-logger.js';
import { onPg } from '../helpers/pg.js';
import { spawnServer } from '../helpers/spawn-server.js';
import { createTestDeps, testConfig, type TestDeps } from '../helpers/test-deps.js';
import { tempDir } from '../helpers/temp-dir.js';

const until = async (what: string, cond: () => Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
};

describe('/healthz and /readyz', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('is ready when the database takes a write and every migration is applied', async () => {
    const listener = buildListener(t.deps);
    const res = await request(listener).get('/readyz');
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ok', database: 'ok', migrations: 'done' });
    // The probe really wrote.
    expect(await t.deps.db('probes').where({ name: 'readyz' }).first()).toBeDefined();
    expect((await request(listener).get('/healthz')).status).toBe(200);
  });

  it('is not ready while a migration is missing', async () => {
    const last = migrations[migrations.length - 1]!.name;
    const row = await t.deps.db('knex_migrations').where({ name: last }).first();
    await t.deps.db('knex_migrations').where({ name: last }).delete();
    try {
      const res = await request(buildListener(t.deps)).get('/readyz');
      expect(res.status).toBe(503);
      expect(res.body).toMatchObject({ migrations: 'pending' });
    } finally {
      await t.deps.db('knex_migrations').insert(row);
    }
    expect((await request(buildListener(t.deps)).get('/readyz')).status).toBe(200);
  });

  it('answers 503 from the moment the process is stopping, while /healthz stays 200', async () => {
    const listener = buildListener(t.deps);
    t.deps.lifecycle.stopping = true;
    try {
      expect((await request(listener).get('/readyz')).status).toBe(503);
      expect((await request(listener).get('/healthz')).status).toBe(200);
    } finally {
      t.deps.lifecycle.stopping = false;
    }
  });

  (onPg() ? it.skip : it)(
    'is not ready while another process holds the SQLite write lock',
    async () => {
      const tmp = tempDir();
      const deps = await createDeps(testConfig(tmp.dir), {
        busyTimeoutMs: 50,
        logger: createCollectingLogger().logger,
      });
      const other = new BetterSqlite3(path.join(tmp.dir, 'b24hooks.sqlite'));
      try {
        const listener = buildListener(deps);
        expect((await request(listener).get('/readyz')).status).toBe(200);
        other.exec('begin exclusive');
        // Past the 1 s cache of the last answer.
        await until('a fresh readiness check', async () => {
          const r = await request(listener).get('/readyz');
          return r.status === 503 && r.body.database === 'read-only';
        });
        other.exec('rollback');
        await until(
          'ready again',
          async () => (await request(listener).get('/readyz')).status === 200,
        );
      } finally {
        other.close();
        await deps.close();
        tmp.cleanup();
      }
    },
  );
});

describe('the access log', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('logs each request with its id and no secret of the query', async () => {
    const listener = buildListener(t.deps);
    const secrets = [
      'sess-0123456789',
      'auth-id-abcdef',
      'refresh-xyz',
      'app-token-42',
      'at-9',
      'frame-sid-77',
    ];
    const res = await request(listener)
      .get(
        `/healthz?s=${secrets[0]}&AUTH_ID=${secrets[1]}&REFRESH_ID=${secrets[2]}` +
          `&application_token=${secrets[3]}&auth%5Baccess_token%5D=${secrets[4]}` +
          `&APP_SID=${secrets[5]}&DOMAIN=acme.bitrix24.com&page=2`,
      )
      .set('X-Request-Id', 'req-from-proxy-1')
      .set('Authorization', 'Bearer header-secret');
    expect(res.status).toBe(200);
    expect(res.headers['x-request-id']).toBe('req-from-proxy-1');
    const lines = t.logs.lines.map((l) => JSON.parse(l) as Record<string, any>);
    const line = lines.find((l) => l.req?.id === 'req-from-proxy-1');
    // Control: the request was logged, with what an operator needs.
    expect(line).toMatchObject({
      msg: 'request',
      req: { method: 'GET' },
      res: { statusCode: 200 },
    });
    expect(line!.req.url).toContain('page=2');
    expect(line!.req.url).toContain('DOMAIN=acme.bitrix24.com');
    expect(line!.req.url).toContain('s=[redacted]');
    const text = t.logs.text();
    for (const s of [...secrets, 'header-secret']) expect(text).not.toContain(s);

    // Without an id from a proxy, one is generated and sent back.
    const other = await request(listener).get('/nowhere');
    expect(other.status).toBe(404);
    expect(other.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('logs a 5xx answered on purpose without a made-up error and stack', async () => {
    const router = Router();
    router.get('/on-purpose', (_req, res) => void res.status(503).send('not configured'));
    const listener = buildListener(t.deps, { routes: [router], fast: [] });
    await request(listener).get('/on-purpose?x=1');
    const line = t.logs.lines
      .map((l) => JSON.parse(l) as Record<string, any>)
      .find((l) => l.req?.url === '/on-purpose?x=1');
    // Control: the refusal is logged, at error, with its status.
    expect(line).toMatchObject({ msg: 'request failed', level: 50, res: { statusCode: 503 } });
    expect(line!.err).toBeUndefined();
    expect(JSON.stringify(line)).not.toContain('failed with status code');
  });

  it("logs /readyz's 503 while stopping at info: a load balancer polls it on purpose", async () => {
    const listener = buildListener(t.deps);
    const readyz = () =>
      t.logs.lines
        .map((l) => JSON.parse(l) as Record<string, any>)
        .filter((l) => l.req?.url === '/readyz?probe=stopping');
    t.deps.lifecycle.stopping = true;
    try {
      expect((await request(listener).get('/readyz?probe=stopping')).status).toBe(503);
    } finally {
      t.deps.lifecycle.stopping = false;
    }
    expect(readyz()).toEqual([expect.objectContaining({ level: 30, res: { statusCode: 503 } })]);
    // Control: any other 503 of the same route is still an error (a missing migration).
    const last = migrations[migrations.length - 1]!.name;
    const row = await t.deps.db('knex_migrations').where({ name: last }).first();
    await t.deps.db('knex_migrations').where({ name: last }).delete();
    try {
      await new Promise((r) => setTimeout(r, 1_050)); // past the cached answer
      expect((await request(listener).get('/readyz?probe=stopping')).status).toBe(503);
    } finally {
      await t.deps.db('knex_migrations').insert(row);
    }
    expect(readyz().map((l) => l.level)).toEqual([30, 50]);
  });

  it('logs a delivery to the intake only when it fails', async () => {
    let answer = 200;
    const listener = buildListener(t.deps, {
      routes: [],
      fast: [
        {
          method: 'POST',
          path: '/b24/events',
          handle: (_req, res) => void res.writeHead(answer).end(),
        },
      ],
    });
    const delivered = (status: number) =>
      t.logs.lines
        .map((l) => JSON.parse(l) as Record<string, any>)
        .filter((l) => l.req?.url?.startsWith('/b24/events?n=') && l.res?.statusCode === status);
    await request(listener).post('/b24/events?n=1&application_token=app-secret-1').send('x=1');
    expect(delivered(200)).toHaveLength(0);
    answer = 401;
    const res = await request(listener).post('/b24/events?n=2&application_token=app-secret-2');
    expect(res.status).toBe(401);
    const failed = delivered(401);
    // Control: the failed delivery is logged, at warn, without the query's secret.
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({ msg: 'request failed', req: { method: 'POST' } });
    expect(t.logs.text()).not.toContain('app-secret-');

    // A flood of refused posts (anyone can send them) takes at most 60 lines a minute per
    // status, then one line says how many were left out.
    for (let i = 0; i < 100; i++) await request(listener).post(`/b24/events?n=${i}`);
    expect(delivered(401)).toHaveLength(60);
    answer = 413;
    await request(listener).post('/b24/events?n=x');
    // Control: another status has a budget of its own.
    expect(delivered(413)).toHaveLength(1);
    t.clock.set(t.clock.now().getTime() + 60_000);
    answer = 401;
    await request(listener).post('/b24/events?n=next-minute');
    const leftOut = t.logs.lines
      .map((l) => JSON.parse(l) as Record<string, any>)
      .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('access log lines'));
    expect(leftOut).toEqual([expect.objectContaining({ kind: 'http_401', left_out: 41 })]);
    expect(delivered(401)).toHaveLength(61);
  });
});

// Spawned servers on SQLite: the PostgreSQL pass has nothing to add.
(onPg() ? describe.skip : describe)('the server process', () => {
  const tmp = tempDir();
  afterAll(() => tmp.cleanup());

  it('keeps serving with /readyz at 503 for SHUTDOWN_DELAY_SECONDS after SIGTERM, then exits 0', async () => {
    const server = await spawnServer(
      { DATA_DIR: path.join(tmp.dir, 'delay'), SHUTDOWN_DELAY_SECONDS: '5' },
      20_000,
    );
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const exited = server.stop('SIGTERM');
    await until('/readyz at 503', async () => (await fetch(`${server.url}/readyz`)).status === 503);
    // Still serving everything else meanwhile.
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    expect(await exited).toBe(0);
  });

  it('stops cleanly on a SIGTERM right after it starts listening', async () => {
    // Before the fix 5 of 8 such quick stops died of the signal; three make it show.
    for (let i = 0; i < 3; i++) {
      const server = await spawnServer({ DATA_DIR: path.join(tmp.dir, 'quick') }, 20_000);
      expect(await server.stop('SIGTERM')).toBe(0);
    }
  });
});
