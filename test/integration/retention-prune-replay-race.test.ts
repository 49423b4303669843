import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { backlogCounts, rebuildRollups } from '../../db/stores/rollups.js';
import { prune } from '../../server/retention/prune.js';
import { replayEvents } from '../../server/processing/replay.js';
import { generateEvents } from '../helpers/bulk-events.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const DAY = 86_400_000;

/**
 * A prune picks its batch, then deletes it in a transaction of its own. A replay (the CLI's,
 * another process, or the UI's) may queue those very events in between: they are back in
 * the backlog with a pending job, and must survive the batch.
 */
describe('prune against a replay queued between its read and its delete', () => {
  let t: TestDeps;
  let p: TestPortal;
  let ids: number[];

  beforeAll(async () => {
    t = await createTestDeps({ RETENTION_DAYS: '30', RETENTION_FAILED_DAYS: '30' });
    p = await seedPortal(t.deps);
    const now = t.clock.now().getTime();
    [ids] = (
      await generateEvents(t.deps.db, [
        {
          portalId: p.row.id,
          memberId: p.memberId,
          status: 'processed',
          receivedAt: now - 40 * DAY,
          count: 3,
          children: true,
        },
      ])
    ).ids as [number[]];
    await rebuildRollups(t.deps.db);
  });
  afterAll(async () => {
    await t?.close();
  });

  it('keeps the replayed events, their jobs and their backlog figures', async () => {
    const db = t.deps.db;
    const real = db.transaction.bind(db);
    const patch = (value: unknown) =>
      Object.defineProperty(db, 'transaction', { value, configurable: true });
    let replayed: number[] | undefined;
    // The first batch's delete: a replay of the same events commits just before it.
    patch(async (fn: (trx: Knex.Transaction) => Promise<unknown>) => {
      patch(real);
      replayed = (
        await replayEvents(t.deps, {
          filter: { portalId: p.row.id, from: 0, to: t.clock.now().getTime() },
        })
      ).eventIds;
      return real(fn);
    });
    await prune(t.deps);
    expect(replayed).toEqual(ids);

    const left = (await db('events').whereIn('id', ids).orderBy('id')) as Array<{
      id: number;
      status: string;
    }>;
    expect(left.map((e) => [Number(e.id), e.status])).toEqual(ids.map((id) => [id, 'received']));
    const jobs = (await db('jobs')
      .whereIn('event_id', ids)
      .where('status', 'pending')) as unknown[];
    expect(jobs).toHaveLength(3);
    expect((await backlogCounts(db)).get(p.row.id)).toBe(3);
  });
});
