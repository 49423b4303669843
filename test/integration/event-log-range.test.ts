import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { isSqlite } from '../../db/connect.js';
import { logPage, RANGE_ID_MARGIN_MS } from '../../db/stores/event-log.js';
import { generateEvents, type EventGroup } from '../helpers/bulk-events.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const HOUR = 3_600_000;

/**
 * The log's time filter ("yesterday") walks ids inside the range instead of reading the
 * whole range: it must still return exactly the events received in the range, including
 * ones stored a little out of arrival order (two instances, the group commit).
 */
describe('the event log over a time range', () => {
  let t: TestDeps;
  let a: TestPortal;
  let b: TestPortal;
  const day0 = Date.UTC(2026, 10, 1);

  beforeAll(async () => {
    t = await createTestDeps();
    a = await seedPortal(t.deps);
    b = await seedPortal(t.deps);
    const groups: EventGroup[] = [];
    const at = (portal: TestPortal, receivedAt: number, count: number, status = 'processed') =>
      groups.push({
        portalId: portal.row.id,
        memberId: portal.memberId,
        status: status as EventGroup['status'],
        receivedAt,
        count,
      });
    // Three days of portal A, three events an hour, portal B interleaved.
    for (let h = 0; h < 72; h++) {
      at(a, day0 + h * HOUR, 3);
      at(b, day0 + h * HOUR + 1, 1);
      // Stored a little out of arrival order (another instance, a slow commit): arrived a
      // minute before the hour's events but stored after them.
      if (h === 24 || h === 48) at(a, day0 + h * HOUR - 60_000, 2, 'failed');
    }
    await generateEvents(t.deps.db, groups);
  });
  afterAll(async () => t?.close());

  const all = async (from: number, to: number) => {
    const out: number[] = [];
    let beforeId: number | undefined;
    for (;;) {
      const page = await logPage(t.deps.db, { portalId: a.row.id, from, to, beforeId }, 10);
      out.push(...page.rows.map((r) => r.id));
      if (page.nextBeforeId === undefined) return out;
      beforeId = page.nextBeforeId;
    }
  };
  const expected = async (from: number, to: number) =>
    (
      (await t.deps
        .db('events')
        .where({ portal_id: a.row.id })
        .where('received_at', '>=', from)
        .where('received_at', '<', to)
        .orderBy('id', 'desc')
        .select('id')) as Array<{ id: number | string }>
    ).map((r) => Number(r.id));

  it('returns exactly the events of the range, late-stored ones included', async () => {
    const from = day0 + 24 * HOUR;
    const to = day0 + 48 * HOUR;
    const got = await all(from, to);
    const want = await expected(from, to);
    // Control: the range holds 24 hours × 3 events and the 2 late ones of its last minute
    // (stored after the first events past its end); the 2 late ones before it stay out.
    expect(want).toHaveLength(74);
    expect(got).toEqual(want);
    const open = await all(from, Number.MAX_SAFE_INTEGER);
    expect(open).toEqual(await expected(from, Number.MAX_SAFE_INTEGER));
    expect(await all(0, day0 + HOUR)).toEqual(await expected(0, day0 + HOUR));
  });

  it('pages back up with "newer": each page above is the page that was shown before it', async () => {
    const from = day0 + 24 * HOUR;
    const to = day0 + 48 * HOUR;
    const filters = [
      { portalId: a.row.id, from, to },
      { portalId: a.row.id, statuses: ['processed' as const] },
      { portalId: a.row.id, text: 'ONCRMDEALUPDATE' },
    ];
    for (const filter of filters) {
      // Down three pages, remembering each.
      const down: number[][] = [];
      let beforeId: number | undefined;
      for (let i = 0; i < 3; i++) {
        const page = await logPage(t.deps.db, { ...filter, beforeId }, 10);
        down.push(page.rows.map((r) => r.id));
        beforeId = page.nextBeforeId;
      }
      expect(down[2]!.length).toBeGreaterThan(0);
      // Back up from the third page: "newer" gives the second, then the first, then no more.
      let page = await logPage(t.deps.db, { ...filter, beforeId: down[1]!.at(-1) }, 10);
      expect(page.rows.map((r) => r.id)).toEqual(down[2]);
      for (const want of [down[1], down[0]]) {
        expect(page.newerAfterId).toBeDefined();
        page = await logPage(t.deps.db, { ...filter, afterId: page.newerAfterId }, 10);
        expect(page.rows.map((r) => r.id)).toEqual(want);
      }
      // The first page has none above it; its "older" leads down again.
      expect(page.newerAfterId).toBeUndefined();
      const again = await logPage(t.deps.db, { ...filter, beforeId: page.nextBeforeId }, 10);
      expect(again.rows.map((r) => r.id)).toEqual(down[1]);
    }
  });

  it('answers an empty range with an empty page', async () => {
    const far = day0 + 1000 * HOUR;
    expect(await all(far, far + HOUR)).toEqual([]);
    expect(await all(0, day0 - RANGE_ID_MARGIN_MS - 1)).toEqual([]);
  });

  it('walks ids instead of sorting the range (SQLite query plan)', async () => {
    if (!isSqlite(t.deps.db)) return;
    const queries: string[] = [];
    const onQuery = (q: { sql: string; bindings: never }) => {
      if (q.sql.includes('limit')) queries.push(t.deps.db.raw(q.sql, q.bindings).toQuery());
    };
    t.deps.db.on('query', onQuery);
    try {
      await logPage(
        t.deps.db,
        { portalId: a.row.id, from: day0 + 24 * HOUR, to: day0 + 48 * HOUR },
        10,
      );
    } finally {
      t.deps.db.off('query', onQuery);
    }
    const page = queries.find((q) => q.includes('order by `events`.`id` desc'));
    expect(page).toBeDefined();
    const plan = (await t.deps.db.raw(`explain query plan ${page}`)) as Array<{ detail: string }>;
    const text = plan.map((p) => p.detail).join('\n');
    expect(text).not.toMatch(/TEMP B-TREE FOR ORDER BY/);
  });
});
