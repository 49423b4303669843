import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { BLOCKED_DEFER_MAX, claimFairly } from '../../db/stores/jobs.js';
import { seedJobs, seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const HOUR = 3600_000;

/**
 * Jobs waiting behind their entity's first job, which waits for a retry (db/stores/jobs.ts
 * `deferBlocked`), on the real database: a tenant whose step fails on one deal could post
 * thousands of updates of it, each due and refused by every claim, which read them all.
 */
describe('jobs blocked behind a retry of their entity', () => {
  let t: TestDeps;
  let a: number;
  let b: number;
  const now = () => t.clock.now().getTime();

  beforeEach(async () => {
    t = await createTestDeps();
    a = (await seedPortal(t.deps)).row.id;
    b = (await seedPortal(t.deps)).row.id;
  });
  afterEach(async () => {
    await t.close();
  });

  const claim = () =>
    claimFairly(t.deps.db, {
      workerId: 'w1',
      now: now(),
      limit: 4,
      holding: new Map(),
      cap: 2,
      concurrency: 4,
      after: 0,
    });
  /** Portal A's jobs due now (what a claim reads through). */
  const dueOfA = async () =>
    Number(
      (
        await t.deps
          .db('jobs')
          .where({ portal_id: a, status: 'pending' })
          .where('run_at', '<=', now())
          .count({ n: '*' })
          .first()
      )?.n,
    );
  const setStatus = (id: number, status: string) =>
    t.deps.db('jobs').where({ id }).update({ status });

  /** Deal 1 of A: its first job retries in six hours; `n` later updates of it are due. */
  async function blockedDeal(n: number): Promise<{ head: number; runAt: number }> {
    const runAt = now() + 6 * HOUR;
    await seedJobs(t.deps, a, 1, { entity: '1', runAt });
    await seedJobs(t.deps, a, n, { entity: '1', runAt: now() - 1000 });
    const head = await t.deps.db('jobs').where({ portal_id: a }).min({ id: 'id' }).first();
    return { head: Number(head?.id), runAt };
  }

  it('moves them to the retry of their first job, in bounded steps, so claims no longer read them', async () => {
    const n = BLOCKED_DEFER_MAX + 1000;
    const { head, runAt } = await blockedDeal(n);
    await seedJobs(t.deps, b, 1);
    // Control: all of them are due, each a row every claim of A reads and refuses.
    expect(await dueOfA()).toBe(n);
    const first = await claim();
    expect(first.map((j) => j.portal_id)).toEqual([b]);
    expect(await dueOfA()).toBe(1000);
    await claim();
    expect(await dueOfA()).toBe(0);
    const later = await t.deps.db('jobs').where({ portal_id: a }).whereNot({ id: head });
    expect(new Set(later.map((j) => Number(j.run_at)))).toEqual(new Set([runAt]));

    // At the retry, the first job runs alone; once done, the next in arrival order.
    t.clock.advance(6 * HOUR);
    const atRetry = await claim();
    expect(atRetry.map((j) => j.id)).toEqual([head]);
    await setStatus(head, 'done');
    const next = await claim();
    expect(next.map((j) => j.id)).toEqual([head + 1]);
  });

  it('leaves them due while their first job is running or due itself', async () => {
    const { head } = await blockedDeal(10);
    await setStatus(head, 'running');
    expect(await claim()).toEqual([]);
    expect(await dueOfA()).toBe(10);
    await setStatus(head, 'pending');
    await t.deps.db('jobs').where({ id: head }).update({ run_at: now() });
    const got = await claim();
    expect(got.map((j) => j.id)).toEqual([head]);
    expect(await dueOfA()).toBe(10);
  });
});
