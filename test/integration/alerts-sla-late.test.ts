import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { Knex } from 'knex';
import { createAlertMonitor, LATE_SETTLE_MS } from '../../server/alerts/index.js';
import type { EventMap } from '../../server/rules/model.js';
import { finishEvent } from '../../db/stores/events.js';
import {
  insertRuleMatches,
  markEvaluated,
  setRuleMatchStatus,
} from '../../db/stores/processing.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { findLateSlaBreachesStep } from '../../db/stores/sla.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal, type TestPortal } from '../helpers/event-builder.js';

const RULE = 'Deal to accounting';
const MAP: EventMap = {
  rules: [
    {
      name: RULE,
      on: ['ONCRMDEALUPDATE'],
      actions: [{ type: 'http', method: 'POST', url: 'https://accounting.example/api' }],
      slaSeconds: 60,
    },
  ],
};

describe('SLA: events finished past their SLA', () => {
  let h: AlertHarness;
  let portal: TestPortal;
  let p: { id: number; memberId: string };
  const db = () => h.t.deps.db;
  const now = () => h.t.clock.now().getTime();

  beforeEach(async () => {
    h = await startAlertHarness({ ALERT_BACKLOG_THRESHOLD: '1000' });
    portal = await seedPortal(h.t.deps);
    p = { id: portal.row.id, memberId: portal.memberId };
    await saveRuleMap(db(), undefined, MAP, h.t.clock.now());
  });
  afterEach(async () => {
    await h.close();
  });

  /** An event received now that matched the rule; finished `tookMs` later by `finish`. */
  async function receive(): Promise<number> {
    const [id] = await h.addEvents(p, 1);
    await insertRuleMatches(
      db(),
      [
        {
          event_id: id!,
          rule_name: RULE,
          rule_index: 0,
          reason: null,
          previous: null,
          sla_ms: 60_000,
        },
      ],
      now(),
    );
    await markEvaluated(db(), id!, now(), 0);
    return id!;
  }
  async function finish(id: number, at = now()) {
    await finishEvent(db(), id, { status: 'processed', at });
    await setRuleMatchStatus(db(), id, RULE, 'done', null);
  }
  const lateRows = () => db()('sla_breaches').where('seen', 'late').orderBy('event_id');

  /** The `after` bound of every late-search step the database was asked for. */
  function watchLateSteps(k: Knex): { afters: number[]; stop(): void } {
    const afters: number[] = [];
    const listen = (q: { sql: string; bindings?: unknown[] }) => {
      if (!/[`"]e[`"]\.[`"]processed_at[`"] > (\?|\$3)/.test(q.sql)) return;
      afters.push(Number(q.bindings?.[2]));
    };
    k.on('query', listen);
    return { afters, stop: () => k.off('query', listen) };
  }

  it('records an event finished past its SLA once, and not one finished within it', async () => {
    const late = await receive();
    const quick = await receive();
    h.t.clock.advance(10_000);
    await finish(quick);
    h.t.clock.advance(80_000);
    await finish(late);
    h.t.clock.advance(1_000);

    expect((await h.checkAndSend()).slaBreaches).toBe(1);
    expect(await lateRows()).toMatchObject([
      { event_id: late, rule_name: RULE, seen: 'late', sla_seconds: 60 },
    ]);
    h.t.clock.advance(30_000);
    expect((await h.checkAndSend()).slaBreaches).toBe(0);
    expect(await lateRows()).toHaveLength(1);
  });

  it('a restarted monitor searches from its stored cursor, not the last 24 hours', async () => {
    h.t.clock.advance(3 * 3600_000);
    await h.checkAndSend(); // the first search ever covers 24 h and stores where it got to
    const stored = now();
    const late = await receive();
    h.t.clock.advance(90_000);
    await finish(late);

    const restarted = createAlertMonitor(h.t.deps);
    const watch = watchLateSteps(db());
    h.t.clock.advance(30_000);
    const report = await restarted.checkOnce();
    watch.stop();

    expect(report.slaBreaches).toBe(1);
    expect(await lateRows()).toMatchObject([{ event_id: late, seen: 'late' }]);
    // Control: the search ran, and started just before the stored cursor.
    expect(watch.afters.length).toBeGreaterThan(0);
    expect(Math.min(...watch.afters)).toBe(stored - LATE_SETTLE_MS);
  });

  it('finds a late event whose finish time is older than the check that came before it', async () => {
    const late = await receive();
    h.t.clock.advance(90_000);
    // The rule's steps are done; the worker reads its clock, and commits the event only
    // after the next check has read its own.
    await setRuleMatchStatus(db(), late, RULE, 'done', null);
    const finishedAt = now();
    h.t.clock.advance(20_000);
    expect((await h.checkAndSend()).slaBreaches).toBe(0);
    await finishEvent(db(), late, { status: 'processed', at: finishedAt });
    h.t.clock.advance(30_000);

    expect((await h.checkAndSend()).slaBreaches).toBe(1);
    expect(await lateRows()).toMatchObject([{ event_id: late, seen: 'late' }]);
  });

  it('the SLA alert counts the breaches of pending events only, not those of finished ones', async () => {
    const late = await receive();
    h.t.clock.advance(90_000);
    await finish(late);
    await receive(); // still pending past the SLA at the check
    await receive();
    h.t.clock.advance(61_000);

    const report = await h.checkAndSend();
    expect(report.slaBreaches).toBe(3); // one late, two pending
    expect(report.sent.map((m) => [m.key, m.phase])).toEqual([[`sla:${p.memberId}`, 'firing']]);
    const state = await db()('alert_state').where('key', `sla:${p.memberId}`).first();
    expect(JSON.parse(String(state.details))).toMatchObject({
      events: 2,
      byRule: [{ rule: RULE, events: 2 }],
    });
  });

  it('reads the period in steps of at most the step size, and finds every late event', async () => {
    const ids: number[] = [];
    for (let i = 0; i < 7; i++) ids.push(await receive());
    h.t.clock.advance(30_000);
    for (const id of ids.slice(0, 3)) await finish(id); // within the SLA
    h.t.clock.advance(60_000);
    for (const id of ids.slice(3)) {
      h.t.clock.advance(1_000);
      await finish(id); // late
    }
    const ref = { id: p.id, memberId: p.memberId };
    const rule = { name: RULE, on: ['ONCRMDEALUPDATE'], slaSeconds: 60 };
    const range = { after: now() - 3600_000, upTo: now(), lateSince: now() - 3600_000 };
    const found: number[] = [];
    let steps = 0;
    for (let after: number | undefined = range.after; after !== undefined; steps++) {
      const step = await findLateSlaBreachesStep(db(), ref, [rule], { ...range, after }, now(), 3);
      found.push(...step.rows.map((r) => r.event_id));
      after = step.next;
    }
    expect(found.sort((a, b) => a - b)).toEqual(ids.slice(3));
    expect(steps).toBe(3); // 7 processed events, 3 a step
  });
});
