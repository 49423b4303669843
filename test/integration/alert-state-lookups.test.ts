import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { isSqlite } from '../../db/connect.js';
import {
  failedEventsOf,
  getAlertState,
  insertAlertStates,
  updateAlertStates,
} from '../../db/stores/alerts.js';
import { finishEvent } from '../../db/stores/events.js';
import { insertRuleMatches } from '../../db/stores/processing.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import type { EventMap } from '../../server/rules/model.js';
import { firingAlerts } from '../../server/ui/pages/dashboard-page.js';

/**
 * The dashboard's firing alerts and the monitor's destination alerts read only their own
 * rows of `alert_state`, by index, whatever the number of portals (migration 0022).
 */
describe('alert state lookups', () => {
  let h: AlertHarness;
  beforeEach(async () => {
    h = await startAlertHarness();
  });
  afterEach(async () => {
    await h.close();
  });

  it('never read every portal’s alert states, at a view or at a check', async () => {
    const db = h.t.deps.db;
    const mine = await seedPortal(h.t.deps);
    const now = h.t.clock.now().getTime();
    const row = (key: string, kind: string, member: string | null, state = 'firing') => ({
      key,
      kind,
      member_id: member,
      state,
      details: '{}',
      fired_at: now,
      last_sent_at: now,
      updated_at: now,
    });
    const rows = [];
    for (let i = 0; i < 300; i++) {
      const m = `other${String(i).padStart(27, '0')}`;
      rows.push(row(`backlog:${m}`, 'backlog', m), row(`drift:${m}`, 'drift', m, 'ok'));
    }
    rows.push(row(`backlog:${mine.memberId}`, 'backlog', mine.memberId));
    rows.push(row(`sla:${mine.memberId}`, 'sla', mine.memberId, 'ok'));
    for (let i = 0; i < rows.length; i += 200)
      await db('alert_state').insert(rows.slice(i, i + 200));

    const read: string[] = [];
    const onQuery = (q: { sql: string; bindings: unknown[] }) => {
      // The text with its values, whatever the placeholders ($1 on PostgreSQL).
      if (/from [`"]alert_state[`"]/.test(q.sql))
        read.push(`${q.sql} ${JSON.stringify(q.bindings)}`);
    };
    db.on('query', onQuery);
    try {
      expect((await firingAlerts(db, mine.memberId)).map((a) => a.key)).toEqual([
        `backlog:${mine.memberId}`,
      ]);
      await h.checkAndSend();
    } finally {
      db.off('query', onQuery);
    }
    // Control: both read alert states.
    expect(read.some((q) => q.includes(mine.memberId) && q.includes('"firing"'))).toBe(true);
    expect(read.some((q) => q.includes('"destination"'))).toBe(true);
    // Before: `select * from alert_state order by state, key` at each view and each check.
    for (const q of read) expect(q).toMatch(/ where /);
    if (!isSqlite(db)) return;
    const lookups = [
      db('alert_state').where({ state: 'firing', member_id: mine.memberId }).orderBy('key'),
      db('alert_state').where({ state: 'firing', kind: 'destination' }).orderBy('key'),
    ];
    for (const q of lookups) {
      const plan = (await db.raw(`explain query plan ${q.toQuery()}`)) as Array<{ detail: string }>;
      expect(plan.map((p) => p.detail).join('\n')).toMatch(/USING (COVERING )?INDEX alert_state_/);
    }
  });
  it('reads the condition states of many portals in a few queries at a check, not one per condition', async () => {
    const db = h.t.deps.db;
    for (let i = 0; i < 40; i++) await seedPortal(h.t.deps);
    // The first check stores a state per portal and condition; the second reads them.
    await h.checkAndSend();
    expect(Number((await db('alert_state').count({ n: '*' }))[0]!.n)).toBeGreaterThanOrEqual(40);
    let reads = 0;
    const onQuery = (q: { sql: string }) => {
      if (/from [`"]alert_state[`"]/.test(q.sql)) reads++;
    };
    db.on('query', onQuery);
    try {
      await h.checkAndSend();
    } finally {
      db.off('query', onQuery);
    }
    // Before: one read per portal and condition (five each, 200 here).
    expect(reads).toBeLessThanOrEqual(5);
  });
  /** A portal with its bindings recorded: the drift condition compares them with the chosen events. */
  const seedBound = async () => {
    const p = await seedPortal(h.t.deps);
    await h.t.deps
      .db('portals')
      .where({ id: p.row.id })
      .update({ events_bound: '["ONCRMDEALUPDATE","ONAPPINSTALL"]' });
    return p;
  };
  /** A check, its queries counted; then the clock moves on 30 s. */
  const countedCheck = async () => {
    const db = h.t.deps.db;
    let queries = 0;
    const onQuery = () => queries++;
    db.on('query', onQuery);
    try {
      const report = await h.services.alerts.checkOnce();
      return { queries, report };
    } finally {
      db.off('query', onQuery);
      h.t.clock.advance(30_000);
    }
  };

  it('checks many idle portals in a number of queries that does not grow with them', async () => {
    const seed = async (n: number) => {
      for (let i = 0; i < n; i++) await seedBound();
      // The first check of new portals stores their states; the next one is measured.
      await h.services.alerts.checkOnce();
      h.t.clock.advance(30_000);
    };
    const queriesOfCheck = async () => (await countedCheck()).queries;
    await seed(10);
    const ofTen = await queriesOfCheck();
    await seed(30);
    const ofForty = await queriesOfCheck();
    // Control: a check reads something.
    expect(ofTen).toBeGreaterThan(0);
    // Before: five more for each idle portal (its chosen events, rule map, default map, SLA
    // breaches, failed events): 150 more here.
    expect(ofForty).toBeLessThanOrEqual(ofTen);
  });
  /** Events of a portal failed for good at these times, each matching the rules named. */
  const failEvents = async (
    portal: { id: number; memberId: string },
    times: readonly number[],
    rules: (k: number) => readonly string[] = () => [],
  ) => {
    const db = h.t.deps.db;
    const ids = await h.addEvents(portal, times.length);
    for (const [k, id] of ids.entries()) {
      const names = rules(k);
      if (names.length) {
        await insertRuleMatches(
          db,
          names.map((rule_name, i) => ({
            event_id: id,
            rule_name,
            rule_index: i,
            reason: null,
            previous: null,
          })),
          times[k]!,
        );
      }
      await finishEvent(db, id, { status: 'failed', lastError: `error ${k}`, at: times[k]! });
    }
    return ids;
  };

  it('reads the failed events of several portals’ digests as each digest read its own', async () => {
    const db = h.t.deps.db;
    const now = h.t.clock.now().getTime();
    const [a, b, c] = [
      await seedPortal(h.t.deps),
      await seedPortal(h.t.deps),
      await seedPortal(h.t.deps),
    ];
    const A = { id: a.row.id, memberId: a.memberId };
    const B = { id: b.row.id, memberId: b.memberId };
    // Ties at one time, more than the limit, rules (one skipped), one before its `after`.
    const ofA = await failEvents(
      A,
      [now - 9000, now - 5000, now - 5000, now - 5000, now - 1000, now],
      (k) => (k % 2 ? ['Zeta', 'Alpha'] : []),
    );
    await db('rule_matches')
      .where({ event_id: ofA[1], rule_name: 'Alpha' })
      .update({ status: 'skipped' });
    await failEvents(B, [now - 20_000, now - 3000, now - 2000, now + 1000], () => ['Only']);
    await h.addEvents({ id: c.row.id, memberId: c.memberId }, 2);
    const ranges = [
      { portalId: a.row.id, after: now - 10_000 },
      { portalId: b.row.id, after: now - 10_000 },
      { portalId: c.row.id, after: now - 10_000 },
    ];
    // What each digest read on its own before: newest first, the later id first at one time
    // (SQLite's order on the index), at most `limit`, then their rules not skipped.
    const one = async (portalId: number, after: number, limit: number) => {
      const rows = (await db('events')
        .where({ portal_id: portalId, status: 'failed' })
        .where('processed_at', '>', after)
        .where('processed_at', '<=', now)
        .orderBy([
          { column: 'processed_at', order: 'desc' },
          { column: 'id', order: 'desc' },
        ])
        .limit(limit)
        .select('id', 'event', 'entity_type', 'entity_id', 'last_error', 'processed_at')) as Array<
        Record<string, unknown>
      >;
      const out = [];
      for (const r of rows) {
        const rules = (await db('rule_matches')
          .where({ event_id: r.id })
          .whereNot('status', 'skipped')
          .orderBy('rule_name')
          .pluck('rule_name')) as string[];
        out.push({
          id: Number(r.id),
          event: r.event,
          entityType: r.entity_type,
          entityId: r.entity_id,
          lastError: r.last_error,
          processedAt: Number(r.processed_at),
          rules,
        });
      }
      return out;
    };
    for (const limit of [500, 4, 1]) {
      const together = await failedEventsOf(db, ranges, now, limit);
      expect([...together.keys()].sort()).toEqual([a.row.id, b.row.id].sort());
      for (const r of ranges.slice(0, 2)) {
        const own = await one(r.portalId, r.after, limit);
        expect(own.length).toBeGreaterThan(0);
        expect(together.get(r.portalId)).toEqual(own);
      }
    }
    // Control: the ties, the rules and the limit are there to be kept.
    const all = (await failedEventsOf(db, ranges, now)).get(a.row.id)!;
    expect(all.map((e) => e.id)).toEqual([ofA[5], ofA[4], ofA[3], ofA[2], ofA[1], ofA[0]]);
    expect(all.map((e) => e.rules)).toEqual([
      ['Alpha', 'Zeta'],
      [],
      ['Alpha', 'Zeta'],
      [],
      ['Zeta'],
      [],
    ]);
  });

  it('reads the failed events of a check’s digests in a number of queries that does not grow with them', async () => {
    const withFailed = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const p = await seedBound();
        const now = h.t.clock.now().getTime();
        await failEvents({ id: p.row.id, memberId: p.memberId }, [now - 2000, now - 1000], () => [
          'Invoice',
        ]);
      }
      h.t.clock.advance(1000);
      const { queries, report } = await countedCheck();
      return { queries, digests: report.sent.filter((m) => m.kind === 'failed').length };
    };
    const ofTen = await withFailed(10);
    const ofForty = await withFailed(30);
    // Control: each new portal's digest went out.
    expect(ofTen.digests).toBe(10);
    expect(ofForty.digests).toBe(30);
    // Before: two more for each digest (its events, their rules): 40 more here.
    expect(ofForty.queries).toBeLessThanOrEqual(ofTen.queries);
  });

  it('searches the events past the default map’s SLA for many portals together', async () => {
    const db = h.t.deps.db;
    await saveRuleMap(
      db,
      undefined,
      {
        rules: [
          {
            name: 'paid',
            on: ['ONCRMDEALUPDATE'],
            actions: [{ type: 'http', method: 'POST', url: 'https://example.com/x' }],
            slaSeconds: 60,
          },
        ],
      } as unknown as EventMap,
      h.t.clock.now(),
    );
    const portals = [];
    for (let i = 0; i < 30; i++) portals.push(await seedPortal(h.t.deps));
    for (const p of portals.slice(0, 3))
      await h.addEvents({ id: p.row.id, memberId: p.memberId }, 1);
    h.t.clock.advance(120_000);
    let searches = 0;
    let lateTotals = 0;
    const onQuery = (q: { sql: string; bindings?: unknown[] }) => {
      // The search for events not evaluated yet past the SLA (findPendingSlaBreaches).
      if (/[`"]evaluated_at[`"] is null/.test(q.sql)) searches++;
      // The portals' counts of events finished past the SLA (rollups of kind `late`).
      if (/^select .* from [`"]rollups[`"]/.test(q.sql) && q.bindings?.includes('late'))
        lateTotals++;
    };
    db.on('query', onQuery);
    let report;
    try {
      report = await h.services.alerts.checkOnce();
    } finally {
      db.off('query', onQuery);
    }
    // Control: the three waiting events were found past their SLA.
    expect(report.slaBreaches).toBe(3);
    expect(
      report.sent
        .filter((s) => s.kind === 'sla')
        .map((s) => s.memberId)
        .sort(),
    ).toEqual(
      portals
        .slice(0, 3)
        .map((p) => p.memberId)
        .sort(),
    );
    // Before: one of each for each portal (30 here).
    expect(searches).toBe(1);
    expect(lateTotals).toBe(1);
  });

  it('writes many states together only where nobody moved them since they were read', async () => {
    const db = h.t.deps.db;
    const now = h.t.clock.now().getTime();
    const first = (key: string) => ({
      key,
      kind: 'sla' as const,
      member_id: key.slice(4),
      state: 'ok' as const,
      pending_since: null,
      fired_at: null,
      last_sent_at: null,
      cursor: null,
      details: null,
      updated_at: now,
    });
    const keys = Array.from({ length: 300 }, (_, i) => `sla:m${String(i).padStart(3, '0')}`);
    expect(await insertAlertStates(db, keys.map(first))).toEqual(new Set(keys));
    // Another instance stored one of them first (another state): its row stays as it is.
    expect(await insertAlertStates(db, [{ ...first(keys[0]!), state: 'firing' }])).toEqual(
      new Set(),
    );
    const read = await Promise.all(keys.map((k) => getAlertState(db, k)));
    // Another instance moved two of them since they were read.
    await db('alert_state')
      .whereIn('key', [keys[1]!, keys[299]!])
      .update({ version: 2, details: 'theirs' });
    const later = now + 30_000;
    const written = await updateAlertStates(
      db,
      read.map((prev) => ({
        prev: prev!,
        next: {
          ...first(prev!.key),
          state: 'firing' as const,
          fired_at: later,
          last_sent_at: later,
          details: '{"events":1}',
          updated_at: later,
        },
      })),
    );
    expect(written).toEqual(new Set(keys.filter((_, i) => i !== 1 && i !== 299)));
    const after = (await db('alert_state').orderBy('key')) as Array<Record<string, unknown>>;
    expect(
      after.map((r) => [r.key, r.state, Number(r.version), r.details, Number(r.updated_at)]),
    ).toEqual(
      keys.map((k, i) =>
        i === 1 || i === 299
          ? [k, 'ok', 2, 'theirs', now]
          : [k, 'firing', 2, '{"events":1}', later],
      ),
    );
    expect(Number(after[2]!.fired_at)).toBe(later);
    expect(after[2]!.pending_since).toBeNull();
  });
});
