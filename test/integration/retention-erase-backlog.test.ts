import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { backlogCounts, rebuildRollups } from '../../db/stores/rollups.js';
import { generateEvents } from '../helpers/bulk-events.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { runCliIn } from '../helpers/cli.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

interface StatusFigures {
  received: number;
  backlog: number;
  oldestPendingSeconds: number;
}

/**
 * `erase` removes events still in the backlog: they will never be processed, so they must
 * leave the backlog figures too (status, alerts, /metrics read them from the rollups),
 * while the other portal's backlog stays as it was.
 */
describe('erase and the backlog figures', () => {
  let t: TestDeps;
  let a: TestPortal;
  let b: TestPortal;
  let now: number;

  beforeAll(async () => {
    t = await createTestDeps();
    a = await seedPortal(t.deps);
    b = await seedPortal(t.deps);
    now = t.clock.now().getTime();
    const A = { portalId: a.row.id, memberId: a.memberId };
    await generateEvents(t.deps.db, [
      { ...A, status: 'received', receivedAt: now - 3_600_000, count: 3, children: true },
      { ...A, status: 'unverified', receivedAt: now - 7_200_000, count: 2 },
      { ...A, status: 'processed', receivedAt: now - 60_000, count: 4, children: true },
      {
        portalId: b.row.id,
        memberId: b.memberId,
        status: 'received',
        receivedAt: now - 60_000,
        count: 1,
      },
    ]);
    await rebuildRollups(t.deps.db);
  });
  afterAll(async () => {
    await t?.close();
  });

  const status = async () => {
    const r = await runCliIn(t, ['status', '--json']);
    expect(r.code).toBe(0);
    const out = JSON.parse(r.out) as {
      total: StatusFigures;
      portals: Array<StatusFigures & { memberId: string }>;
    };
    return {
      total: out.total,
      of: (m: string) => out.portals.find((p) => p.memberId === m)!,
    };
  };

  it('erase --portal takes the erased backlog out of status, and leaves the other portal’s', async () => {
    const before = await status();
    expect(before.of(a.memberId).backlog).toBe(5);
    expect(before.total.backlog).toBe(6);

    const r = await runCliIn(t, ['erase', '--portal', a.memberId, '--json']);
    expect(r.code).toBe(0);
    expect(JSON.parse(r.out).tables.events).toBe(9);

    const after = await status();
    expect(after.of(a.memberId)).toMatchObject({
      backlog: 0,
      received: 0,
      oldestPendingSeconds: 0,
    });
    expect(after.of(b.memberId)).toMatchObject({ backlog: 1, received: 1 });
    expect(after.total.backlog).toBe(1);
    const backlog = await backlogCounts(t.deps.db);
    expect([backlog.get(a.row.id) ?? 0, backlog.get(b.row.id)]).toEqual([0, 1]);
  });

  it('erase --entity takes that record’s pending events out of the backlog', async () => {
    const [ids] = (
      await generateEvents(t.deps.db, [
        {
          portalId: a.row.id,
          memberId: a.memberId,
          status: 'received',
          receivedAt: now - 30_000,
          count: 2,
        },
      ])
    ).ids;
    await rebuildRollups(t.deps.db);
    expect((await status()).of(a.memberId).backlog).toBe(2);
    const r = await runCliIn(t, ['erase', '--portal', a.memberId, '--entity', `deal:${ids![0]}`]);
    expect(r.code).toBe(0);
    // Said every time: what other records hold of it is not found by --entity.
    expect(r.err).toBe(
      `values of deal:${ids![0]} quoted in other records' events and steps (a contact's phone in its deals' SMS steps) are not found by --entity: erase those records too\n`,
    );
    expect((await status()).of(a.memberId).backlog).toBe(1);
    expect((await status()).total.backlog).toBe(2);
    // A record of which nothing is stored (a typo in the id): said, and nothing changes.
    const typo = await runCliIn(t, ['erase', '--portal', a.memberId, '--entity', 'deal:4042']);
    expect(typo.code).toBe(0);
    expect(typo.out).toBe(`erased 0 rows of deal:4042 on ${a.memberId}\n`);
    expect(typo.err).toContain(
      `no event of deal:4042 is stored for ${a.memberId}: is the id right?`,
    );
    expect((await status()).of(a.memberId).backlog).toBe(1);
  });
});
