import Database from 'better-sqlite3';
import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { STORAGE_RETRY_AFTER_SECONDS } from '../../server/intake/intake.js';
import type { JobHandler } from '../../server/queue/types.js';
import { appParts } from '../../server/routes/index.js';
import { createServices, type Services } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { eventBody, seedPortal, type TestPortal } from '../helpers/event-builder.js';

const FORM = 'application/x-www-form-urlencoded';

/**
 * What the server does when SQLite refuses writes: the intake answers 503 with Retry-After
 * (never 200), /healthz says so, nothing acknowledged is lost, and everything works again
 * once the fault clears, without a restart. (The reliability suite does the same on the real
 * server process under load: test/reliability/scenarios/db-faults.ts.)
 * The faults are SQLite's own (a second connection's write lock, SQLITE_FULL): the
 * PostgreSQL pass skips them.
 */
(onPg() ? describe.skip : describe)('database faults', () => {
  let t: TestDeps;
  let services: Services;
  let listener: ReturnType<typeof buildListener>;
  let portal: TestPortal;
  let holder: Database.Database | undefined;
  let calls = 0;
  let onRun: () => void = () => undefined;

  const post = (id: number, extra: Record<string, string> = {}) =>
    request(listener)
      .post('/b24/events')
      .set('Content-Type', FORM)
      .send(
        eventBody({
          portal,
          id,
          ts: 1764237600 + id,
          data: { FIELDS: { ID: String(id), ...extra } },
        }),
      );
  const health = () => request(listener).get('/healthz');
  const storedIds = async () =>
    ((await t.deps.db('events').orderBy('id').pluck('entity_id')) as string[]).map(Number);
  /** Another connection (an operator's sqlite3, a second process) takes the write lock. */
  const lock = () => {
    holder = new Database(t.dbFile);
    holder.exec('BEGIN EXCLUSIVE');
  };
  const unlock = () => {
    holder?.exec('COMMIT');
    holder?.close();
    holder = undefined;
  };

  beforeEach(async () => {
    t = await createTestDeps();
    // The server's main connection waits briefly for a lock (server/main.ts); so here.
    await t.deps.db.raw('PRAGMA busy_timeout = 200');
    calls = 0;
    onRun = () => undefined;
    const handler: JobHandler = async () => {
      calls++;
      onRun();
      return { eventStatus: 'processed' };
    };
    services = createServices(t.deps, { worker: { handlers: { process_event: handler } } });
    listener = buildListener(t.deps, appParts(t.deps, services));
    portal = await seedPortal(t.deps);
  });
  afterEach(async () => {
    unlock();
    await services.close(1000);
    await t.close();
  });

  it('answers 503 with Retry-After while another connection holds the write lock, then 200 again', async () => {
    expect((await post(1)).status).toBe(200);
    lock();
    const refused = await post(2);
    expect(refused.status).toBe(503);
    expect(refused.headers['retry-after']).toBe(String(STORAGE_RETRY_AFTER_SECONDS));
    const sick = await health();
    expect(sick.status).toBe(503);
    expect(sick.body).toMatchObject({ database: 'ok', writes: 'failing' });
    unlock();
    expect((await post(3)).status).toBe(200);
    const well = await health();
    expect(well.status).toBe(200);
    expect(well.body).toMatchObject({ status: 'ok', writes: 'ok' });
    expect(await storedIds()).toEqual([1, 3]);
  });

  it('answers 503 while the disk is full (SQLITE_FULL) and keeps everything it acknowledged', async () => {
    const big = { NOTE: 'x'.repeat(20_000) };
    expect((await post(1, big)).status).toBe(200);
    const [row] = (await t.deps.db.raw('PRAGMA page_count')) as { page_count: number }[];
    const pages = row!.page_count;
    // The database may not grow: what a full disk does to SQLite (SQLITE_FULL).
    await t.deps.db.raw(`PRAGMA max_page_count = ${pages}`);
    const statuses: number[] = [];
    for (let id = 2; id <= 6; id++) statuses.push((await post(id, big)).status);
    expect(statuses).toEqual([503, 503, 503, 503, 503]);
    expect((await health()).status).toBe(503);
    await t.deps.db.raw('PRAGMA max_page_count = 1073741823');
    expect((await post(7, big)).status).toBe(200);
    expect((await health()).status).toBe(200);
    expect(await storedIds()).toEqual([1, 7]);
  });

  it('puts a job back when its outcome could not be written, once the database takes writes', async () => {
    expect((await post(1)).status).toBe(200);
    // The handler runs, then another connection takes the lock: the worker cannot record it.
    onRun = () => {
      if (calls === 1) lock();
    };
    const [first] = await services.worker.runOnce();
    expect(first?.outcome).toBe('retry');
    expect(await t.deps.db('jobs').pluck('status')).toEqual(['running']);
    expect((await health()).status).toBe(503);
    unlock();
    // No restart, no lease expiry: the next round returns the job to the queue and runs it.
    await services.worker.drain();
    expect(calls).toBe(2);
    expect(await t.deps.db('jobs').pluck('status')).toEqual(['done']);
    expect(await t.deps.db('events').pluck('status')).toEqual(['processed']);
    // The worker's writes went through again: /healthz says so without waiting for a
    // delivery (none has come since the fault).
    expect((await health()).status).toBe(200);
  });

  /**
   * An operator's CLI (`replay`, `erase`, `rules import`) writes from another process while the
   * server runs. A claim reads before it writes; when such a commit landed between the two,
   * SQLite refused the write at once (SQLITE_BUSY_SNAPSHOT, no busy wait helps), which was
   * logged as a storage fault and turned /healthz to 503. Now the claim holds the write lock
   * from its BEGIN and the other process waits for it.
   */
  it('a claim is not broken by another process writing while it runs', async () => {
    expect((await post(1)).status).toBe(200);
    let tried = 0;
    let refused: string | undefined;
    const other = new Database(t.dbFile);
    other.pragma('busy_timeout = 0');
    t.deps.db.on('query-response', (_r: unknown, q: { __knexTxId?: string; sql?: string }) => {
      if (tried === 0 && q.__knexTxId && /^select `portal_id` from `jobs`/.test(q.sql ?? '')) {
        tried++;
        try {
          other.pragma('user_version = 7');
        } catch (e) {
          // The claim holds the write lock from its BEGIN: the other process waits its turn.
          refused = (e as { code?: string }).code;
        }
      }
    });
    try {
      services.worker.start();
      for (let i = 0; i < 200 && calls === 0; i++) await new Promise((r) => setTimeout(r, 25));
      await services.worker.drain();
      // Once the claim is over, the other process's write goes through.
      if (refused) other.pragma('user_version = 7');
    } finally {
      other.close();
    }
    // Control: the other process tried to write inside the claim.
    expect(tried).toBe(1);
    expect(refused === undefined || refused === 'SQLITE_BUSY').toBe(true);
    expect(new Database(t.dbFile).pragma('user_version', { simple: true })).toBe(7);
    expect(await t.deps.db('events').pluck('status')).toEqual(['processed']);
    expect(t.logs.text()).not.toContain('claiming failed');
    expect((await health()).status).toBe(200);
  });
});
