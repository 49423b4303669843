import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { otherPortalDue } from '../../db/stores/jobs.js';
import { seedJobs, seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * A long job asks about once a second whether another portal could take its slot
 * (db/stores/jobs.ts `otherPortalDue`, server/queue/slot-turn.ts); on SQLite the answer is
 * read on the main thread, between two deliveries. Its own portal's backlog is not read.
 */
describe("whether another portal could take a long job's slot, under the job's own backlog", () => {
  let t: TestDeps;
  let a!: number;
  let b!: number;
  const BACKLOG = 60_000;

  beforeAll(async () => {
    t = await createTestDeps();
    a = (await seedPortal(t.deps)).row.id;
    b = (await seedPortal(t.deps)).row.id;
  });
  afterAll(async () => {
    await t.close();
  });

  type Answer = { ms: number; due: boolean };

  /** The fastest of a few answers for `portal`, in ms, kept in `best`. */
  async function ask(portal: number, now: number, best: Answer): Promise<void> {
    const t0 = performance.now();
    best.due = await otherPortalDue(t.deps.db, now, portal);
    best.ms = Math.min(best.ms, performance.now() - t0);
  }

  it("costs A, with 60,000 jobs due before B's one, what it costs B", async () => {
    const now = t.clock.now().getTime();
    await seedJobs(t.deps, a, BACKLOG, { runAt: now - 2000 });
    // B's job came last of all.
    await seedJobs(t.deps, b, 1, { runAt: now - 1000 });
    // Statistics as the database keeps them (PostgreSQL's autovacuum), not an empty table's.
    await t.deps.db.raw('analyze');
    // The same look at the portals for both; then B is answered by A's first job, and A by
    // B's one job, which comes after all of A's.
    // Asked in turn, so that a busy moment of the machine (another test file, the database's
    // own work) slows both, not one.
    const forB: Answer = { ms: Infinity, due: false };
    const forA: Answer = { ms: Infinity, due: false };
    for (let i = 0; i < 15; i++) {
      await ask(b, now, forB);
      await ask(a, now, forA);
    }
    expect([forA.due, forB.due]).toEqual([true, true]);
    process.stdout.write(
      `otherPortalDue under ${BACKLOG} due jobs of A: ${forA.ms.toFixed(2)} ms for A, ` +
        `${forB.ms.toFixed(2)} ms for B\n`,
    );
    expect(forA.ms).toBeLessThan(2 * forB.ms + 1);
  }, 60_000);
});
