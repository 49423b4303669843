import { afterEach, describe, expect, it } from '@jest/globals';
import type { EventMap } from '../../server/rules/model.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startAlertHarness, type AlertHarness } from '../helpers/alert-harness.js';
import { seedPortal } from '../helpers/event-builder.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { waitFor } from '../reliability/lib/deliveries.js';

/** What the first step answers: about 9,000 characters of JSON, each use of it counted so. */
const PAD = 'x'.repeat(9000);
/** Uses of the first step's answer in the second step's body: about 5.2 Mi characters. */
const USES = 600;

/**
 * PORTAL_STEP_MB_PER_SECOND (server/queue/step-budget.ts): a portal whose steps fill in more
 * than its share of the main thread waits, without an attempt spent, while another portal's
 * events go on. One worker slot, so the order is known; a manual clock, so the waits are.
 */
describe("a portal's budget of characters its steps fill in", () => {
  let h: AlertHarness;
  let sink: HttpSink;
  afterEach(async () => {
    await sink?.close();
    await h?.close();
  });

  async function setUp(mbPerSecond: string) {
    sink = await startHttpSink((req) =>
      req.url === '/first' ? { body: { pad: PAD } } : { body: { ok: true } },
    );
    h = await startAlertHarness(
      { ACTION_PRIVATE_HOSTS: '127.0.0.1', PORTAL_STEP_MB_PER_SECOND: mbPerSecond },
      { worker: { concurrency: 1 } },
    );
    const a = await seedPortal(h.t.deps);
    const b = await seedPortal(h.t.deps);
    const large: EventMap = {
      rules: [
        {
          name: 'large',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            { type: 'http', name: 'first', method: 'POST', url: `${sink.url}/first`, body: {} },
            {
              type: 'http',
              name: 'second',
              method: 'POST',
              url: `${sink.url}/second`,
              body: Object.fromEntries(
                Array.from({ length: USES }, (_, i) => [`f${i}`, '{{steps.first.response}}']),
              ),
            },
          ],
        },
      ],
    };
    const small: EventMap = {
      rules: [
        {
          name: 'small',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'http', method: 'POST', url: `${sink.url}/small`, body: {} }],
        },
      ],
    };
    const at = h.t.clock.now();
    await saveRuleMap(h.t.deps.db, a.memberId, large, at);
    await saveRuleMap(h.t.deps.db, b.memberId, small, at);
    const A = { id: a.row.id, memberId: a.memberId };
    const B = { id: b.row.id, memberId: b.memberId };
    const aIds = await h.addEvents(A, 3, { withJobs: true, entity: false });
    const bIds = await h.addEvents(B, 5, { withJobs: true, entity: false });
    return { aIds, bIds };
  }
  const events = async (ids: number[]) =>
    (await h.t.deps
      .db('events')
      .whereIn('id', ids)
      .orderBy('id')
      .select('id', 'status', 'last_error')) as Array<{
      id: number;
      status: string;
      last_error: string | null;
    }>;
  const job = async (eventId: number) =>
    (await h.t.deps
      .db('jobs')
      .where({ event_id: eventId })
      .first('status', 'attempts', 'run_at')) as {
      status: string;
      attempts: number;
      run_at: number | string;
    };
  const sent = (path: string) => sink.requests.filter((r) => r.url === path).length;

  it('pauses the portal past its budget before its next step, and goes on when it is back', async () => {
    const { aIds, bIds } = await setUp('1');
    await h.services.worker.drain();
    // Two large steps (5.2 Mi characters each) took the 8 Mi bucket to -2.3 Mi: the third
    // event waits about 2.3 s before its first step, its attempt refunded.
    expect(sent('/second')).toBe(2);
    expect(sent('/first')).toBe(2);
    const [, , third] = await events(aIds);
    expect(third!.status).toBe('received');
    expect(third!.last_error).toMatch(
      /^waiting \d+ ms: this portal's steps filled in more than 1 MB a second \(PORTAL_STEP_MB_PER_SECOND\)/,
    );
    const j = await job(third!.id);
    expect(j.status).toBe('pending');
    expect(j.attempts).toBe(0);
    const waitMs = Number(j.run_at) - h.t.clock.now().getTime();
    expect(waitMs).toBeGreaterThan(2000);
    expect(waitMs).toBeLessThan(2700);
    // The other portal was not held.
    expect((await events(bIds)).map((e) => e.status)).toEqual(Array(5).fill('processed'));
    expect(sent('/small')).toBe(5);

    h.t.clock.advance(waitMs);
    await h.services.worker.drain();
    expect((await events(aIds)).map((e) => e.status)).toEqual(Array(3).fill('processed'));
    expect(sent('/second')).toBe(3);
  });

  it('claims none of its jobs while it waits, in the running loop', async () => {
    const { aIds, bIds } = await setUp('1');
    h.services.worker.start();
    const bDone = await waitFor(
      async () => (await events(bIds)).every((e) => e.status === 'processed'),
      10_000,
      20,
    );
    expect(bDone).toBe(true);
    expect(
      await waitFor(async () => sent('/second') === 2 && sink.requests.length === 9, 5000, 20),
    ).toBe(true);
    // The third event's job was never claimed: still pending, no attempt, no error written.
    const [, , third] = await events(aIds);
    expect(third).toMatchObject({ status: 'received', last_error: null });
    expect(await job(third!.id)).toMatchObject({ status: 'pending', attempts: 0 });
    h.t.clock.advance(2700);
    h.services.worker.notify();
    expect(
      await waitFor(
        async () => (await events(aIds)).every((e) => e.status === 'processed'),
        10_000,
        20,
      ),
    ).toBe(true);
  });

  it('holds nobody back at 0 (off): the control', async () => {
    const { aIds } = await setUp('0');
    await h.services.worker.drain();
    expect((await events(aIds)).map((e) => e.status)).toEqual(Array(3).fill('processed'));
    expect(sent('/second')).toBe(3);
  });
});
