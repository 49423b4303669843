import request from 'supertest';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appParts } from '../../server/routes/index.js';
import { createServices } from '../../server/services.js';
import { buildListener } from '../../server/start.js';
import { isSqlite } from '../../db/connect.js';
import { writeIntakeBatch } from '../../db/stores/intake.js';
import { updateEvent } from '../../db/stores/events.js';
import {
  listRollups,
  OLDEST_WINDOW_ROWS,
  rebuildRollups,
  oldestPendingAt,
  oldestPendingByPortal,
  recountRollups,
} from '../../db/stores/rollups.js';
import { replayEvents } from '../../server/processing/replay.js';
import {
  findPendingSlaBreaches,
  pendingSlaBreaches,
  recordSlaBreaches,
  slaCounts,
} from '../../db/stores/sla.js';
import { intakeRow, seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';

const HOUR = 3600_000;

/** Partial indexes on events and the columns their own WHERE tests. */
const PARTIAL: Record<string, string[]> = {
  events_backlog_requeued: ['queued_at', 'status'],
  events_backlog_requeued_at: ['queued_at', 'status'],
};

/**
 * Columns a SQLite statement (its text with values, one table) tests in its WHERE that its
 * plan's index search does not: rows it reads and skips.
 */
function residualColumns(sql: string, plan: string): string[] {
  const where = /\bwhere (.*?)(?: order by | limit |$)/.exec(sql)?.[1] ?? '';
  const tested = new Set([...where.matchAll(/`(\w+)`/g)].map((m) => m[1]!));
  const m = /USING (?:COVERING )?INDEX (\w+)(?: \((.*?)\))?/.exec(plan);
  const served = new Set([
    ...[...(m?.[2] ?? '').matchAll(/(\w+)[=<>]/g)].map((x) => x[1]!),
    ...(PARTIAL[m?.[1] ?? ''] ?? []),
  ]);
  return [...tested].filter((c) => !served.has(c));
}

/**
 * Lookups over the backlog that run at every alert check (and on the dashboard and in
 * `status --json`): their cost must not grow with a backlog that a flood keeps growing.
 */
describe('backlog lookups', () => {
  let t: TestDeps;
  let a: TestPortal;
  let b: TestPortal;
  let deal = 0;

  beforeEach(async () => {
    t = await createTestDeps();
    a = await seedPortal(t.deps);
    b = await seedPortal(t.deps);
  });
  afterEach(async () => {
    await t.close();
  });

  const deliver = (portal: TestPortal, receivedAt: number, status?: 'unverified') => {
    const row = intakeRow(portal, ++deal, { receivedAt });
    if (status) {
      row.event.status = status;
      row.job = null;
    }
    return writeIntakeBatch(t.deps.db, [row], receivedAt);
  };

  it('is the earliest received event in any backlog status, per portal and in all', async () => {
    const h = 100 * HOUR;
    await deliver(a, h + 5000);
    await deliver(a, h + 9000);
    await deliver(a, h + 3000, 'unverified');
    await deliver(b, h + 7000);
    await deliver(b, h + HOUR + 1000);
    expect(await oldestPendingAt(t.deps.db, a.row.id)).toBe(h + 3000);
    expect(await oldestPendingAt(t.deps.db, b.row.id)).toBe(h + 7000);
    expect(await oldestPendingAt(t.deps.db)).toBe(h + 3000);
    expect(await oldestPendingAt(t.deps.db, null)).toBeUndefined();
  });

  /**
   * A week-old deal replayed a minute ago had "waited a week" on the dashboard, in `status`,
   * `/metrics` and the backlog alert: the age counted from its receipt.
   */
  it('counts a replayed event from its replay, not from its receipt', async () => {
    const db = t.deps.db;
    const h = 100 * HOUR;
    const weekAgo = h - 7 * 24 * HOUR;
    // Two of portal a's deals came in a week ago and were processed.
    await deliver(a, weekAgo + 1000);
    await deliver(a, weekAgo + 2000);
    const done = (await db('events').where('portal_id', a.row.id).pluck('id')) as number[];
    for (const id of done)
      await updateEvent(db, id, { status: 'processed', processed_at: weekAgo + 3000 });
    expect(await oldestPendingAt(db, a.row.id)).toBeUndefined();
    // Replayed half an hour into hour h.
    const replayedAt = h + 30 * 60_000;
    t.clock.set(replayedAt);
    const r = await replayEvents(t.deps, { filter: { portalId: a.row.id } });
    expect(r.queued).toBe(2); // control: the replay ran
    const lookups = async (portal: TestPortal) => [
      await oldestPendingAt(db, portal.row.id),
      (await oldestPendingByPortal(db)).get(portal.row.id),
    ];
    expect(await lookups(a)).toEqual([replayedAt, replayedAt]);
    expect(await oldestPendingAt(db)).toBe(replayedAt);
    // Portal b's delivery, received before the replay, has waited longer.
    await deliver(b, h + 10 * 60_000);
    expect(await lookups(b)).toEqual([h + 10 * 60_000, h + 10 * 60_000]);
    expect(await oldestPendingAt(db)).toBe(h + 10 * 60_000);
    expect(await lookups(a)).toEqual([replayedAt, replayedAt]);
    // Portal a's own delivery of three hours later waits behind the replayed ones (by id):
    // the replay is still its oldest.
    await deliver(a, h + 3 * HOUR);
    expect(await lookups(a)).toEqual([replayedAt, replayedAt]);
    // Once the replayed ones are done, that delivery is.
    for (const id of done)
      await updateEvent(db, id, { status: 'processed', processed_at: h + 4 * HOUR });
    expect(await lookups(a)).toEqual([h + 3 * HOUR, h + 3 * HOUR]);
    // The backlog rows agree with a recount from the tables (by the hour each event waits from).
    const pend = (rows: Awaited<ReturnType<typeof listRollups>>) =>
      rows
        .filter((x) => x.kind === 'pend' && x.n !== 0)
        .map((x) => `${x.portal_id}@${x.bucket}:${x.n}`)
        .sort();
    expect(pend(await listRollups(db))).toEqual(pend(await recountRollups(db)));
  });

  /**
   * A delivery never replayed that waits behind replayed events (in id order, and by receipt
   * for all portals) is found without reading the replayed events in between.
   */
  it('finds a delivery waiting behind replayed events, by a seek from the oldest hour', async () => {
    const db = t.deps.db;
    const h = 100 * HOUR;
    for (let i = 0; i < 30; i++) await deliver(a, h - 48 * HOUR + i);
    const old = (await db('events').where('portal_id', a.row.id).pluck('id')) as number[];
    for (const id of old)
      await updateEvent(db, id, { status: 'processed', processed_at: h - 47 * HOUR });
    await deliver(a, h + 10 * 60_000); // never replayed, waits
    t.clock.set(h + 2 * HOUR + 5 * 60_000);
    const r = await replayEvents(t.deps, { filter: { portalId: a.row.id, status: 'processed' } });
    expect(r.queued).toBe(30);
    const read: number[] = [];
    const onQuery = (q: { sql: string }) => {
      if (/from [`"]?events[`"]?/.test(q.sql)) read.push(1);
    };
    db.on('query', onQuery);
    try {
      expect(await oldestPendingAt(db, a.row.id)).toBe(h + 10 * 60_000);
      expect(await oldestPendingAt(db)).toBe(h + 10 * 60_000);
    } finally {
      db.off('query', onQuery);
    }
    expect((await oldestPendingByPortal(db)).get(a.row.id)).toBe(h + 10 * 60_000);
    // A few statements, whatever the replay's size (seeks: see the query plans below).
    expect(read.length).toBeLessThanOrEqual(10);
  });

  /**
   * Ids follow arrival only within a few minutes (two instances, a slow group commit): a
   * delivery stored after a later one was skipped, and the portal's oldest age came out as
   * the replay, two hours young.
   */
  it('finds a delivery stored out of arrival order behind replayed events', async () => {
    const db = t.deps.db;
    const h = 100 * HOUR;
    await deliver(a, h - 7 * 24 * HOUR);
    const [old] = (await db('events').where('portal_id', a.row.id).pluck('id')) as number[];
    await updateEvent(db, old!, { status: 'processed', processed_at: h - 7 * 24 * HOUR + 1 });
    await deliver(a, h + 500); // waits, never replayed
    await deliver(a, h + 100); // stored after it, though received before; done
    const [late] = (await db('events')
      .where('portal_id', a.row.id)
      .orderBy('id', 'desc')
      .pluck('id')) as number[];
    await updateEvent(db, late!, { status: 'processed', processed_at: h + 600 });
    t.clock.set(h + 2 * HOUR);
    const r = await replayEvents(t.deps, { filter: { portalId: a.row.id, status: 'processed' } });
    expect(r.queued).toBe(2);
    // The week-old one waits again (replayed), and so does the one done at h + 600.
    await updateEvent(db, late!, { status: 'processed', processed_at: h + 2 * HOUR + 1 });
    expect(await oldestPendingAt(db, a.row.id)).toBe(h + 500);
    expect((await oldestPendingByPortal(db)).get(a.row.id)).toBe(h + 500);
    expect(await oldestPendingAt(db)).toBe(h + 500);
  });

  /**
   * A delivery waiting since before a large replay of events received after it: the lookup
   * read every replayed event in between, on every alert check, /metrics scrape and
   * dashboard view (a quarter of a second for 200,000). It now skips a status with no event
   * never replayed, and otherwise reads at most OLDEST_WINDOW_ROWS of it.
   */
  it('reads a bounded number of events however many replayed ones wait', async () => {
    const db = t.deps.db;
    const h = 100 * HOUR;
    const n = OLDEST_WINDOW_ROWS + 50;
    /** n deliveries of portal a received from `at` on, done, then replayed at `replayAt`. */
    const replayed = async (at: number, replayAt: number) => {
      const rows = Array.from({ length: n }, (_, i) =>
        intakeRow(a, ++deal, { receivedAt: at + i }),
      );
      await writeIntakeBatch(db, rows, at);
      await db('events')
        .where('portal_id', a.row.id)
        .whereBetween('received_at', [at, at + n - 1])
        .update({ status: 'processed', processed_at: at + n });
      await rebuildRollups(db);
      t.clock.set(replayAt);
      const r = await replayEvents(t.deps, {
        filter: { portalId: a.row.id, status: 'processed', from: at, to: at + n },
      });
      expect(r.queued).toBe(n); // control: more replayed events than the window holds
    };
    const lookUp = async () => {
      const limits: number[] = [];
      const onQuery = (q: { sql: string; bindings: unknown[] }) => {
        if (/from [`"]?events[`"]?/.test(q.sql) && /limit (\?|\$\d+)$/.test(q.sql))
          limits.push(Number(q.bindings.at(-1)));
      };
      db.on('query', onQuery);
      try {
        return { found: [await oldestPendingAt(db, a.row.id), await oldestPendingAt(db)], limits };
      } finally {
        db.off('query', onQuery);
      }
    };
    // A delivery stuck in processing since h + 1 min, then a replay of n later deliveries:
    // no status needs the window, and the answer is exact.
    await deliver(a, h + 60_000);
    const [stuck] = (await db('events').where('portal_id', a.row.id).pluck('id')) as number[];
    await updateEvent(db, stuck!, { status: 'processing' });
    await replayed(h + 120_000, h + 5 * HOUR);
    const first = await lookUp();
    expect(first.found).toEqual([h + 60_000, h + 60_000]);
    expect(Math.max(...first.limits)).toBe(1);
    // A delivery waiting in the same status as n replayed ones received before it in its
    // hour (at h + 2 h 40 min, after the replayed ones at h + 2 h): the window fills with
    // replayed events, and the answer is that hour, at most an hour early.
    await updateEvent(db, stuck!, { status: 'processed', processed_at: h + 6 * HOUR });
    await replayed(h + 2 * HOUR, h + 7 * HOUR);
    await deliver(a, h + 2 * HOUR + 40 * 60_000);
    const second = await lookUp();
    expect(second.found).toEqual([h + 2 * HOUR, h + 2 * HOUR]);
    expect(Math.max(...second.limits)).toBe(OLDEST_WINDOW_ROWS);
  });

  it('seeks instead of reading the oldest hour (SQLite query plan)', async () => {
    if (!isSqlite(t.deps.db)) return;
    for (let i = 0; i < 20; i++) await deliver(a, 100 * HOUR + i);
    const lookUp = async () => {
      const queries: string[] = [];
      const onQuery = (q: { sql: string; bindings: never }) => {
        if (/from `events`/.test(q.sql)) queries.push(t.deps.db.raw(q.sql, q.bindings).toQuery());
      };
      t.deps.db.on('query', onQuery);
      try {
        await oldestPendingAt(t.deps.db, a.row.id);
        await oldestPendingAt(t.deps.db);
      } finally {
        t.deps.db.off('query', onQuery);
      }
      return queries;
    };
    const queries = await lookUp();
    // And with the first ten done and replayed two hours later: the seeks past them too.
    const first = (await t.deps.db('events').orderBy('id').limit(10).pluck('id')) as number[];
    for (const id of first)
      await updateEvent(t.deps.db, id, { status: 'processed', processed_at: 100 * HOUR + 50 });
    t.clock.set(102 * HOUR);
    await replayEvents(t.deps, { filter: { portalId: a.row.id, status: 'processed' } });
    const afterReplay = await lookUp();
    // Control: the events were read, and past the replayed ones.
    expect(queries.length).toBeGreaterThan(0);
    const windows = afterReplay.filter((q) => q.endsWith(`limit ${OLDEST_WINDOW_ROWS}`));
    expect(windows.length).toBe(2);
    queries.push(...afterReplay);
    for (const q of queries) {
      // An aggregate over a range reads every row in it; a first row in index order does not,
      // nor a window of a bounded number of rows.
      expect(q).not.toMatch(/\bmin\(/);
      expect(q).toMatch(new RegExp(`limit (1|${OLDEST_WINDOW_ROWS})$`));
      const plan = (await t.deps.db.raw(`explain query plan ${q}`)) as Array<{ detail: string }>;
      const text = plan.map((p) => p.detail).join('\n');
      expect(text).toMatch(/USING (COVERING )?INDEX/);
      expect(text).not.toMatch(/TEMP B-TREE/);
      // A first row found by skipping rows the index cannot tell apart is a scan: a seek's
      // every condition is the index's (its key, or a partial index's own WHERE).
      if (q.endsWith('limit 1')) expect([q, residualColumns(q, text)]).toEqual([q, []]);
    }
  });

  it('looks for a portal’s events past their SLA in its own backlog only (SQLite query plan)', async () => {
    const h = 100 * HOUR;
    for (let i = 0; i < 5; i++) await deliver(a, h + i);
    for (let i = 0; i < 5; i++) await deliver(b, h + i);
    const rule = { name: 'paid', on: ['ONCRMDEALUPDATE'], slaSeconds: 60 };
    const now = h + HOUR;
    const sql: string[] = [];
    const onQuery = (q: { sql: string; bindings: never }) => {
      // The text with its values on SQLite (for its plan); PostgreSQL numbers its placeholders.
      if (/from [`"]?events[`"]?/.test(q.sql))
        sql.push(isSqlite(t.deps.db) ? t.deps.db.raw(q.sql, q.bindings).toQuery() : q.sql);
    };
    t.deps.db.on('query', onQuery);
    let found;
    let counts;
    try {
      found = await findPendingSlaBreaches(
        t.deps.db,
        { id: a.row.id, memberId: a.memberId },
        rule,
        now,
      );
      counts = await slaCounts(t.deps.db, a.row.id, rule, h - HOUR, now);
    } finally {
      t.deps.db.off('query', onQuery);
    }
    // The portal's own events, not evaluated yet, past the SLA: all five of a's, none of b's.
    expect(found.map((f) => f.portal_id)).toEqual([
      a.row.id,
      a.row.id,
      a.row.id,
      a.row.id,
      a.row.id,
    ]);
    expect(counts).toEqual({ total: 0, withinSla: 0 });
    expect(sql.length).toBeGreaterThanOrEqual(2);
    if (!isSqlite(t.deps.db)) return;
    for (const q of sql) {
      const plan = (await t.deps.db.raw(`explain query plan ${q}`)) as Array<{ detail: string }>;
      const text = plan.map((p) => p.detail).join('\n');
      // Before: SEARCH e USING INDEX events_status_received (status=? AND received_at<?), every
      // portal's backlog for each portal (+e.portal_id), at every alert check.
      expect(text).toMatch(/SEARCH e USING INDEX \w+ \(portal_id=\? AND status=\?\)/);
    }
  });

  it('reads no events for the SLA alert of a portal that has no breach recorded', async () => {
    for (let i = 0; i < 20; i++) await deliver(a, 100 * HOUR + i);
    const [first] = (await t.deps
      .db('events')
      .where('portal_id', b.row.id)
      .pluck('id')) as number[];
    await deliver(b, 100 * HOUR);
    const read: string[] = [];
    const onQuery = (q: { sql: string }) => read.push(q.sql);
    t.deps.db.on('query', onQuery);
    try {
      expect(await pendingSlaBreaches(t.deps.db, { id: a.row.id, memberId: a.memberId })).toEqual({
        events: 0,
        byRule: [],
        oldestReceivedAt: undefined,
      });
    } finally {
      t.deps.db.off('query', onQuery);
    }
    expect(read.length).toBeGreaterThan(0);
    expect(read.filter((q) => /\bevents\b/.test(q))).toEqual([]);
    // Control: a portal with a breach of a waiting event gets it, through the same function.
    const [eventId] = (await t.deps
      .db('events')
      .where('portal_id', b.row.id)
      .pluck('id')) as number[];
    await recordSlaBreaches(t.deps.db, [
      {
        event_id: Number(eventId),
        rule_name: 'paid',
        portal_id: b.row.id,
        member_id: b.memberId,
        sla_seconds: 60,
        seen: 'pending',
        received_at: 100 * HOUR,
        detected_at: 100 * HOUR + 1000,
      },
    ]);
    expect(await pendingSlaBreaches(t.deps.db, { id: b.row.id, memberId: b.memberId })).toEqual({
      events: 1,
      byRule: [{ rule: 'paid', events: 1 }],
      oldestReceivedAt: 100 * HOUR,
    });
  });
  it('scrapes /metrics in a few queries however many portals have a backlog', async () => {
    const more = [a, b];
    for (let i = 0; i < 30; i++) more.push(await seedPortal(t.deps));
    for (const p of more) await deliver(p, 100 * HOUR + deal);
    const listener = buildListener(t.deps, appParts(t.deps, createServices(t.deps)));
    let queries = 0;
    const onQuery = () => queries++;
    t.deps.db.on('query', onQuery);
    let text: string;
    try {
      text = (await request(listener).get('/metrics')).text;
    } finally {
      t.deps.db.off('query', onQuery);
    }
    expect(text).toContain('b24hooks_backlog{portal="all"} 32');
    expect(text).toContain(`b24hooks_backlog{portal="${a.memberId}"} 1`);
    // Before: four more for each portal with a backlog (its oldest pending event), 128 here.
    expect(queries).toBeLessThanOrEqual(10);
  });
  it('reads no portal’s oldest event at an alert check while its backlog is below the threshold', async () => {
    const more = [a, b];
    for (let i = 0; i < 30; i++) more.push(await seedPortal(t.deps));
    for (const p of more) await deliver(p, 100 * HOUR + deal);
    const services = createServices(t.deps);
    let reads = 0;
    const onQuery = (q: { sql: string }) => {
      // The oldest pending event: `select received_at from events where status = ? …`.
      if (/^select [`"]received_at[`"] from [`"]events[`"]/.test(q.sql)) reads++;
    };
    t.deps.db.on('query', onQuery);
    try {
      const report = await services.alerts.checkOnce();
      expect(report.sent.filter((s) => s.kind === 'backlog')).toEqual([]);
    } finally {
      t.deps.db.off('query', onQuery);
    }
    // The oldest event of all portals (for the total), not of each (three reads each, 96 here).
    expect(reads).toBeLessThanOrEqual(3);
  });
});
