import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  claimFairly,
  duePortals,
  FEW_DUE_JOBS,
  otherPortalDue,
  type DuePortalsMemo,
} from '../../db/stores/jobs.js';
import { seedJobs, seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * Which portals have due jobs, in round-robin order (db/stores/jobs.ts `duePortals`): read
 * from the due jobs themselves when they are few, so that portals whose jobs wait for a
 * retry hours away are not visited at every claim; by the skip along the portals otherwise.
 */
describe('the portals a claim serves', () => {
  let t: TestDeps;
  const portals: number[] = [];

  beforeAll(async () => {
    t = await createTestDeps();
    for (let i = 0; i < 40; i++) portals.push((await seedPortal(t.deps)).row.id);
  });
  afterAll(async () => {
    await t.close();
  });

  const jobs = (portalId: number, n: number, runAt: number) =>
    seedJobs(t.deps, portalId, n, { runAt });

  /** duePortals in a transaction, and whether it walked the portals (the recursive skip). */
  async function due(after: number, max?: number) {
    const sql: string[] = [];
    const onQuery = (q: { sql: string }) => sql.push(q.sql);
    t.deps.db.on('query', onQuery);
    try {
      const now = t.clock.now().getTime();
      const out = await t.deps.db.transaction((trx) => duePortals(trx, now, after, max));
      return { out, walked: sql.some((s) => /with recursive/i.test(s)) };
    } finally {
      t.deps.db.off('query', onQuery);
    }
  }

  it('reads few due jobs directly, past portals whose jobs wait hours', async () => {
    const now = t.clock.now().getTime();
    // 36 portals wait for retries six hours away; four have work due now.
    for (const p of portals.slice(4)) await jobs(p, 1, now + 6 * 3600_000);
    const [a, b, c, d] = portals as [number, number, number, number];
    await jobs(a, 3, now);
    await jobs(b, 1, now - 1000);
    await jobs(c, 2, now);
    await jobs(d, 1, now);
    const first = await due(0);
    expect(first).toEqual({ out: [a, b, c, d], walked: false });
    // Round-robin: after b, those above it first, then from the start.
    expect((await due(b)).out).toEqual([c, d, a, b]);
    expect((await due(b, 2)).out).toEqual([c, d]);
  });

  it('skips along the portals when many jobs are due, with the same order', async () => {
    const now = t.clock.now().getTime();
    const [, b, , , e] = portals as [number, number, number, number, number];
    await jobs(e, FEW_DUE_JOBS, now);
    const { out, walked } = await due(b);
    // The control: this time the skip ran.
    expect(walked).toBe(true);
    expect(out).toEqual([...portals.slice(0, 5).filter((p) => p > b), ...portals.slice(0, 2)]);
  });
});

describe('a worker claiming while many jobs are due', () => {
  let t: TestDeps;
  const portals: number[] = [];
  beforeAll(async () => {
    t = await createTestDeps();
    for (let i = 0; i < 30; i++) portals.push((await seedPortal(t.deps)).row.id);
  });
  afterAll(async () => {
    await t.close();
  });

  /** Claims `limit` jobs with the worker's memo, counting the skips along the portals. */
  async function claim(memo: DuePortalsMemo | undefined, limit = 2) {
    const sql: string[] = [];
    const onQuery = (q: { sql: string }) => sql.push(q.sql);
    t.deps.db.on('query', onQuery);
    try {
      const jobs = await claimFairly(t.deps.db, {
        workerId: 'w',
        now: t.clock.now().getTime(),
        limit,
        holding: new Map(),
        cap: limit,
        after: 0,
        duePortalsMemo: memo,
      });
      return { jobs, walks: sql.filter((s) => /recursive p\(pid\)/i.test(s)).length };
    } finally {
      t.deps.db.off('query', onQuery);
    }
  }

  it('skips along the portals once while those it found fill every slot, and at once when they cannot', async () => {
    const now = t.clock.now().getTime();
    const [a, b] = portals as [number, number];
    // 28 portals wait for retries hours away; A has more due jobs than are read directly.
    for (const p of portals.slice(2)) await seedJobs(t.deps, p, 1, { runAt: now + 6 * 3600_000 });
    await seedJobs(t.deps, a, FEW_DUE_JOBS + 50, { runAt: now });
    // The control: without the memo every claim skips along all of them.
    let walks = 0;
    for (let i = 0; i < 3; i++) walks += (await claim(undefined)).walks;
    expect(walks).toBe(3);

    const memo: DuePortalsMemo = { ms: 60_000 };
    walks = 0;
    for (let i = 0; i < 5; i++) {
      const got = await claim(memo);
      expect(got.jobs.map((j) => j.portal_id)).toEqual([a, a]);
      walks += got.walks;
    }
    expect(walks).toBe(1);

    // A runs dry and B's job falls due: the portals in the memo cannot fill the slots, so the
    // same claim looks again and finds B.
    await t.deps.db('jobs').where({ portal_id: a, status: 'pending' }).update({ status: 'done' });
    await seedJobs(t.deps, b, 1, { runAt: now });
    const got = await claim(memo);
    expect(got.jobs.map((j) => j.portal_id)).toEqual([b]);
  });
});

describe('a worker whose memo names one portal', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(async () => {
    await t.close();
  });

  it("keeps that portal to its share of the slots when another portal's job falls due", async () => {
    const now = t.clock.now().getTime();
    const a = (await seedPortal(t.deps)).row.id;
    const b = (await seedPortal(t.deps)).row.id;
    await seedJobs(t.deps, a, FEW_DUE_JOBS + 50, { runAt: now });
    const memo: DuePortalsMemo = { ms: 60_000 };
    const claim = (holding: Map<number, number>) =>
      claimFairly(t.deps.db, {
        workerId: 'w',
        now: t.clock.now().getTime(),
        limit: 2,
        holding,
        cap: 2,
        concurrency: 4,
        after: 0,
        duePortalsMemo: memo,
      });
    // Only A is due: it gets every free slot (the walk found it alone), and the memo names it.
    expect((await claim(new Map())).map((j) => j.portal_id)).toEqual([a, a]);
    expect(memo.ids).toEqual([a]);
    // B's job falls due while A holds its share (WORKER_PORTAL_SHARE: 2 of 4 slots).
    await seedJobs(t.deps, b, 1, { runAt: now });
    const got = await claim(new Map([[a, 2]]));
    expect(got.map((j) => j.portal_id)).toContain(b);
    expect(got.filter((j) => j.portal_id === a)).toHaveLength(0);
  });
});

describe('whether another portal has a due job (a long job then gives its slot back)', () => {
  let t: TestDeps;
  const portals: number[] = [];
  beforeAll(async () => {
    t = await createTestDeps();
    for (let i = 0; i < 4; i++) portals.push((await seedPortal(t.deps)).row.id);
  });
  afterAll(async () => {
    await t.close();
  });

  const other = (portal: number) => otherPortalDue(t.deps.db, t.clock.now().getTime(), portal);

  it('counts only due jobs of other portals, whether few or many jobs are due', async () => {
    const now = t.clock.now().getTime();
    const [a, b, c, d] = portals as [number, number, number, number];
    await seedJobs(t.deps, b, 3, { runAt: now });
    // C's retry is an hour away: not due.
    await seedJobs(t.deps, c, 1, { runAt: now + 3600_000 });
    expect([await other(a), await other(b), await other(c), await other(d)]).toEqual([
      true,
      false,
      true,
      true,
    ]);
    // More due jobs than are read directly: the skip along the portals, on both sides of B.
    await seedJobs(t.deps, b, FEW_DUE_JOBS, { runAt: now });
    expect([await other(a), await other(b), await other(d)]).toEqual([true, false, true]);
    await seedJobs(t.deps, d, 1, { runAt: now });
    expect([await other(b), await other(d)]).toEqual([true, true]);
  });

  it('does not count a due job held behind an earlier job of its record', async () => {
    const t2 = await createTestDeps();
    try {
      const now = t2.clock.now().getTime();
      const [a, b] = [(await seedPortal(t2.deps)).row.id, (await seedPortal(t2.deps)).row.id];
      const other2 = (portal: number) => otherPortalDue(t2.deps.db, now, portal);
      // B's deal: its first event retries in an hour, its next one is due but must wait.
      await seedJobs(t2.deps, b, 1, { runAt: now + 3600_000, entity: 'held' });
      await seedJobs(t2.deps, b, 1, { runAt: now, entity: 'held' });
      expect(await other2(a)).toBe(false);
      // Control: a job of another of B's deals can run, and counts.
      await seedJobs(t2.deps, b, 1, { runAt: now, entity: 'free' });
      expect(await other2(a)).toBe(true);
    } finally {
      await t2.close();
    }
  });
});
