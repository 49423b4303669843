import request from 'supertest';
import { Gauge } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { appParts } from '../../server/routes/index.js';
import type { EventMap } from '../../server/rules/model.js';
import { buildListener } from '../../server/start.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { eventBody, seedPortal, type TestPortal } from '../helpers/event-builder.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';

/** A rule on an entity-less event, so processing needs no portal REST call. */
const map = (url: string): EventMap => ({
  rules: [
    {
      name: 'Custom to sink',
      on: ['ONCUSTOMTEST'],
      actions: [{ type: 'http', method: 'POST', url: `${url}/hook`, body: { id: '{{event.id}}' } }],
      slaSeconds: 1,
    },
  ],
});

describe('alert channels and metrics', () => {
  let h: AlertHarness;
  let sink: HttpSink;
  let portal: TestPortal;

  beforeEach(async () => {
    h = await startAlertHarness({
      ALERT_BACKLOG_THRESHOLD: '1000',
      RETRY_BASE_SECONDS: '10',
      METRICS_TOKEN: 'metrics-secret',
    });
    sink = await startHttpSink();
    portal = await seedPortal(h.t.deps);
    await saveRuleMap(h.t.deps.db, undefined, map(sink.url), h.t.clock.now());
  });
  afterEach(async () => {
    await h.close();
    await sink.close();
  });

  /** Two events waiting past their 1 s SLA: the check queues one SLA alert per channel. */
  async function lateEventsAndAlert() {
    const ids = await h.addEvents({ id: portal.row.id, memberId: portal.memberId }, 2, {
      event: 'ONCUSTOMTEST',
      entity: false,
      withJobs: true,
    });
    h.t.clock.advance(2_000);
    const report = await h.services.alerts.checkOnce();
    expect(report.sent.map((s) => [s.kind, s.channels])).toEqual([['sla', ['telegram', 'email']]]);
    return ids;
  }

  it('processes events while the Telegram channel fails, and retries the alert on its own', async () => {
    const ids = await lateEventsAndAlert();
    h.tg.failNext({ code: 500, description: 'Internal Server Error' });

    const outcomes = await h.services.worker.runOnce();
    expect(outcomes.map((o) => [o.job.type, o.outcome]).sort()).toEqual([
      ['alert', 'done'],
      ['alert', 'retry'],
      ['process_event', 'done'],
      ['process_event', 'done'],
    ]);
    expect(await h.t.deps.db('events').whereIn('id', ids).pluck('status')).toEqual([
      'processed',
      'processed',
    ]);
    expect(sink.requests).toHaveLength(2);
    expect(h.smtp.messages).toHaveLength(1);
    expect(h.tg.sent).toHaveLength(0);
    const [tgJob] = await h.t.deps
      .db('jobs')
      .where({ type: 'alert', status: 'pending' })
      .select('payload', 'last_error', 'attempts');
    expect(JSON.parse(tgJob.payload as string)).toMatchObject({ channel: 'telegram', kind: 'sla' });
    expect(tgJob.last_error).toMatch(/HTTP 500/);

    // Not due yet: nothing is resent early.
    expect(await h.services.worker.drain()).toEqual([]);
    h.t.clock.advance(5 * 60_000);
    await h.services.worker.drain();
    expect(h.tg.sent).toHaveLength(1);
    expect(h.tg.sent[0]?.text).toContain('SLA breach');
    expect(await h.t.deps.db('jobs').where({ type: 'alert' }).pluck('status')).toEqual([
      'done',
      'done',
    ]);
  });

  it('serves /metrics in Prometheus text format with the named series', async () => {
    // A name is its own `event` label only when the app or the portal binds it (metrics.ts).
    await h.t.deps
      .db('portals')
      .where({ member_id: portal.memberId })
      .update({ events_bound: JSON.stringify(['ONCRMDEALUPDATE', 'ONCUSTOMTEST']) });
    h.t.deps.portals.invalidate(portal.memberId);
    await lateEventsAndAlert();
    await h.services.worker.drain();
    const listener = buildListener(h.t.deps, appParts(h.t.deps, h.services));
    // One stored delivery and one with a wrong token (counted, never processed here).
    for (const body of [
      eventBody({ portal, id: 7 }),
      eventBody({ portal, id: 8, applicationToken: 'forged-token' }),
    ]) {
      await request(listener)
        .post('/b24/events')
        .set('Content-Type', 'application/x-www-form-urlencoded')
        .send(body);
    }
    await h.services.intake.drain();

    expect((await request(listener).get('/metrics')).status).toBe(401);
    // The scheme's name is case-insensitive (a lower-case `bearer` was refused); a wrong
    // token is still refused.
    const scrape = (auth: string) => request(listener).get('/metrics').set('Authorization', auth);
    expect((await scrape('bearer metrics-secret')).status).toBe(200);
    expect((await scrape('bearer metrics-secreT')).status).toBe(401);
    expect((await scrape('Basic metrics-secret')).status).toBe(401);
    // A sample with no value yet (the event-loop lag's mean before its first reading, at
    // random in this test) is written `NaN`, as the format spells it; prom-client wrote `Nan`.
    new Gauge({
      name: 'b24hooks_test_unset',
      help: 'NaN',
      registers: [h.t.deps.metrics.registry],
    }).set(NaN);
    const res = await request(listener)
      .get('/metrics')
      .set('Authorization', 'Bearer metrics-secret');
    expect(res.status).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain/);

    // A strict reading of the text exposition format.
    const name = '[a-zA-Z_:][a-zA-Z0-9_:]*';
    const label = '[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\.)*"';
    const sample = new RegExp(
      `^(${name})(?:\\{(?:${label}(?:,${label})*)?\\})? (-?[0-9.]+(?:e[+-]?[0-9]+)?|NaN|[+-]Inf)$`,
    );
    const help = new RegExp(`^# HELP (${name}) .*$`);
    const type = new RegExp(`^# TYPE (${name}) (counter|gauge|histogram|summary|untyped)$`);
    const samples = new Map<string, string[]>();
    const types = new Map<string, string>();
    for (const line of (res.text as string).split('\n')) {
      if (line === '') continue;
      const t = type.exec(line);
      if (t) {
        types.set(t[1]!, t[2]!);
        continue;
      }
      if (help.test(line)) continue;
      const s = sample.exec(line);
      expect({ line, ok: Boolean(s) }).toEqual({ line, ok: true });
      const list = samples.get(s![1]!) ?? [];
      list.push(line);
      samples.set(s![1]!, list);
    }
    const has = (metric: string, ...parts: string[]) =>
      expect((samples.get(metric) ?? []).some((l) => parts.every((p) => l.includes(p)))).toBe(true);

    has('b24hooks_events_received_total', `portal="${portal.memberId}"`, 'event="ONCRMDEALUPDATE"');
    has('b24hooks_events_rejected_total', 'reason="token_mismatch"');
    has(
      'b24hooks_events_finished_total',
      `portal="${portal.memberId}"`,
      'event="ONCUSTOMTEST"',
      'status="processed"',
    );
    has('b24hooks_event_processing_seconds_bucket', 'event="ONCUSTOMTEST"', 'le="+Inf"');
    has('b24hooks_event_processing_seconds_count', 'event="ONCUSTOMTEST"');
    has('b24hooks_action_runs_total', 'type="http"', 'outcome="succeeded"');
    has('b24hooks_alerts_sent_total', 'channel="telegram"', 'kind="sla"');
    has('b24hooks_alerts_sent_total', 'channel="email"', 'kind="sla"');
    has('b24hooks_sla_breaches_total', `portal="${portal.memberId}"`, 'rule="Custom to sink"');
    has('b24hooks_backlog', 'portal="all"');
    has('b24hooks_backlog', `portal="${portal.memberId}"`);
    has('b24hooks_oldest_pending_seconds');
    expect(samples.get('b24hooks_test_unset')).toEqual(['b24hooks_test_unset NaN']);
    for (const [metric, kind] of [
      ['b24hooks_events_received_total', 'counter'],
      ['b24hooks_event_processing_seconds', 'histogram'],
      ['b24hooks_rest_calls_total', 'counter'],
      ['b24hooks_rest_rate_limit_waits_total', 'counter'],
      ['b24hooks_backlog', 'gauge'],
      ['b24hooks_sla_breaches_total', 'counter'],
    ] as const) {
      expect(types.get(metric)).toBe(kind);
    }
  });
});
