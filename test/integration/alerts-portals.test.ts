import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { finishEvent } from '../../db/stores/events.js';
import { updatePortal } from '../../db/stores/portals.js';
import { insertRuleMatches, markEvaluated } from '../../db/stores/processing.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';

describe('failed-event digest, re-authorisation and subscription drift alerts', () => {
  let h: AlertHarness;
  let portal: TestPortal;
  const MIN = 60_000;

  beforeEach(async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '1000', ALERT_COOLDOWN_MINUTES: '15' });
    portal = await seedPortal(h.t.deps);
  });
  afterEach(async () => {
    await h.close();
  });

  async function fail(n: number, rule: string, error: string) {
    const ids = await h.addEvents({ id: portal.row.id, memberId: portal.memberId }, n);
    const now = h.t.clock.now().getTime();
    for (const id of ids) {
      await insertRuleMatches(
        h.t.deps.db,
        [{ event_id: id, rule_name: rule, rule_index: 0, reason: null, previous: null }],
        now,
      );
      await markEvaluated(h.t.deps.db, id, now, 0);
      await finishEvent(h.t.deps.db, id, { status: 'failed', lastError: error, at: now });
    }
    return ids;
  }

  it('groups events failed for good into one digest per cooldown', async () => {
    await fail(2, 'Invoice', 'Invoice / step1: HTTP 500 from POST https://acc.example/api');
    await fail(1, 'Shipment', 'Shipment / step1: HTTP 422 from POST https://log.example/api');
    h.t.clock.advance(1_000);
    const first = await h.checkAndSend();
    expect(first.sent.map((s) => [s.kind, s.phase, s.channels])).toEqual([
      ['failed', 'digest', ['telegram', 'email']],
    ]);
    const text = h.tg.sent[0]?.text ?? '';
    expect(text).toContain(`3 events failed for good on ${portal.domain}`);
    expect(text).toContain('Invoice / ONCRMDEALUPDATE: 2');
    expect(text).toContain('Shipment / ONCRMDEALUPDATE: 1');
    expect(text).toContain('HTTP 422 from POST https://log.example/api');

    // More failures within the cooldown wait for the next digest, which lists only them.
    h.t.clock.advance(5 * MIN);
    await fail(1, 'Invoice', 'Invoice / step1: timeout');
    h.t.clock.advance(1_000);
    expect((await h.checkAndSend()).sent).toEqual([]);
    h.t.clock.advance(10 * MIN);
    await h.checkAndSend();
    expect(h.tg.sent).toHaveLength(2);
    expect(h.tg.sent[1]?.text).toContain('1 event failed for good');
    expect(h.tg.sent[1]?.text).toContain('Invoice / step1: timeout');
    h.t.clock.advance(20 * MIN);
    expect((await h.checkAndSend()).sent).toEqual([]);
  });

  it('alerts when a portal needs re-authorisation and when it is authorised again', async () => {
    await updatePortal(h.t.deps.db, portal.row.id, { status: 'needs_reauth' });
    await h.checkAndSend();
    expect(h.tg.sent.map((m) => m.text.split('\n')[0])).toEqual([
      `b24hooks ALERT: ${portal.domain} (${portal.memberId}) needs re-authorisation`,
    ]);
    await updatePortal(h.t.deps.db, portal.row.id, { status: 'installed' });
    h.t.clock.advance(MIN);
    await h.checkAndSend();
    expect(h.tg.sent[1]?.text).toContain('RECOVERED');
    expect(h.smtp.messages).toHaveLength(2);
  });

  it('alerts on subscription drift only after it lasted the grace period', async () => {
    await updatePortal(h.t.deps.db, portal.row.id, {
      events_bound: JSON.stringify([
        'ONAPPINSTALL',
        'ONAPPUPDATE',
        'ONAPPUNINSTALL',
        'ONCRMDEALADD',
      ]),
    });
    expect((await h.checkAndSend()).sent).toEqual([]);
    h.t.clock.advance(9 * MIN);
    expect((await h.checkAndSend()).sent).toEqual([]);
    h.t.clock.advance(1 * MIN);
    const report = await h.checkAndSend();
    expect(report.sent.map((s) => [s.kind, s.phase])).toEqual([['drift', 'firing']]);
    expect(h.tg.sent[0]?.text).toContain('Expected events not bound');
    expect(h.tg.sent[0]?.text).toContain('ONCRMDEALUPDATE');

    await updatePortal(h.t.deps.db, portal.row.id, {
      events_bound: JSON.stringify([
        'ONAPPINSTALL',
        'ONAPPUPDATE',
        'ONAPPUNINSTALL',
        'ONCRMDEALADD',
        'ONCRMDEALUPDATE',
      ]),
    });
    h.t.clock.advance(MIN);
    expect((await h.checkAndSend()).sent.map((s) => s.phase)).toEqual(['recovered']);
  });

  it('stores the first states of many new portals in a few statements, the same states', async () => {
    const db = h.t.deps.db;
    // Portals missing a binding (a drift in its grace time) and no alert to send: the first
    // check stores a drift state and a late-SLA cursor for each of them, and says nothing.
    const add = async (n: number) => {
      const added: TestPortal[] = [];
      for (let i = 0; i < n; i++) added.push(await seedPortal(h.t.deps));
      await db('portals')
        .whereIn(
          'id',
          added.map((p) => p.row.id),
        )
        .update({ events_bound: JSON.stringify(['ONAPPINSTALL', 'ONCRMDEALADD']) });
      return added;
    };
    const check = async () => {
      let queries = 0;
      const onQuery = () => queries++;
      db.on('query', onQuery);
      try {
        expect((await h.services.alerts.checkOnce()).sent).toEqual([]);
      } finally {
        db.off('query', onQuery);
      }
      return queries;
    };
    const t0 = h.t.clock.now().getTime();
    await check(); // the hourly upkeep, and `portal`'s late-SLA cursor
    h.t.clock.advance(MIN);
    const first = await add(30);
    const q30 = await check();
    h.t.clock.advance(MIN);
    const second = await add(60);
    const q60 = await check();
    // Before: two statements or more for each new portal (30 more portals: 110 more).
    expect(q60).toBe(q30);
    const states = (await db('alert_state').orderBy('key')) as Array<Record<string, unknown>>;
    const expected = [
      { key: `sla-late:${portal.memberId}`, pending_since: null, cursor: t0, version: 1 },
      ...[
        ...first.map((p) => ({ p, t: t0 + MIN })),
        ...second.map((p) => ({ p, t: t0 + 2 * MIN })),
      ].flatMap(({ p, t }) => [
        { key: `drift:${p.memberId}`, pending_since: t, cursor: null, version: 1 },
        { key: `sla-late:${p.memberId}`, pending_since: null, cursor: t, version: 1 },
      ]),
    ];
    expect(
      states.map((r) => ({
        key: r.key,
        pending_since: r.pending_since === null ? null : Number(r.pending_since),
        cursor: r.cursor === null ? null : Number(r.cursor),
        version: Number(r.version),
      })),
    ).toEqual(expected.sort((a, b) => (a.key < b.key ? -1 : 1)));
  });
});
