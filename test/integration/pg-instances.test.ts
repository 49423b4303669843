import { afterAll, describe, expect, it } from '@jest/globals';
import { openDb, type Db } from '../../db/connect.js';
import { migrateToLatest } from '../../db/migrate.js';
import { migrations } from '../../db/migrations/index.js';
import { LOCK } from '../../db/locks.js';
import {
  claimJobs,
  completeJob,
  insertJobs,
  releaseOrphanedJobs,
  type NewJob,
} from '../../db/stores/jobs.js';
import { openInstanceLock } from '../../server/cluster/instance-lock.js';
import { createCollectingLogger } from '../helpers/collecting-logger.js';
import { createTestDatabase, onPg, type TestDatabase } from '../helpers/pg.js';

/**
 * Several instances on one PostgreSQL database, in-process: each "instance" is a
 * knex pool of its own, as a separate process would have. Runs in the PostgreSQL pass only
 * (`npm run test:pg`); the SQLite pass lists it as skipped.
 */
(onPg() ? describe : describe.skip)('several instances on PostgreSQL', () => {
  const cleanups: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
  });

  async function freshDatabase(): Promise<TestDatabase> {
    const d = await createTestDatabase({ template: null });
    cleanups.push(() => d.drop());
    return d;
  }
  function pool(url: string): Db {
    const db = openDb({ client: 'pg', connectionString: url });
    cleanups.push(() => db.destroy());
    return db;
  }

  it('migrates once when four instances start at the same moment; the others wait', async () => {
    const d = await freshDatabase();
    const results = await Promise.all([1, 2, 3, 4].map(() => migrateToLatest(pool(d.url))));
    const applied = results.filter((r) => r.length > 0);
    expect(applied).toHaveLength(1);
    expect(applied[0]).toEqual(migrations.map((m) => m.name));
    expect(results.filter((r) => r.length === 0)).toHaveLength(3);
  });

  it('claims each job once across two instances, one job of an entity at a time, in order', async () => {
    const d = await freshDatabase();
    const [a, b] = [pool(d.url), pool(d.url)];
    await migrateToLatest(a);
    const entities = 12;
    const perEntity = 8;
    const jobs: NewJob[] = [];
    for (let n = 0; n < perEntity; n++) {
      for (let e = 0; e < entities; e++) {
        jobs.push({
          type: 'process_event',
          event_id: null,
          portal_id: null,
          entity_key: `1:deal:${e}`,
          payload: JSON.stringify({ e, n }),
          max_attempts: 3,
          run_at: 0,
        });
      }
    }
    await insertJobs(a, jobs, 0);
    const runs: Array<{ id: number; entity: string; start: number; end: number; by: string }> = [];
    const busy = new Set<string>();
    let overlaps = 0;
    async function instance(db: Db, name: string) {
      for (let idle = 0; idle < 20;) {
        const claimed = await claimJobs(db, { workerId: name, now: 1, limit: 3 });
        if (claimed.length === 0) {
          idle++;
          await new Promise((r) => setTimeout(r, 5));
          continue;
        }
        idle = 0;
        await Promise.all(
          claimed.map(async (j) => {
            const entity = j.entity_key!;
            if (busy.has(entity)) overlaps++;
            busy.add(entity);
            const start = performance.now();
            await new Promise((r) => setTimeout(r, 2 + Math.random() * 4));
            busy.delete(entity);
            runs.push({ id: j.id, entity, start, end: performance.now(), by: name });
            await completeJob(db, j.id, 2);
          }),
        );
      }
    }
    await Promise.all([instance(a, 'a'), instance(b, 'b')]);
    expect(overlaps).toBe(0);
    expect(runs).toHaveLength(entities * perEntity);
    expect(new Set(runs.map((r) => r.id)).size).toBe(runs.length);
    // Both instances did work, and every entity's jobs ran in id order.
    expect(new Set(runs.map((r) => r.by))).toEqual(new Set(['a', 'b']));
    for (let e = 0; e < entities; e++) {
      const mine = runs.filter((r) => r.entity === `1:deal:${e}`).sort((x, y) => x.start - y.start);
      expect(mine.map((r) => r.id)).toEqual([...mine.map((r) => r.id)].sort((x, y) => x - y));
    }
  });

  it('returns the jobs of an instance whose connection is gone, and only those', async () => {
    const d = await freshDatabase();
    const db = pool(d.url);
    await migrateToLatest(db);
    const logs = createCollectingLogger();
    const dead = await openInstanceLock(d.url, logs.logger);
    const alive = await openInstanceLock(d.url, logs.logger);
    cleanups.push(() => alive.close());
    const job = (n: number): NewJob => ({
      type: 'process_event',
      event_id: null,
      portal_id: null,
      entity_key: `1:deal:${n}`,
      payload: null,
      max_attempts: 3,
      run_at: 0,
    });
    await insertJobs(db, [job(1), job(2), job(3), job(4)], 0);
    const deadJobs = await claimJobs(db, { workerId: `h:1:x#${dead.key}`, now: 1, limit: 2 });
    const liveJobs = await claimJobs(db, { workerId: `h:2:y#${alive.key}`, now: 1, limit: 1 });
    const untagged = await claimJobs(db, { workerId: 'tests', now: 1, limit: 1 });
    expect([deadJobs.length, liveJobs.length, untagged.length]).toEqual([2, 1, 1]);

    expect(await releaseOrphanedJobs(db, 5)).toBe(0);
    await dead.close(); // what a SIGKILL does to its connection
    expect(await releaseOrphanedJobs(db, 5)).toBe(2);
    const rows = (await db('jobs').orderBy('id').select('id', 'status', 'locked_by')) as Array<{
      id: number;
      status: string;
    }>;
    const status = new Map(rows.map((r) => [Number(r.id), r.status]));
    for (const j of deadJobs) expect(status.get(j.id)).toBe('pending');
    expect(status.get(liveJobs[0]!.id)).toBe('running');
    expect(status.get(untagged[0]!.id)).toBe('running');
  });

  it('takes its presence lock again after PostgreSQL dropped the connection', async () => {
    const d = await freshDatabase();
    const db = pool(d.url);
    const logs = createCollectingLogger();
    const lock = await openInstanceLock(d.url, logs.logger, { retryMs: 50 });
    cleanups.push(() => lock.close());
    expect(await lock.tryLead(LOCK.alerts, 7)).toBe(true);
    await db.raw(
      'select pg_terminate_backend(pid) from pg_stat_activity where application_name = ?',
      [`b24hooks#${lock.key}`],
    );
    for (let i = 0; i < 100 && lock.held(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(logs.text()).toContain('lost the instance lock connection');
    for (let i = 0; i < 200 && !lock.held(); i++) await new Promise((r) => setTimeout(r, 10));
    expect(lock.held()).toBe(true);
    expect(await lock.tryLead(LOCK.alerts, 7)).toBe(true);
  });

  it('lets one instance at a time lead, and the next one take over when it stops', async () => {
    const d = await freshDatabase();
    const logs = createCollectingLogger();
    const first = await openInstanceLock(d.url, logs.logger);
    const second = await openInstanceLock(d.url, logs.logger);
    cleanups.push(() => second.close());
    expect(await first.tryLead(LOCK.alerts, 0)).toBe(true);
    expect(await second.tryLead(LOCK.alerts, 0)).toBe(false);
    expect(await first.tryLead(LOCK.alerts, 0)).toBe(true);
    await first.close();
    expect(await second.tryLead(LOCK.alerts, 0)).toBe(true);
  });
});
