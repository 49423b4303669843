import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createReplayRun, getReplayRun, replayProgress } from '../../db/stores/replay-runs.js';
import { generateEvents } from '../helpers/bulk-events.js';
import { seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

/**
 * A replay's ids are written and its progress counted 500 at a time, the event loop let run
 * between (db/stores/replay-runs.ts): the counts must come out as one query over all of them
 * gave, across the steps' edges, with events deleted since and another run's left out.
 */
describe('a replay run written and counted in steps', () => {
  let t: TestDeps;
  beforeAll(async () => {
    t = await createTestDeps();
  });
  afterAll(async () => {
    await t.close();
  });

  it('counts every event of the run by its status, across the steps', async () => {
    const p = await seedPortal(t.deps);
    const at = t.clock.now().getTime() - 60_000;
    const group = (status: 'processed' | 'failed' | 'received', count: number) => ({
      portalId: p.row.id,
      memberId: p.memberId,
      status,
      receivedAt: at,
      count,
    });
    const { ids } = await generateEvents(t.deps.db, [
      group('processed', 701),
      group('failed', 499),
      group('received', 301),
      group('processed', 20),
    ]);
    const [processed, failed, waiting, elsewhere] = ids as [number[], number[], number[], number[]];
    const run = { portal_id: p.row.id, user_id: 1, filter: {}, rerun_succeeded: false };
    const mine = [...processed, ...failed, ...waiting];
    const id = await createReplayRun(
      t.deps.db,
      { ...run, matched: mine.length, created_at: at },
      mine,
    );
    // Another run, of other events: not counted in this one's.
    await createReplayRun(t.deps.db, { ...run, matched: 20, created_at: at }, elsewhere);
    // Ten events deleted since (retention): "other".
    await t.deps.db('events').whereIn('id', processed.slice(0, 10)).delete();
    const row = (await getReplayRun(t.deps.db, id))!;
    expect(row.queued).toBe(1_501);
    expect(
      Number((await t.deps.db('replay_run_events').where({ run_id: id }).count({ n: '*' }))[0]!.n),
    ).toBe(1_501);
    expect(await replayProgress(t.deps.db, row)).toEqual({
      queued: 1_501,
      waiting: 301,
      processed: 691,
      failed: 499,
      skipped: 0,
      other: 10,
      done: false,
    });
  });
});
