import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import type { EventMap } from '../../server/rules/model.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { createServices, type Services } from '../../server/services.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { onPg } from '../helpers/pg.js';
import { createTestDeps, type TestDeps } from '../helpers/test-deps.js';
import { waitFor } from '../reliability/lib/deliveries.js';

/** The step timeout of the rules below: what one portal may hold up another by. */
const STEP_TIMEOUT_MS = 3000;

const forward = (name: string, event: string, url: string): EventMap['rules'][number] => ({
  name,
  on: [event],
  actions: [{ type: 'http', method: 'POST', url, body: {}, timeoutMs: STEP_TIMEOUT_MS }],
});
const postTo = (url: string): EventMap => ({ rules: [forward('forward', 'ONCRMDEALUPDATE', url)] });

/**
 * Fair processing (server/README.md#processing-retries-and-replay) with real workers, real timers
 * and real loopback servers: one portal's action target never answers. On PostgreSQL the work is
 * shared by two instances (two pools on one database, two workers of half the concurrency each).
 */
describe('fair processing', () => {
  let h: AlertHarness;
  let hang: HttpSink;
  let fast: HttpSink;
  let second: { t: TestDeps; services: Services } | undefined;
  const workers = () => [h.services.worker, ...(second ? [second.services.worker] : [])];

  beforeEach(async () => {
    hang = await startHttpSink(() => ({ delayMs: 10 * 60_000 }));
    fast = await startHttpSink();
    const env = {
      ALERT_BACKLOG_THRESHOLD: '50',
      ACTION_PRIVATE_HOSTS: '127.0.0.1',
      STEP_TIMEOUT_MAX_SECONDS: String(STEP_TIMEOUT_MS / 1000),
    };
    const perInstance = onPg() ? 2 : 4;
    h = await startAlertHarness(env, { worker: { concurrency: perInstance } });
    if (onPg()) {
      const t = await createTestDeps(
        {
          ...env,
          ...h.t.dbEnv,
          TOKEN_ENCRYPTION_KEY: h.t.deps.config.tokenEncryptionKey.toString('hex'),
          TELEGRAM_API_URL: h.tg.url,
          TELEGRAM_BOT_TOKEN: h.tg.token,
          TELEGRAM_CHAT_ID: '-100',
          SMTP_URL: h.smtp.url,
          ALERT_EMAIL_TO: 'ops@example.com',
        },
        { clock: h.t.clock },
      );
      second = { t, services: createServices(t.deps, { worker: { concurrency: perInstance } }) };
    }
  });
  afterEach(async () => {
    // The targets go first: their sockets are destroyed, so the jobs hanging on them end
    // (and write their retry) while the databases are still open. Closed last, a hanging
    // job outlived the pool and logged after the tests were done (Jest exit 1 on PostgreSQL).
    await Promise.all([hang.close(), fast.close()]);
    if (second) {
      await second.services.close(1000);
      await second.t.close();
      second = undefined;
    }
    await h.close();
  });

  async function twoPortals() {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    const at = h.t.clock.now();
    await saveRuleMap(h.t.deps.db, a.memberId, postTo(`${hang.url}/hang`), at);
    await saveRuleMap(h.t.deps.db, b.memberId, postTo(`${fast.url}/fast`), at);
    return {
      a: { id: a.row.id, memberId: a.memberId },
      b: { id: b.row.id, memberId: b.memberId },
    };
  }
  const statuses = async (ids: number[]) =>
    (await h.t.deps.db('events').whereIn('id', ids).pluck('status')) as string[];

  it("finishes another portal's events within one step timeout while one portal's target hangs", async () => {
    const { a, b } = await twoPortals();
    await h.addEvents(a, 60, { withJobs: true, entity: false });
    const bIds = await h.addEvents(b, 10, { withJobs: true, entity: false });

    for (const w of workers()) w.start();
    const took = await waitFor(
      async () => (await statuses(bIds)).every((s) => s === 'processed'),
      STEP_TIMEOUT_MS,
      20,
    );
    expect(took).toBe(true);
    expect(fast.requests).toHaveLength(10);
    // Control: portal A's work was tried meanwhile, and is stuck on its target.
    expect(hang.requests.length).toBeGreaterThan(0);
    const running = await h.t.deps
      .db('jobs')
      .where({ portal_id: a.id, status: 'running' })
      .count({ n: '*' })
      .first();
    expect(Number(running?.n)).toBeGreaterThan(0);
  });

  it("cuts a step's own long timeout to STEP_TIMEOUT_MAX_SECONDS, so a portal alone on every slot frees them in time", async () => {
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    const at = h.t.clock.now();
    // The most a rule may ask for (5 minutes), at a target that never answers.
    const slow: EventMap = {
      rules: [
        {
          name: 'slow',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            { type: 'http', method: 'POST', url: `${hang.url}/hang`, body: {}, timeoutMs: 300_000 },
          ],
        },
      ],
    };
    await saveRuleMap(h.t.deps.db, a.memberId, slow, at);
    await saveRuleMap(h.t.deps.db, b.memberId, postTo(`${fast.url}/fast`), at);
    await h.addEvents({ id: a.row.id, memberId: a.memberId }, 20, {
      withJobs: true,
      entity: false,
    });
    for (const w of workers()) w.start();
    // Alone, portal A takes every slot (control: they all hang on its target).
    const aRunning = async () =>
      Number(
        (
          await h.t.deps
            .db('jobs')
            .where({ portal_id: a.row.id, status: 'running' })
            .count({ n: '*' })
            .first()
        )?.n,
      );
    expect(await waitFor(async () => (await aRunning()) === 4, 2000, 20)).toBe(true);
    const bIds = await h.addEvents({ id: b.row.id, memberId: b.memberId }, 5, {
      withJobs: true,
      entity: false,
    });
    const took = await waitFor(
      async () => (await statuses(bIds)).every((s) => s === 'processed'),
      STEP_TIMEOUT_MS + 2000,
      20,
    );
    expect(took).toBe(true);
    const aRows = (await h.t.deps
      .db('action_runs as r')
      .join('events as e', 'e.id', 'r.event_id')
      .where('e.portal_id', a.row.id)
      .whereNotNull('r.error')
      .pluck('r.error')) as string[];
    expect(aRows[0]).toContain(`timed out after ${STEP_TIMEOUT_MS} ms`);
  });

  it('sends a backlog alert on every channel while every worker is busy on a hanging target', async () => {
    const { a } = await twoPortals();
    await h.addEvents(a, 80, { withJobs: true, entity: false });
    for (const w of workers()) w.start();
    const slots = 4;
    const running = async () =>
      Number(
        (
          await h.t.deps
            .db('jobs')
            .where({ status: 'running', type: 'process_event' })
            .count({ n: '*' })
            .first()
        )?.n,
      );
    // Control: every worker slot is taken by the hanging target before the check runs.
    expect(await waitFor(async () => (await running()) === slots, 2000, 10)).toBe(true);
    expect(h.tg.sent).toHaveLength(0);

    const intervalMs = 300;
    h.services.alerts.start(intervalMs);
    // One check interval plus the channels' own latency (both are local here), within the
    // step timeout that would first free a worker (an alert queued behind the 80 events
    // would wait 80 / 4 step timeouts, a minute). The bound leaves a loaded machine (two test
    // files at once) 2.4 s for what takes tens of milliseconds when quiet.
    const arrived = await waitFor(
      () => h.tg.sent.length > 0 && h.smtp.messages.length > 0,
      intervalMs + 2400,
      10,
    );
    expect(intervalMs + 2400).toBeLessThan(STEP_TIMEOUT_MS);
    expect(arrived).toBe(true);
    expect(h.tg.sent[0]?.text).toContain('backlog of 80 events');
    expect(await running()).toBe(slots);
  });

  it("finishes another portal's event within about one step timeout while one portal's rules run many steps", async () => {
    // Portal A's rule has 25 steps of 400 ms (timeout 3 s) each, so one event of A runs 10 s.
    // A's events took every slot before B's event arrived, so the claim's portal share never
    // applied: before jobs gave their slot back between two steps, B waited 12 s. (A timeout
    // of 1 s gave B 2 s, which a loaded machine running two test files at once missed.)
    const stepTimeoutMs = 3000;
    const slow = await startHttpSink(() => ({ delayMs: 400 }));
    try {
      const a = await seedPortal(h.t.deps);
      const b = await seedPortal(h.t.deps);
      const at = h.t.clock.now();
      const step = (url: string) => ({
        type: 'http' as const,
        method: 'POST' as const,
        url,
        body: {},
        timeoutMs: stepTimeoutMs,
      });
      const steps = Array.from({ length: 25 }, () => step(`${slow.url}/step`));
      await saveRuleMap(
        h.t.deps.db,
        a.memberId,
        { rules: [{ name: 'many', on: ['ONCRMDEALUPDATE'], actions: steps }] },
        at,
      );
      await saveRuleMap(h.t.deps.db, b.memberId, postTo(`${fast.url}/fast`), at);
      const aIds = await h.addEvents({ id: a.row.id, memberId: a.memberId }, 4, {
        withJobs: true,
        entity: false,
      });
      let yields = 0;
      for (const w of workers()) w.on('job:yielded', () => yields++);
      for (const w of workers()) w.start();
      const running = async () =>
        Number(
          (await h.t.deps.db('jobs').where({ status: 'running' }).count({ n: '*' }).first())?.n,
        );
      expect(await waitFor(async () => (await running()) === 4, 3000, 10)).toBe(true);

      const bIds = await h.addEvents({ id: b.row.id, memberId: b.memberId }, 1, {
        withJobs: true,
        entity: false,
      });
      // One step timeout, plus the second a job holds its slot before it gives it back
      // between two steps (server/queue/slot-turn.ts).
      const took = await waitFor(
        async () => (await statuses(bIds)).every((s) => s === 'processed'),
        stepTimeoutMs + 1000,
        10,
      );
      expect(took).toBe(true);
      expect(fast.requests).toHaveLength(1);

      // A's events all finish, each step sent exactly once, no attempt spent on the yields.
      expect(
        await waitFor(
          async () => (await statuses(aIds)).every((s) => s === 'processed'),
          30_000,
          50,
        ),
      ).toBe(true);
      expect(yields).toBeGreaterThan(0);
      const keys = slow.requests.map((r) => r.headers['idempotency-key']);
      expect(keys).toHaveLength(4 * 25);
      expect(new Set(keys).size).toBe(4 * 25);
      const events = await h.t.deps
        .db('events')
        .whereIn('id', aIds)
        .select('attempts', 'last_error');
      expect(events.map((e) => [Number(e.attempts), e.last_error])).toEqual(
        Array(4).fill([1, null]),
      );
      const jobs = await h.t.deps
        .db('jobs')
        .whereIn('event_id', aIds)
        .select('attempts', 'status', 'last_error');
      expect(jobs.map((j) => [Number(j.attempts), j.status, j.last_error])).toEqual(
        Array(4).fill([1, 'done', null]),
      );
    } finally {
      await slow.close();
    }
  }, 60_000);

  it("finishes a portal's other events within one step timeout while one of its targets hangs", async () => {
    const a = await seedPortal(h.t.deps);
    const portal = { id: a.row.id, memberId: a.memberId };
    await saveRuleMap(
      h.t.deps.db,
      a.memberId,
      {
        rules: [
          forward('deals', 'ONCRMDEALUPDATE', `${hang.url}/hang`),
          forward('contacts', 'ONCRMCONTACTUPDATE', `${fast.url}/fast`),
        ],
      },
      h.t.clock.now(),
    );
    // The deal updates arrived first: claimed in arrival order alone, they would take every
    // worker slot and the contact updates would wait for the step timeout.
    await h.addEvents(portal, 60, { withJobs: true, entity: false });
    const contactIds = await h.addEvents(portal, 10, {
      withJobs: true,
      entity: false,
      event: 'ONCRMCONTACTUPDATE',
    });

    for (const w of workers()) w.start();
    const took = await waitFor(
      async () => (await statuses(contactIds)).every((s) => s === 'processed'),
      STEP_TIMEOUT_MS,
      20,
    );
    expect(took).toBe(true);
    expect(fast.requests).toHaveLength(10);
    // Control: the deal updates were tried meanwhile, and are stuck on their target.
    expect(hang.requests.length).toBeGreaterThan(0);
  });
});
