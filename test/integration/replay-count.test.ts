import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { insertEvents, type EventStatus } from '../../db/stores/events.js';
import { countReplayable } from '../../db/stores/replay.js';
import { seedPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

describe('replay count in bounded steps', () => {
  let t: TestDeps;
  let portalId: number;
  let otherId: number;
  const T0 = Date.UTC(2026, 10, 27, 10, 0, 0);
  const range = { from: T0, to: T0 + 3600_000 };

  beforeEach(async () => {
    t = await createTestDeps();
    portalId = (await seedPortal(t.deps)).row.id;
    otherId = (await seedPortal(t.deps)).row.id;
  });
  afterEach(async () => {
    await t.close();
  });

  async function add(
    portal: number,
    at: number,
    status: EventStatus = 'processed',
    event = 'ONCRMDEALUPDATE',
  ) {
    await insertEvents(t.deps.db, [{ portal_id: portal, event, status, received_at: at }]);
  }

  /** The count statements the database was asked for (not the step edges). */
  function watchCounts(k: Knex): { n: number; stop(): void } {
    const seen = { n: 0, stop: () => k.off('query', listen) };
    function listen(q: { sql: string }) {
      if (/count\(\*\)/i.test(q.sql)) seen.n++;
    }
    k.on('query', listen);
    return seen;
  }

  it('counts exactly what one count over the range counts, a step at a time', async () => {
    for (let i = 0; i < 8; i++) await add(portalId, T0 + i * 1000);
    // Received in the same millisecond as a step's last event: counted once, in that step.
    await add(portalId, T0 + 2000);
    await add(portalId, T0 + 5000, 'failed');
    await add(portalId, T0 + 5000, 'received'); // still in the backlog: never replayed
    await add(portalId, T0 + 6000, 'processed', 'ONAPPINSTALL'); // not a rule event
    await add(portalId, T0 - 1); // before the range
    await add(portalId, range.to); // the range's end is exclusive
    await add(otherId, T0 + 3000); // another portal

    const filter = { portalId, ...range };
    const watch = watchCounts(t.deps.db);
    const stepped = await countReplayable(t.deps.db, filter, { step: 3 });
    watch.stop();
    expect(stepped).toEqual({ n: 10, capped: false });
    expect(watch.n).toBe(4); // 12 events of the portal in the range: 3 a step, ties kept, the rest
    expect(await countReplayable(t.deps.db, filter)).toEqual({ n: 10, capped: false });
    expect(await countReplayable(t.deps.db, { ...filter, status: 'failed' }, { step: 3 })).toEqual({
      n: 1,
      capped: false,
    });
    expect(
      await countReplayable(t.deps.db, { ...filter, status: 'received' }, { step: 3 }),
    ).toEqual({ n: 0, capped: false });
    expect(
      await countReplayable(t.deps.db, { ...filter, event: 'ONCRMLEADADD' }, { step: 3 }),
    ).toEqual({ n: 0, capped: false });
  });

  it('stops past its cap and says there are more', async () => {
    for (let i = 0; i < 20; i++) await add(portalId, T0 + i * 1000);
    const filter = { portalId, ...range };
    const watch = watchCounts(t.deps.db);
    expect(await countReplayable(t.deps.db, filter, { step: 4, cap: 10 })).toEqual({
      n: 10,
      capped: true,
    });
    watch.stop();
    expect(watch.n).toBe(3); // 4 + 4 + 4 counted: past 10, no further step
    expect(await countReplayable(t.deps.db, filter, { step: 4, cap: 20 })).toEqual({
      n: 20,
      capped: false,
    });
  });
});
