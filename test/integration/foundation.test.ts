import fs from 'node:fs';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { isPg } from '../../db/connect.js';
import { buildListener } from '../../server/start.js';
import { appParts } from '../../server/routes/index.js';
import { createServices } from '../../server/services.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

describe('foundation', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps({ METRICS_TOKEN: 'metrics-secret' });
  });
  afterAll(async () => {
    await t.close();
  });

  it('creates every table on an empty database', async () => {
    let names: string[];
    if (isPg(t.deps.db)) {
      const answer = (await t.deps.db.raw(
        'select tablename as name from pg_tables where schemaname = current_schema()',
      )) as { rows: { name: string }[] };
      names = answer.rows.map((r) => r.name);
    } else {
      expect(fs.existsSync(t.dbFile)).toBe(true);
      const tables = (await t.deps.db.raw(
        "select name from sqlite_master where type = 'table' order by name",
      )) as { name: string }[];
      names = tables.map((r) => r.name);
    }
    for (const name of ['portals', 'events', 'jobs', 'action_runs', 'settings']) {
      expect(names).toContain(name);
    }
  });

  // SQLite's own settings: skipped in the PostgreSQL run.
  (onPg() ? it.skip : it)('runs SQLite in WAL mode with full sync and foreign keys', async () => {
    const [mode] = (await t.deps.db.raw('pragma journal_mode')) as { journal_mode: string }[];
    const [sync] = (await t.deps.db.raw('pragma synchronous')) as { synchronous: number }[];
    const [fk] = (await t.deps.db.raw('pragma foreign_keys')) as { foreign_keys: number }[];
    expect(mode?.journal_mode).toBe('wal');
    expect(sync?.synchronous).toBe(2);
    expect(fk?.foreign_keys).toBe(1);
  });

  it('answers /healthz with JSON while the database answers', async () => {
    const res = await request(buildListener(t.deps, appParts(t.deps, createServices(t.deps)))).get(
      '/healthz',
    );
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: 'ok', database: 'ok' });
  });

  it('answers /healthz with 503 when the database is gone', async () => {
    const other = await createTestDeps();
    const listener = buildListener(other.deps, appParts(other.deps, createServices(other.deps)));
    await other.deps.db.destroy();
    const res = await request(listener).get('/healthz');
    expect(res.status).toBe(503);
    await other.close().catch(() => undefined);
  });

  it('protects /metrics with METRICS_TOKEN', async () => {
    const listener = buildListener(t.deps, appParts(t.deps, createServices(t.deps)));
    expect((await request(listener).get('/metrics')).status).toBe(401);
    expect(
      (await request(listener).get('/metrics').set('Authorization', 'Bearer wrong')).status,
    ).toBe(401);
    const ok = await request(listener)
      .get('/metrics')
      .set('Authorization', 'Bearer metrics-secret');
    expect(ok.status).toBe(200);
    expect(ok.text).toContain('# TYPE b24hooks_backlog gauge');
  });

  it('answers unknown paths with 404', async () => {
    const res = await request(buildListener(t.deps, appParts(t.deps, createServices(t.deps)))).get(
      '/nope',
    );
    expect(res.status).toBe(404);
  });
});
