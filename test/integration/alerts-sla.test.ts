import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { slaSummary } from '../../server/alerts/index.js';
import { statusCommand } from '../../server/cli/commands.js';
import type { EventMap } from '../../server/rules/model.js';
import { finishEvent } from '../../db/stores/events.js';
import {
  insertRuleMatches,
  markEvaluated,
  setRuleMatchStatus,
} from '../../db/stores/processing.js';
import { ALERT_SETTINGS } from '../../db/stores/alerts.js';
import { putSetting } from '../../db/stores/settings.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { saveMapSealed } from '../../server/rules/saved-map.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { listRollups, recountRollups } from '../../db/stores/rollups.js';

const MAP: EventMap = {
  rules: [
    {
      name: 'Deal to accounting',
      on: ['ONCRMDEALUPDATE'],
      actions: [{ type: 'http', method: 'POST', url: 'https://accounting.example/api' }],
      slaSeconds: 60,
    },
    {
      name: 'Leads, no SLA',
      on: ['ONCRMLEADADD'],
      actions: [{ type: 'http', method: 'POST', url: 'https://crm.example/api' }],
    },
  ],
};

describe('SLA control', () => {
  let h: AlertHarness;
  let portal: TestPortal;
  let p: { id: number; memberId: string };
  const db = () => h.t.deps.db;
  const now = () => h.t.clock.now().getTime();

  beforeEach(async () => {
    // A high backlog threshold: only the SLA speaks in these tests.
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '1000' });
    portal = await seedPortal(h.t.deps);
    p = { id: portal.row.id, memberId: portal.memberId };
    await saveRuleMap(db(), undefined, MAP, h.t.clock.now());
  });
  afterEach(async () => {
    await h.close();
  });

  /** Records that the event matched the rule, as the processor does on first evaluation. */
  async function matched(eventId: number, status: 'matched' | 'done' = 'matched') {
    const rule = 'Deal to accounting';
    await insertRuleMatches(
      db(),
      [
        {
          event_id: eventId,
          rule_name: rule,
          rule_index: 0,
          reason: null,
          previous: null,
          sla_ms: 60_000,
        },
      ],
      now(),
    );
    if (status !== 'matched') await setRuleMatchStatus(db(), eventId, rule, status, null);
    await markEvaluated(db(), eventId, now(), 0);
  }
  async function processed(ids: number[]) {
    for (const id of ids) {
      await finishEvent(db(), id, { status: 'processed', at: now() });
      await setRuleMatchStatus(db(), id, 'Deal to accounting', 'done', null);
    }
  }
  const breachCount = async () =>
    (await h.t.deps.metrics.slaBreaches.get()).values.reduce((s, v) => s + v.value, 0);

  it('detects an SLA breach while the event is still pending and alerts on each channel', async () => {
    const [evaluated] = await h.addEvents(p, 1, { status: 'processing' });
    await matched(evaluated!);
    const [waiting] = await h.addEvents(p, 1); // not evaluated yet: the rule's event type counts
    await h.addEvents(p, 1, { event: 'ONCRMLEADADD' }); // its rule has no SLA

    h.t.clock.advance(59_000);
    expect(await h.checkAndSend()).toEqual({ sent: [], slaBreaches: 0 });

    h.t.clock.advance(2_000);
    const report = await h.checkAndSend();
    expect(report.slaBreaches).toBe(2);
    expect(report.sent.map((s) => [s.key, s.phase, s.channels])).toEqual([
      [`sla:${portal.memberId}`, 'firing', ['telegram', 'email']],
    ]);
    // Still pending: the breach was seen before the events finished.
    const statuses = (await db()('events')
      .whereIn('id', [evaluated!, waiting!])
      .pluck('status')) as string[];
    expect(statuses.sort()).toEqual(['processing', 'received']);
    expect(await db()('sla_breaches').orderBy('event_id')).toMatchObject([
      { event_id: evaluated, rule_name: 'Deal to accounting', seen: 'pending', sla_seconds: 60 },
      { event_id: waiting, rule_name: 'Deal to accounting', seen: 'pending' },
    ]);
    expect(h.tg.sent).toHaveLength(1);
    expect(h.tg.sent[0]?.text).toContain('SLA breach: 2 events past their SLA');
    expect(h.tg.sent[0]?.text).toContain('Deal to accounting: 2');
    expect(h.smtp.messages).toHaveLength(1);
    expect(await breachCount()).toBe(2);

    // Each breach is counted once, however often the monitor looks.
    h.t.clock.advance(60_000);
    expect((await h.checkAndSend()).slaBreaches).toBe(0);
    expect(await breachCount()).toBe(2);
  });

  it('sends a recovery notice once the late events are processed', async () => {
    const ids = await h.addEvents(p, 2);
    h.t.clock.advance(61_000);
    await h.checkAndSend();
    expect(h.tg.sent).toHaveLength(1);

    await processed(ids);
    h.t.clock.advance(1_000);
    const report = await h.checkAndSend();
    expect(report.sent.map((s) => s.phase)).toEqual(['recovered']);
    expect(h.tg.sent[1]?.text).toContain('RECOVERED: no event past its SLA');
  });

  it('computes the SLA share per rule and shows it in `b24hooks status --json`', async () => {
    const [fast] = await h.addEvents(p, 1);
    const [slow, pendingLate] = await h.addEvents(p, 2);
    await matched(fast!);
    await matched(slow!);
    await matched(pendingLate!);
    h.t.clock.advance(10_000);
    await processed([fast!]);
    h.t.clock.advance(80_000);
    await processed([slow!]);
    const [fresh] = await h.addEvents(p, 1); // within its SLA still: not decided, not counted
    await matched(fresh!);

    const since = now() - 24 * 3600_000;
    expect(await slaSummary(h.t.deps, portal.memberId, since)).toEqual([
      {
        rule: 'Deal to accounting',
        slaSeconds: 60,
        total: 3, // fast (within), slow (late), pendingLate (pending past its deadline)
        withinSla: 1,
        share: 0.3333,
      },
    ]);
    expect(await slaSummary(h.t.deps, 'another-portal', since)).toEqual([]);

    let out = '';
    const code = await statusCommand({
      deps: h.t.deps,
      flags: {},
      positionals: [],
      json: true,
      io: { out: (s) => (out += s), err: () => undefined },
    });
    expect(code).toBe(0);
    const doc = JSON.parse(out) as { total: { backlog: number }; sla: unknown[] };
    expect(doc.total.backlog).toBe(2);
    expect(doc.sla).toEqual([
      {
        rule: 'Deal to accounting',
        period: '24h',
        slaSeconds: 60,
        total: 3,
        withinSla: 1,
        share: 0.3333,
      },
      {
        rule: 'Deal to accounting',
        period: '7d',
        slaSeconds: 60,
        total: 3,
        withinSla: 1,
        share: 0.3333,
      },
    ]);

    // Renamed in the builder: its events are counted under the new name (they showed 0 of 0,
    // and the dashboard's total dropped with them).
    const renamed = {
      rules: MAP.rules.map((r) => ({ ...r, name: 'Deal to accounting (ERP)' })),
    } as EventMap;
    const saved = await saveMapSealed(h.t.deps, portal.memberId, renamed, {
      renamed: { from: 'Deal to accounting', to: 'Deal to accounting (ERP)' },
    });
    expect(saved.ok).toBe(true);
    expect(await slaSummary(h.t.deps, portal.memberId, since)).toEqual([
      {
        rule: 'Deal to accounting (ERP)',
        slaSeconds: 60,
        total: 3,
        withinSla: 1,
        share: 0.3333,
      },
    ]);
  });

  it('reads the pending breaches of many portals in the same few queries at every check', async () => {
    const steadyCheck = async () => {
      h.t.clock.advance(30_000);
      let queries = 0;
      const onQuery = () => queries++;
      db().on('query', onQuery);
      try {
        expect((await h.services.alerts.checkOnce()).sent).toEqual([]);
      } finally {
        db().off('query', onQuery);
      }
      return queries;
    };
    // Portals whose backlog is past the SLA: breaches recorded, their alerts fired.
    const late = async (n: number) => {
      for (let i = 0; i < n; i++) {
        const q = await seedPortal(h.t.deps);
        await h.addEvents({ id: q.row.id, memberId: q.memberId }, 2);
      }
      h.t.clock.advance(61_000);
      expect((await h.checkAndSend()).slaBreaches).toBe(2 * n);
    };
    await late(10);
    const q10 = await steadyCheck();
    await late(10);
    // Before: one more query for each portal with a breach pending (10 here).
    expect(await steadyCheck()).toBe(q10);
    // Once processed, every one of them recovers.
    for (const id of (await db()('events').pluck('id')) as number[])
      await finishEvent(db(), Number(id), { status: 'processed', at: now() });
    h.t.clock.advance(1_000);
    const report = await h.checkAndSend();
    expect(report.sent.filter((m) => m.kind === 'sla').map((m) => m.phase)).toEqual(
      new Array(20).fill('recovered'),
    );
  });

  it('records and alerts many portals past an SLA in the same few queries, one state and job each', async () => {
    const counted = async () => {
      let queries = 0;
      const onQuery = () => queries++;
      db().on('query', onQuery);
      try {
        return { report: await h.services.alerts.checkOnce(), queries };
      } finally {
        db().off('query', onQuery);
      }
    };
    await counted(); // the hourly upkeep
    const group = async (n: number) => {
      const added: TestPortal[] = [];
      for (let i = 0; i < n; i++) added.push(await seedPortal(h.t.deps));
      for (const q of added) await h.addEvents({ id: q.row.id, memberId: q.memberId }, 2);
      // Their first states (late-SLA cursors) stored, before their backlog is past the SLA.
      expect((await counted()).report.sent).toEqual([]);
      h.t.clock.advance(61_000);
      const first = await counted();
      expect(first.report.slaBreaches).toBe(2 * n);
      expect(first.report.sent.map((m) => [m.key, m.phase, m.channels])).toEqual(
        added.map((q) => [`sla:${q.memberId}`, 'firing', ['telegram', 'email']]),
      );
      return { added, queries: first.queries, at: now() };
    };
    // The first group's breaches make every later check read the recorded ones (one query).
    const w = await group(5);
    h.t.clock.advance(60_000);
    const a = await group(10);
    h.t.clock.advance(60_000);
    const b = await group(20);
    // Before: a transaction for each portal's breaches, a read of its pending ones, and a
    // transaction for its state and jobs (70 more queries for 10 more portals).
    expect(b.queries).toBe(a.queries);

    const ids = (await db()('events').orderBy('id').pluck('id')) as number[];
    expect(
      ((await db()('sla_breaches').orderBy('event_id')) as Array<Record<string, unknown>>).map(
        (r) => [Number(r.event_id), r.rule_name, r.seen, Number(r.detected_at)],
      ),
    ).toEqual(
      ids.map((id, k) => [
        Number(id),
        'Deal to accounting',
        'pending',
        k < 10 ? w.at : k < 30 ? a.at : b.at,
      ]),
    );
    const firing = [w, a, b].flatMap((g) => g.added.map((q) => ({ q, at: g.at })));
    const states = (await db()('alert_state')
      .where('kind', 'sla')
      .where('key', 'like', 'sla:%')) as Array<Record<string, unknown>>;
    expect(
      states
        .map((r) => ({
          ...r,
          key: String(r.key),
          fired_at: Number(r.fired_at),
          last_sent_at: Number(r.last_sent_at),
          version: Number(r.version),
        }))
        .sort((x, y) => (x.key < y.key ? -1 : 1)),
    ).toEqual(
      firing
        .map(({ q, at }) => ({
          key: `sla:${q.memberId}`,
          kind: 'sla',
          member_id: q.memberId,
          state: 'firing',
          pending_since: null,
          fired_at: at,
          last_sent_at: at,
          cursor: null,
          details: JSON.stringify({
            events: 2,
            byRule: [{ rule: 'Deal to accounting', events: 2 }],
            oldestSeconds: 61,
          }),
          version: 1,
          updated_at: expect.anything(),
        }))
        .sort((x, y) => (x.key < y.key ? -1 : 1)),
    );
    // One job per channel and alert, queued in the portals' order.
    const jobs = (await db()('jobs').where('type', 'alert').orderBy('id')) as Array<
      Record<string, unknown>
    >;
    expect(
      jobs.map((j) => [j.entity_key, Number(j.portal_id), Number(j.run_at), j.status]),
    ).toEqual(
      firing.flatMap(({ q, at }) =>
        ['telegram', 'email'].map((c) => [`alert:${c}:sla:${q.memberId}`, q.row.id, at, 'pending']),
      ),
    );

    // Their events processed: every one of them recovers, in the same few queries.
    const recover = async (g: { added: TestPortal[] }) => {
      const mine = (await db()('events')
        .whereIn(
          'portal_id',
          g.added.map((q) => q.row.id),
        )
        .pluck('id')) as number[];
      for (const id of mine)
        await finishEvent(db(), Number(id), { status: 'processed', at: now() });
      h.t.clock.advance(30_000);
      const r = await counted();
      expect(r.report.sent.map((m) => [m.key, m.phase])).toEqual(
        g.added.map((q) => [`sla:${q.memberId}`, 'recovered']),
      );
      return r.queries;
    };
    const ra = await recover(a);
    // Before: a transaction for each recovered state and its jobs (40 more queries here).
    expect(await recover(b)).toBe(ra);
    const rows = (await db()('alert_state')
      .where('kind', 'sla')
      .select('key', 'version')) as Array<{
      key: string;
      version: number | string;
    }>;
    const version = new Map(rows.map((r) => [r.key, Number(r.version)]));
    // The first group still fires; the others' states were written once more.
    expect(firing.map(({ q }) => version.get(`sla:${q.memberId}`))).toEqual(
      firing.map((_, k) => (k < 5 ? 1 : 2)),
    );
  });

  it('sends the alerts of many portals to their own channels, read with their batch', async () => {
    const others: TestPortal[] = [];
    for (let i = 0; i < 10; i++) others.push(await seedPortal(h.t.deps));
    const t0 = h.t.clock.now();
    await putSetting(db(), others[4]!.memberId, ALERT_SETTINGS.telegramChatId, ' -555 ', t0);
    await putSetting(db(), others[4]!.memberId, ALERT_SETTINGS.email, 'admin@acme.test', t0);
    for (const q of [portal, ...others])
      await h.addEvents({ id: q.row.id, memberId: q.memberId }, 1);
    h.t.clock.advance(61_000);
    let settingsReads = 0;
    const onQuery = (q: { sql: string }) => {
      if (/from [`"]settings[`"]/.test(q.sql)) settingsReads++;
    };
    db().on('query', onQuery);
    let report;
    try {
      report = await h.checkAndSend();
    } finally {
      db().off('query', onQuery);
    }
    expect(report.sent.map((m) => m.phase)).toEqual(new Array(11).fill('firing'));
    // Before: two reads of each portal's own channels, one alert each (22 here).
    expect(settingsReads).toBeLessThanOrEqual(2);
    const chats = h.tg.sent.map((m) => String(m.chat_id));
    expect(chats.filter((c) => c === '-555')).toHaveLength(1);
    expect(chats.filter((c) => c === '-100')).toHaveLength(10);
    expect(h.smtp.messages.filter((m) => m.to.includes('admin@acme.test'))).toHaveLength(1);
  });
});

/**
 * A rule's SLA is judged by its own steps (migration 0035): the event below matched two
 * rules, and the second one's target was down for two minutes, so the event was processed
 * late; the first rule's steps were done in seconds, and its SLA was kept.
 */
describe('the SLA of one of two rules an event matched', () => {
  let h: AlertHarness;
  let sink: HttpSink;
  let sheetDown = true;
  beforeEach(async () => {
    sheetDown = true;
    sink = await startHttpSink((req) =>
      req.url === '/sheet' && sheetDown ? { status: 503, body: { error: 'down' } } : { body: {} },
    );
    h = await startAlertHarness(
      {
        ALERT_BACKLOG_THRESHOLD: '1000',
        ACTION_PRIVATE_HOSTS: '127.0.0.1',
        RETRY_BASE_SECONDS: '10',
      },
      { worker: { concurrency: 1 } },
    );
  });
  afterEach(async () => {
    await h.close();
    await sink.close();
  });

  it("is kept when that rule's steps were done in time, though the other rule's made the event late", async () => {
    const portal = await seedPortal(h.t.deps);
    const step = (path: string) => ({
      type: 'http' as const,
      method: 'POST' as const,
      url: `${sink.url}${path}`,
      body: {},
    });
    await saveRuleMap(
      h.t.deps.db,
      portal.memberId,
      {
        rules: [
          { name: 'Invoice', on: ['ONCRMDEALUPDATE'], actions: [step('/invoice')], slaSeconds: 60 },
          { name: 'Sheet', on: ['ONCRMDEALUPDATE'], actions: [step('/sheet')], slaSeconds: 90 },
        ],
      },
      h.t.clock.now(),
    );
    const p = { id: portal.row.id, memberId: portal.memberId };
    const [id] = await h.addEvents(p, 1, { withJobs: true, entity: false });
    expect((await h.services.worker.drain()).map((o) => o.outcome)).toEqual(['retry']);
    // Two minutes on, past Invoice's SLA, the sheet answers again and the event is done.
    h.t.clock.advance(120_000);
    sheetDown = false;
    await h.services.worker.drain();
    const event = await h.t.deps.db('events').where({ id }).first();
    expect(event.status).toBe('processed');
    expect(Number(event.processed_at) - Number(event.received_at)).toBeGreaterThan(60_000);
    expect(sink.requests.filter((r) => r.url === '/invoice')).toHaveLength(1);
    await h.checkAndSend();

    const since = h.t.clock.now().getTime() - 24 * 3600_000;
    const figures = await slaSummary(h.t.deps, portal.memberId, since);
    expect(figures.find((f) => f.rule === 'Invoice')).toMatchObject({ total: 1, withinSla: 1 });
    // Control: the rule whose own step was late is judged late by the same figures.
    expect(figures.find((f) => f.rule === 'Sheet')).toMatchObject({ total: 1, withinSla: 0 });
    const breaches = (await h.t.deps.db('sla_breaches').pluck('rule_name')) as string[];
    expect(breaches).toEqual(['Sheet']);
    // The rollups agree with a recount from the tables.
    const sla = (rows: Awaited<ReturnType<typeof listRollups>>) =>
      rows
        .filter((x) => (x.kind === 'sla' || x.kind === 'late') && x.n !== 0)
        .map((x) => `${x.kind}/${x.grain}/${x.k1}/${x.k2}@${x.bucket}:${x.n}/${x.s}`)
        .sort();
    expect(sla(await listRollups(h.t.deps.db))).toEqual(sla(await recountRollups(h.t.deps.db)));
  });
});
