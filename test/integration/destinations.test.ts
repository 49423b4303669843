import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { destinationName } from '../../server/lib/destination-name.js';
import { getDestination, openDestinations, saveDestination } from '../../db/stores/destinations.js';
import { up as upgradeDestinations } from '../../db/migrations/0021-portal-http-destinations.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import { startHttpSink, type HttpSink, type SinkHandler } from '../helpers/http-sink.js';
import { runCliIn } from '../helpers/cli.js';
import { appParts } from '../../server/routes/index.js';
import { buildListener } from '../../server/start.js';
import request from 'supertest';
import { putSetting } from '../../db/stores/settings.js';
import { firingAlerts } from '../../server/ui/pages/dashboard-page.js';
import { ALERT_SETTINGS } from '../../db/stores/alerts.js';
import { jobRow } from '../../db/stores/jobs.js';
import type { Action } from '../../server/rules/model.js';
import { erasePortalData } from '../../server/retention/erase.js';

/**
 * Circuit breakers of the steps' destinations, on the manual clock with
 * `worker.drain()`: a target answering 503 opens after 5 failures in a row.
 */
describe('destinations', () => {
  let h: AlertHarness;
  let sink: HttpSink;
  let key: string;
  /** An http step's destination is the portal's own: host and portal id. */
  const keyOf = (url: string, portalId: number) => `http:${new URL(url).host}#${portalId}`;

  beforeEach(async () => {
    sink = await startHttpSink(() => ({ status: 503, body: { error: 'down' } }));
    h = await startAlertHarness(
      { ACTION_PRIVATE_HOSTS: '127.0.0.1', RETRY_BASE_SECONDS: '10' },
      { worker: { concurrency: 1 } },
    );
  });
  afterEach(async () => {
    await h.close();
    await sink.close();
  });

  const jobs = async () =>
    (await h.t.deps
      .db('jobs')
      .where({ type: 'process_event' })
      .orderBy('id')
      .select('id', 'status', 'attempts', 'waiting_for')) as Array<{
      id: number;
      status: string;
      attempts: number;
      waiting_for: string | null;
    }>;

  /** The portal's map: one step for every deal update. */
  const onUpdate = (memberId: string, action: Action) =>
    saveRuleMap(
      h.t.deps.db,
      memberId,
      { rules: [{ name: 'on update', on: ['ONCRMDEALUPDATE'], actions: [action] }] },
      h.t.clock.now(),
    );
  /** The portal's map: every deal update posted to `url`. */
  const forward = (memberId: string, url: string) =>
    onUpdate(memberId, { type: 'http', method: 'POST', url, body: {} });

  /** A portal whose six events open the sink's destination for it, then one alert check. */
  const openAndAlert = async () => {
    const p = await seedPortal(h.t.deps);
    key = keyOf(sink.url, p.row.id);
    await forward(p.memberId, `${sink.url}/in`);
    await h.addEvents({ id: p.row.id, memberId: p.memberId }, 6, {
      withJobs: true,
      entity: false,
    });
    await h.services.worker.drain();
    await h.checkAndSend();
    return p;
  };

  it('spends no attempts while a destination is open, and closes after a successful probe', async () => {
    const p = await seedPortal(h.t.deps);
    key = keyOf(sink.url, p.row.id);
    await forward(p.memberId, `${sink.url}/in`);
    await h.addEvents({ id: p.row.id, memberId: p.memberId }, 6, {
      withJobs: true,
      entity: false,
    });

    // Five failures in a row open the destination; the sixth job waits without trying.
    const first = await h.services.worker.drain();
    expect(first.map((o) => o.outcome)).toEqual([
      'retry',
      'retry',
      'retry',
      'retry',
      'retry',
      'paused',
    ]);
    expect(sink.requests).toHaveLength(5);
    expect(await getDestination(h.t.deps.db, key)).toMatchObject({ state: 'open', failures: 5 });
    expect((await jobs()).map((j) => j.attempts)).toEqual([1, 1, 1, 1, 1, 0]);
    expect((await jobs())[5]?.waiting_for).toBe(key);
    // What its event's page and the deal tab say: the host, not the portal's internal id.
    const sixth = await h.t.deps
      .db('jobs')
      .where({ id: (await jobs())[5]!.id })
      .first();
    expect(sixth.last_error).toMatch(
      new RegExp(`^destination ${new URL(sink.url).host} is down \\(circuit open`),
    );

    // The retries come due while the cool-down (30 s) runs: claimed, given back, no attempt.
    h.t.clock.advance(13_000);
    const waiting = await h.services.worker.drain();
    expect(waiting.map((o) => o.outcome)).toEqual([
      'paused',
      'paused',
      'paused',
      'paused',
      'paused',
    ]);
    expect(sink.requests).toHaveLength(5);
    expect((await jobs()).map((j) => j.attempts)).toEqual([1, 1, 1, 1, 1, 0]);
    expect(await openDestinations(h.t.deps.db)).toEqual([
      expect.objectContaining({ key, waiting: 6 }),
    ]);

    // status --json, /metrics and an alert on every channel name it and what waits.
    const status = await runCliIn(h.t, ['status', '--json']);
    expect(JSON.parse(status.out).destinations).toEqual([
      expect.objectContaining({ destination: key, failures: 5, waitingJobs: 6 }),
    ]);
    const listener = buildListener(h.t.deps, appParts(h.t.deps, h.services));
    const metrics = (await request(listener).get('/metrics')).text;
    expect(metrics).toContain(`b24hooks_destination_open_waiting_jobs{destination="${key}"} 6`);
    expect(metrics).toMatch(/^b24hooks_event_loop_delay_seconds\{quantile="0\.99"\} [0-9.e-]+$/m);
    await h.checkAndSend();
    // People read the host (the key's kind and the portal's internal id are the app's own).
    const down = `${destinationName(key)} is down, 6 events wait`;
    expect(down).not.toContain('#');
    expect(h.tg.sent.filter((m) => m.text.includes(down))).toHaveLength(1);
    expect(h.smtp.messages.filter((m) => m.raw.includes(down))).toHaveLength(1);

    // After the cool-down one probe goes; it succeeds and everything flows again.
    sink.handle(() => ({ body: { ok: true } }));
    h.t.clock.advance(31_000);
    const after = await h.services.worker.drain();
    expect(after.every((o) => o.outcome === 'done')).toBe(true);
    expect(after).toHaveLength(6);
    expect(sink.requests).toHaveLength(11);
    expect(await getDestination(h.t.deps.db, key)).toMatchObject({ state: 'closed', failures: 0 });
    expect((await jobs()).map((j) => [j.status, j.attempts])).toEqual([
      ['done', 2],
      ['done', 2],
      ['done', 2],
      ['done', 2],
      ['done', 2],
      ['done', 1],
    ]);
    expect(await openDestinations(h.t.deps.db)).toEqual([]);
    await h.checkAndSend();
    expect(
      h.tg.sent.filter((m) => m.text.includes(`${destinationName(key)} is reachable again`)),
    ).toHaveLength(1);
  });

  it("gives the worker back while the portal's REST budget would hold the read, and runs later", async () => {
    const p = await seedPortal(h.t.deps);
    const limiter = h.t.deps.bitrix.limiter;
    // A bucket of one request draining one per 100 s: after one call the next waits 100 s.
    limiter.setLimits(p.memberId, { drainPerSec: 0.01, burst: 3 });
    await limiter.acquire(p.memberId);
    await h.addEvents({ id: p.row.id, memberId: p.memberId }, 1, { withJobs: true });

    const [paused] = await h.services.worker.drain();
    expect(paused?.outcome).toBe('paused');
    const job = await h.t.deps.db('jobs').where({ type: 'process_event' }).first();
    expect(job).toMatchObject({ status: 'pending', attempts: 0, waiting_for: `rest:${p.domain}` });
    expect(Number(job.run_at) - h.t.clock.now().getTime()).toBeGreaterThan(90_000);

    // Once the budget has room the job is claimed again and reads (this seeded portal has no
    // tokens, so the read fails for good: the control that it really ran only now).
    limiter.setLimits(p.memberId, undefined);
    h.t.clock.advance(101_000);
    const [ran] = await h.services.worker.drain();
    expect(ran?.outcome).toBe('dead');
    expect(ran?.error).toContain('no stored tokens');
  });

  it("alerts a portal's own open destinations once, to its channels, however many hosts", async () => {
    const more = [await startHttpSink(() => ({ status: 503, body: {} }))];
    more.push(await startHttpSink(() => ({ status: 503, body: {} })));
    try {
      const a = await seedPortal(h.t.deps);
      const now = h.t.clock.now();
      await putSetting(h.t.deps.db, a.memberId, ALERT_SETTINGS.telegramChatId, '-555', now);
      await putSetting(h.t.deps.db, a.memberId, ALERT_SETTINGS.email, 'admin@acme.test', now);
      // Three hosts that answer 503, one per event type, five failures each: three open
      // destinations of A, each with its events waiting.
      const targets = [sink, ...more];
      const events = ['ONCRMDEALUPDATE', 'ONCRMDEALADD', 'ONCRMCONTACTUPDATE'];
      await saveRuleMap(
        h.t.deps.db,
        a.memberId,
        {
          rules: targets.map((x, i) => ({
            name: `to ${i}`,
            on: [events[i]!],
            actions: [{ type: 'http', method: 'POST', url: `${x.url}/in`, body: {} }],
          })),
        },
        now,
      );
      for (const event of events) {
        await h.addEvents({ id: a.row.id, memberId: a.memberId }, 6, {
          withJobs: true,
          entity: false,
          event,
        });
      }
      await h.services.worker.drain();
      const open = await openDestinations(h.t.deps.db);
      expect(open.map((d) => [d.key, d.waiting > 0]).sort()).toEqual(
        targets.map((x) => [keyOf(x.url, a.row.id), true]).sort(),
      );

      await h.checkAndSend();
      const down = h.tg.sent.filter((m) => /is down|are down/.test(m.text));
      // Before: three alerts (one per host), all to the operator's chat, none to A's.
      expect(down.map((m) => m.chat_id)).toEqual(['-555']);
      expect(down[0]!.text).toContain(`3 destinations of ${a.domain} (${a.memberId}) are down`);
      for (const x of targets) expect(down[0]!.text).toContain(`  ${new URL(x.url).host}: failed`);
      const mails = h.smtp.messages.filter((m) => m.raw.includes('are down'));
      expect(mails.map((m) => m.to)).toEqual([['admin@acme.test']]);
      // The portal's dashboard lists it among its firing alerts.
      const firing = await firingAlerts(h.t.deps.db, a.memberId);
      expect(firing.filter((f) => f.kind === 'destination')).toEqual([
        expect.objectContaining({
          summary: expect.stringContaining(`${new URL(sink.url).host}: `),
        }),
      ]);

      // Once every host answers again, one recovery for the portal.
      for (const x of targets) x.handle(() => ({ body: { ok: true } }));
      h.t.clock.advance(31_000);
      await h.services.worker.drain();
      expect(await openDestinations(h.t.deps.db)).toEqual([]);
      await h.checkAndSend();
      const back = h.tg.sent.filter((m) => m.text.includes('reachable again'));
      expect(
        back.map((m) => [m.chat_id, m.text.includes(`the destinations of ${a.domain}`)]),
      ).toEqual([['-555', true]]);
    } finally {
      for (const x of more) await x.close();
    }
  });

  it('ends the alert without a word once nothing waits for an open destination', async () => {
    const p = await openAndAlert();
    const about = () => h.tg.sent.filter((m) => m.text.includes(destinationName(key)));
    expect(about().map((m) => m.text.split('\n')[0])).toEqual([
      expect.stringContaining(`${destinationName(key)} is down`),
    ]);

    // The admin points the rule elsewhere: the waiting events go there and finish. The old
    // host stays open (no step names it, so no probe closes it), but holds nothing up.
    const fine = await startHttpSink(() => ({ body: { ok: true } }));
    try {
      await forward(p.memberId, `${fine.url}/in`);
      h.t.clock.advance(31_000);
      const done = await h.services.worker.drain();
      expect(done.map((o) => o.outcome)).toEqual(Array(6).fill('done'));
      expect(await openDestinations(h.t.deps.db)).toEqual([
        expect.objectContaining({ key, waiting: 0 }),
      ]);
      // Before: a reminder each cooldown for as long as the row stayed open.
      for (let i = 0; i < 3; i++) {
        h.t.clock.advance(16 * 60_000);
        await h.checkAndSend();
      }
      expect(about()).toHaveLength(1);
      expect(h.tg.sent.filter((m) => m.text.includes('reachable again'))).toEqual([]);
    } finally {
      await fine.close();
    }
  });

  it("alerts a REST endpoint's portal by the jobs that wait, after a rename too", async () => {
    const db = h.t.deps.db;
    const a = await seedPortal(h.t.deps);
    const old = await seedPortal(h.t.deps, { domain: a.domain });
    await db('portals').where({ id: old.row.id }).update({ status: 'uninstalled' });
    await putSetting(db, a.memberId, ALERT_SETTINGS.telegramChatId, '-555', h.t.clock.now());
    const now = h.t.clock.now().getTime();
    const rest = `rest:${a.domain}`;
    await saveDestination(db, {
      key: rest,
      state: 'open',
      failures: 5,
      cooldown_ms: 30_000,
      opened_at: now,
      retry_at: now + 30_000,
      last_error: 'HTTP 502\nDashboard: https://evil.example',
      updated_at: now,
    });
    await h.addEvents({ id: a.row.id, memberId: a.memberId }, 2, { withJobs: true });
    await db('jobs').where({ portal_id: a.row.id }).update({ waiting_for: rest });
    // The portal is renamed; its jobs still wait under the old endpoint's key.
    await db('portals').where({ id: a.row.id }).update({ domain: 'renamed.bitrix24.com' });
    await h.checkAndSend();
    const down = h.tg.sent.filter((m) => m.text.includes('is down'));
    // Before: matched by domain, the old uninstalled portal (or nobody, to the operator).
    expect(down.map((m) => [m.chat_id, m.text.split('\n')[0]])).toEqual([
      ['-555', `b24hooks ALERT: Bitrix24 ${a.domain} is down, 2 events wait`],
    ]);
    // A remote answer's line breaks cannot make lines of their own.
    expect(down[0]!.text).toContain('(last: HTTP 502 Dashboard: https://evil.example)');
  });

  it('keeps the alert through a probe in flight and then sends the recovery', async () => {
    const p = await openAndAlert();
    expect(
      h.tg.sent.filter((m) => m.text.includes(`${destinationName(key)} is down`)),
    ).toHaveLength(1);
    // Every job is claimed (a claimed job waits for nothing) while the probe runs.
    const db = h.t.deps.db;
    const now = h.t.clock.now().getTime();
    await db('jobs').update({ status: 'running', waiting_for: null });
    await db('destinations')
      .where({ key })
      .update({ retry_at: now + 120_000 });
    await h.checkAndSend();
    // Before: the alert ended there without a word, and the recovery below never came.
    expect(await firingAlerts(db, p.memberId)).toEqual(
      expect.arrayContaining([expect.objectContaining({ kind: 'destination' })]),
    );
    await db('destinations').where({ key }).update({ state: 'closed', failures: 0 });
    await db('jobs').update({ status: 'done' });
    await h.checkAndSend();
    expect(
      h.tg.sent.filter((m) => m.text.includes(`${destinationName(key)} is reachable again`)),
    ).toHaveLength(1);
  });

  it('keeps the alert through a probe of a destination past the 50 kept in its state', async () => {
    const p = await openAndAlert();
    const db = h.t.deps.db;
    let now = h.t.clock.now().getTime();
    // 50 more of the portal's hosts open, each with a waiting job; they sort before `key`.
    const extra = Array.from(
      { length: 50 },
      (_, i) => `http:0h${String(i).padStart(2, '0')}.example#${p.row.id}`,
    );
    for (const k of extra) {
      await saveDestination(db, {
        key: k,
        state: 'open',
        failures: 5,
        cooldown_ms: 30_000,
        opened_at: now,
        retry_at: now + 30_000,
        last_error: 'x',
        updated_at: now,
      });
      const job = { type: 'process_event' as const, event_id: null, portal_id: p.row.id };
      await db('jobs').insert({
        ...jobRow(
          { ...job, entity_key: null, payload: null, max_attempts: 5, run_at: now + 30_000 },
          now,
        ),
        waiting_for: k,
      });
    }
    h.t.clock.advance(16 * 60_000); // past the cooldown: a reminder keeps the first 50
    await h.checkAndSend();
    now = h.t.clock.now().getTime();
    const [state] = await db('alert_state').where({ key: `destinations:${p.memberId}` });
    const kept = (JSON.parse(state.details) as { list: Array<{ destination: string }> }).list;
    expect([kept.length, kept.some((d) => d.destination === key)]).toEqual([50, false]);
    // The 50 recover; `key` is mid-probe: its jobs claimed, its retry_at the probe's lease.
    await db('destinations').whereIn('key', extra).update({ state: 'closed', failures: 0 });
    await db('jobs').whereIn('waiting_for', extra).delete();
    await db('jobs').where({ waiting_for: key }).update({ status: 'running', waiting_for: null });
    await db('destinations')
      .where({ key })
      .update({ retry_at: now + 120_000 });
    const sent = h.tg.sent.length;
    await h.checkAndSend();
    // Before: "reachable again" while `key` was still being probed.
    expect(h.tg.sent.slice(sent).map((m) => m.text.split('\n')[0])).toEqual([]);
    expect((await firingAlerts(db, p.memberId)).map((a) => a.kind)).toContain('destination');
  });

  it("never opens for a portal because of another portal's failures at the same host", async () => {
    // One host: portal A's rule posts where it answers 503, portal B's where it answers 200.
    const shared = await startHttpSink((req) =>
      req.url.startsWith('/a') ? { status: 503, body: {} } : { status: 200, body: {} },
    );
    try {
      const a = await seedPortal(h.t.deps);
      const b = await seedPortal(h.t.deps);
      for (const [p, path] of [
        [a, '/a'],
        [b, '/b'],
      ] as const) {
        await forward(p.memberId, `${shared.url}${path}`);
      }
      await h.addEvents({ id: a.row.id, memberId: a.memberId }, 6, {
        withJobs: true,
        entity: false,
      });
      await h.services.worker.drain();
      // Control: A's five failures opened its destination there.
      const open = await openDestinations(h.t.deps.db);
      expect(
        open.map((d) => [d.key.startsWith(`http:${new URL(shared.url).host}`), d.failures]),
      ).toEqual([[true, 5]]);
      const before = shared.requests.length;
      await h.addEvents({ id: b.row.id, memberId: b.memberId }, 2, {
        withJobs: true,
        entity: false,
      });
      const outcomes = await h.services.worker.drain();
      expect(outcomes.map((o) => o.outcome)).toEqual(['done', 'done']);
      expect(shared.requests.slice(before).map((r) => r.url)).toEqual(['/b', '/b']);
      expect(open[0]!.key).toBe(keyOf(shared.url, a.row.id));
    } finally {
      await shared.close();
    }
  });

  it("never opens the shared SMTP server for all because one portal's recipients are refused", async () => {
    // Every portal's email steps and the e-mail alerts go through the operator's one SMTP
    // server. Portal A mails a recipient the server refuses for now (450, mailbox busy).
    const smtpKey = `smtp:127.0.0.1:${h.smtp.port}`;
    const mailTo = (memberId: string, to: string) =>
      onUpdate(memberId, { type: 'email', to, subject: 'deal', text: 'updated' });
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    await mailTo(a.memberId, 'busy@example.com');
    await mailTo(b.memberId, 'sales@example.com');
    h.smtp.refuseRecipient('busy@example.com', 450, 'Mailbox busy, try later');
    await h.addEvents({ id: a.row.id, memberId: a.memberId }, 6, {
      withJobs: true,
      entity: false,
    });
    const refused = await h.services.worker.drain();
    expect(refused.map((o) => o.outcome)).toEqual(Array(6).fill('retry'));
    expect((await getDestination(h.t.deps.db, smtpKey))?.state).not.toBe('open');
    await h.addEvents({ id: b.row.id, memberId: b.memberId }, 2, {
      withJobs: true,
      entity: false,
    });
    h.t.clock.advance(1);
    const sent = (await h.services.worker.drain()).filter((o) => o.outcome === 'done');
    expect(sent).toHaveLength(2);
    expect(h.smtp.messages.map((m) => m.to)).toEqual([
      ['sales@example.com'],
      ['sales@example.com'],
    ]);

    // Control: the server itself going away (421 to every recipient, and to the breaker's
    // own login) does open it.
    h.smtp.refuseRecipient('*', 421, 'Service not available, closing channel');
    const c = await seedPortal(h.t.deps);
    await mailTo(c.memberId, 'office@example.com');
    for (const p of [b, c])
      await h.addEvents({ id: p.row.id, memberId: p.memberId }, 3, {
        withJobs: true,
        entity: false,
      });
    await h.services.worker.drain();
    expect(await getDestination(h.t.deps.db, smtpKey)).toMatchObject({ state: 'open' });
  });

  it("never shows another portal's step error to a portal waiting for a shared channel, and erasure forgets it", async () => {
    // The SMTP server goes away while portal A mails its customer; its answer names her
    // address (as Postfix does). The circuit of the one shared SMTP server opens with that
    // text as its last error; portal B's mail then waits for it, and its event log said why
    // by quoting A's error: A's customer's address, on B's pages.
    const smtpKey = `smtp:127.0.0.1:${h.smtp.port}`;
    const customer = 'ann@a-customer.example';
    const mailTo = (memberId: string, to: string) =>
      onUpdate(memberId, { type: 'email', to, subject: 'deal', text: 'updated' });
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    const c = await seedPortal(h.t.deps);
    await mailTo(a.memberId, customer);
    await mailTo(b.memberId, 'sales@example.com');
    await mailTo(c.memberId, 'office@c.example');
    h.smtp.refuseRecipient(customer, 421, `<${customer}>: Service not available, closing channel`);
    h.smtp.refuseRecipient('office@c.example', 421, 'Service not available, closing channel');
    // The server then goes down: the breaker's check (a login) after the fifth fails too.
    h.smtp.goDownAfterRefusals(5);
    // Five failures in a row, A's last.
    for (const [p, n] of [
      [c, 2],
      [a, 3],
    ] as const)
      await h.addEvents({ id: p.row.id, memberId: p.memberId }, n, {
        withJobs: true,
        entity: false,
      });
    await h.services.worker.drain();
    // Control: the shared row holds A's text.
    const open = await getDestination(h.t.deps.db, smtpKey);
    expect(open).toMatchObject({ state: 'open' });
    expect(open?.last_error).toContain(customer);

    const [bEvent] = await h.addEvents({ id: b.row.id, memberId: b.memberId }, 1, {
      withJobs: true,
      entity: false,
    });
    h.t.clock.advance(1);
    const outcomes = await h.services.worker.drain();
    expect(outcomes.map((o) => o.outcome)).toContain('paused');
    const bRow = (await h.t.deps.db('events').where('id', bEvent).first()) as {
      last_error: string;
    };
    expect(bRow.last_error).toContain(`destination ${destinationName(smtpKey)} is down`);
    expect(bRow.last_error).not.toContain(customer);

    // The operator's alert on the shared channel copies the last error; erasing A's data
    // forgets both copies (whose step wrote it is not kept), keeping the breaker open.
    await h.checkAndSend();
    const operatorState = async () =>
      (await h.t.deps
        .db('alert_state')
        .where({ kind: 'destination' })
        .whereNull('member_id')
        .first('details')) as { details: string } | undefined;
    expect((await operatorState())?.details).toContain(customer);
    // A's own row of the shared server (its three failures) goes with its data.
    expect((await getDestination(h.t.deps.db, `${smtpKey}#${a.row.id}`))?.last_error).toContain(
      customer,
    );
    // So does the alert written from it, sent or still queued: it would mail the quote.
    const alertTexts = async () =>
      (
        (await h.t.deps.db('jobs').where({ type: 'alert' }).select('payload')) as Array<{
          payload: string;
        }>
      ).map((r) => (JSON.parse(r.payload) as { text: string }).text);
    expect((await alertTexts()).filter((t) => t.includes(customer))).not.toEqual([]);
    const erased = await erasePortalData(h.t.deps, a.row);
    expect(erased.redacted.destinations).toBeGreaterThanOrEqual(1);
    expect(erased.redacted.jobs).toBeGreaterThanOrEqual(1);
    expect((await alertTexts()).filter((t) => t.includes(customer))).toEqual([]);
    expect((await alertTexts()).filter((t) => t.includes('(last error erased)'))).not.toEqual([]);
    const after = await getDestination(h.t.deps.db, smtpKey);
    expect(after).toMatchObject({ state: 'open', last_error: null });
    expect((await operatorState())?.details).not.toContain(customer);
    expect((await getDestination(h.t.deps.db, `${smtpKey}#${a.row.id}`))?.last_error).toBeNull();
  });

  it('drops breaker rows under the old shared http key when upgrading (migration 0021)', async () => {
    const db = h.t.deps.db;
    const row = {
      state: 'open' as const,
      failures: 5,
      cooldown_ms: 30_000,
      opened_at: 1,
      retry_at: 2,
      last_error: 'x',
      updated_at: 1,
    };
    for (const key of ['http:erp.example', 'http:erp.example#3', 'rest:a.bitrix24.com']) {
      await saveDestination(db, { key, ...row });
    }
    await upgradeDestinations(db);
    const keys = (
      (await db('destinations').orderBy('key').select('key')) as Array<{ key: string }>
    ).map((r) => r.key);
    expect(keys).toEqual(['http:erp.example#3', 'rest:a.bitrix24.com']);
  });
});

/**
 * An alert harness whose SMS steps go to a stand-in gateway answering by `handler`, set up
 * afresh for each test; `textTo` gives a portal one rule texting `to` on every deal update.
 */
function smsGateway(env: (url: string) => Record<string, string>, handler: SinkHandler) {
  const g = {} as { h: AlertHarness; gateway: HttpSink };
  beforeEach(async () => {
    g.gateway = await startHttpSink(handler);
    g.h = await startAlertHarness(env(g.gateway.url), { worker: { concurrency: 1 } });
  });
  afterEach(async () => {
    await g.h.close();
    await g.gateway.close();
  });
  return Object.assign(g, {
    textTo: (memberId: string, to: string) =>
      saveRuleMap(
        g.h.t.deps.db,
        memberId,
        {
          rules: [
            { name: 'sms', on: ['ONCRMDEALUPDATE'], actions: [{ type: 'sms', to, text: 'ping' }] },
          ],
        },
        g.h.t.clock.now(),
      ),
  });
}

/**
 * sms.ru answers 231 when one number had the same text within the minute: a refusal of that
 * message, not the gateway being down. Every portal's SMS go through the operator's one
 * gateway (`sms:<host>`), so counting it as a failure let one portal, repeating a text to
 * one number, open the gateway for all of them (the red-team measured 20 of portal B's 30
 * texts held 10–20 s over 5 minutes).
 */
describe('the shared SMS gateway', () => {
  let answer: (to: string) => number;
  const sms = smsGateway(
    (url) => ({ SMS_PROVIDER: 'smsru', SMS_URL: url, SMS_TOKEN: 'api-id-123456' }),
    (req) => {
      // The breaker's own check (https://sms.ru/api/auth): down when every number is.
      if (req.url.startsWith('/auth/check')) {
        const code = answer('check');
        return {
          body:
            code === 100
              ? { status: 'OK', status_code: 100 }
              : { status: 'ERROR', status_code: code },
        };
      }
      const to = new URLSearchParams(req.body).get('to') ?? '';
      const code = answer(to);
      return {
        body: {
          status: 'OK',
          status_code: 100,
          sms: {
            [to]:
              code === 100
                ? { status: 'OK', status_code: 100, sms_id: '1' }
                : { status: 'ERROR', status_code: code, status_text: `code ${code}` },
          },
        },
      };
    },
  );
  const { textTo } = sms;

  it('never opens for all because one portal repeats a text to one number (231)', async () => {
    const key = `sms:${new URL(sms.gateway.url).host}`;
    const a = await seedPortal(sms.h.t.deps);
    const b = await seedPortal(sms.h.t.deps);
    await textTo(a.memberId, '+79990000001');
    await textTo(b.memberId, '+79990000002');
    answer = (to) => (to === '79990000001' || to === '+79990000001' ? 231 : 100);
    await sms.h.addEvents({ id: a.row.id, memberId: a.memberId }, 6, {
      withJobs: true,
      entity: false,
    });
    const refused = await sms.h.services.worker.drain();
    expect(refused.map((o) => o.outcome)).toEqual(Array(6).fill('retry'));
    expect((await getDestination(sms.h.t.deps.db, key))?.state).not.toBe('open');
    // A's texts wait the minute sms.ru's limit lasts, not the first retry's 30 s.
    const waits = (await sms.h.t.deps
      .db('jobs')
      .where({ type: 'process_event' })
      .select('run_at')) as Array<{
      run_at: number;
    }>;
    const now = sms.h.t.clock.now().getTime();
    expect(Math.min(...waits.map((w) => Number(w.run_at) - now))).toBeGreaterThanOrEqual(60_000);
    const before = sms.gateway.requests.length;
    await sms.h.addEvents({ id: b.row.id, memberId: b.memberId }, 3, {
      withJobs: true,
      entity: false,
    });
    const sent = await sms.h.services.worker.drain();
    expect(sent.map((o) => o.outcome)).toEqual(['done', 'done', 'done']);
    expect(sms.gateway.requests.length - before).toBe(3);

    // Control: the gateway itself unavailable (220) for every number does open it, once
    // two portals' texts fail.
    answer = () => 220;
    const c = await seedPortal(sms.h.t.deps);
    await textTo(c.memberId, '+79990000003');
    for (const p of [b, c])
      await sms.h.addEvents({ id: p.row.id, memberId: p.memberId }, 3, {
        withJobs: true,
        entity: false,
      });
    await sms.h.services.worker.drain();
    expect(await getDestination(sms.h.t.deps.db, key)).toMatchObject({ state: 'open' });
  });
});

/**
 * The operator's gateway answers 500 to one portal's texts (a bug of its own, set off by what
 * that portal sends) and 200 to everyone else's. Every portal's SMS go through it, and one
 * portal's five failures in a row opened it for all: portal B's texts then waited out
 * cool-downs of up to ten minutes, again and again, while the gateway worked.
 */
describe('a shared gateway that fails one portal only', () => {
  let failing = new Set<string>();
  /** The gateway itself down: 503 to everything, the breaker's check (a GET) too. */
  let down = false;
  const sms = smsGateway(
    (url) => ({ SMS_PROVIDER: 'generic', SMS_URL: `${url}/send` }),
    (req) => {
      if (down) return { status: 503, body: 'unavailable' };
      if (req.method === 'GET') return { status: 405, body: 'POST only' };
      const to = (JSON.parse(req.body) as { to: string }).to;
      return failing.has(to) ? { status: 500, body: { error: 'oops' } } : { body: { id: 'm' } };
    },
  );
  beforeEach(() => {
    failing = new Set();
    down = false;
  });
  const checks = () => sms.gateway.requests.filter((r) => r.method === 'GET').length;
  const { textTo } = sms;
  const events = (p: { row: { id: number }; memberId: string }, n: number) =>
    sms.h.addEvents({ id: p.row.id, memberId: p.memberId }, n, { withJobs: true, entity: false });
  const stateOf = async (key: string) => (await getDestination(sms.h.t.deps.db, key))?.state;
  /** Portals A, B and C, texting +15550001, …02 and …03 on every deal update. */
  const threePortals = async () => {
    const portal = async (n: number) => {
      const p = await seedPortal(sms.h.t.deps);
      await textTo(p.memberId, `+1555000${n}`);
      return p;
    };
    return [await portal(1), await portal(2), await portal(3)] as const;
  };

  it("opens for that portal alone; the others' texts go on, and the gateway down opens it for all", async () => {
    const key = `sms:${new URL(sms.gateway.url).host}`;
    const [a, b, c] = await threePortals();
    failing.add('+15550001');
    await events(a, 7);
    const refused = await sms.h.services.worker.drain();
    // Five failures open A's own row; its next two wait without spending attempts.
    expect(refused.map((o) => o.outcome)).toEqual([...Array(5).fill('retry'), 'paused', 'paused']);
    expect(await stateOf(`${key}#${a.row.id}`)).toBe('open');
    // The fifth failure asked the gateway: it answers, so the run was A's own.
    expect(checks()).toBe(1);
    expect(await stateOf(key)).not.toBe('open');
    // One failure of B's meanwhile (a timeout, say) does not open it for all either.
    failing.add('+15550002');
    await events(b, 1);
    expect((await sms.h.services.worker.drain()).map((o) => o.outcome)).toEqual(['retry']);
    expect(await getDestination(sms.h.t.deps.db, key)).toMatchObject({
      failures: 1,
      state: 'closed',
    });
    failing.delete('+15550002');
    const before = sms.gateway.requests.length;
    await events(b, 3);
    const sent = await sms.h.services.worker.drain();
    expect(sent.map((o) => o.outcome)).toEqual(['done', 'done', 'done']);
    expect(sms.gateway.requests.slice(before).map((r) => JSON.parse(r.body).to)).toEqual(
      Array(3).fill('+15550002'),
    );
    const waiting = await openDestinations(sms.h.t.deps.db);
    expect(waiting.map((d) => [d.key, d.waiting])).toEqual([[`${key}#${a.row.id}`, 2]]);

    // Control: the gateway down for everyone opens it for all: A's probe, B's one and C's
    // three are five failures in a row (B's texts had closed the run before), and the
    // gateway does not answer the check either.
    sms.h.t.clock.advance(31_000);
    down = true;
    await events(b, 1);
    await events(c, 3);
    await sms.h.services.worker.drain();
    expect(checks()).toBe(2);
    expect(await stateOf(key)).toBe('open');
    expect(await stateOf(`${key}#${c.row.id}`)).not.toBe('open');
    await events(c, 1);
    const held = await sms.h.services.worker.drain();
    expect(held.map((o) => o.outcome)).toEqual(['paused']);
  });

  /**
   * Two portals of one stranger (anyone may open two) text numbers the gateway refuses with
   * 500. Their failures in a row were not one portal's, and that alone opened the gateway for
   * all: portal C's texts then waited out cool-downs while the gateway worked.
   */
  it("never opens for all on two portals' failures while the gateway answers the operator", async () => {
    const key = `sms:${new URL(sms.gateway.url).host}`;
    const [a, b, c] = await threePortals();
    failing.add('+15550001');
    failing.add('+15550002');
    for (let i = 0; i < 4; i++) {
      await events(a, 1);
      await events(b, 1);
    }
    const refused = await sms.h.services.worker.drain();
    // Tried: eight failures from two portals, each sent.
    expect(refused.map((o) => o.outcome)).toEqual(Array(8).fill('retry'));
    expect(sms.gateway.requests.filter((r) => r.method === 'POST')).toHaveLength(8);
    expect(checks()).toBe(1);
    expect(await stateOf(key)).not.toBe('open');
    const before = sms.gateway.requests.length;
    await events(c, 3);
    const sent = await sms.h.services.worker.drain();
    expect(sent.map((o) => o.outcome)).toEqual(['done', 'done', 'done']);
    expect(sms.gateway.requests.slice(before).map((r) => JSON.parse(r.body).to)).toEqual(
      Array(3).fill('+15550003'),
    );
  });
});
