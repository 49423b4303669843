import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedNewDeals, startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

const DAY = 86_400_000;

/**
 * PORTAL_MESSAGES_PER_DAY: the operator's SMS gateway, SMTP server and Telegram bot are paid
 * for by the operator, and any stranger may install the app and write rules; one portal's
 * rules sent as many SMS as its deals changed. Past the day's messages its steps on that
 * channel wait for the next UTC day: nothing lost, no attempt spent, no step recorded failed.
 */
describe('a portal’s messages a day through the operator’s channels', () => {
  let s: PaidDealScenario;
  beforeAll(async () => {
    s = await startPaidDealScenario(undefined, { PORTAL_MESSAGES_PER_DAY: '2' });
  });
  afterAll(async () => {
    await s.close();
  });

  const events = async () =>
    (await s.h.t.deps
      .db('events')
      .where('event', 'ONCRMDEALUPDATE')
      .orderBy('id')
      .select('status', 'last_error')) as Array<{ status: string; last_error: string | null }>;

  it('sends the day’s two SMS, holds the third until the next day, and sends it then', async () => {
    // Start the day afresh: the quota counts by UTC day.
    const now = s.h.t.clock.now().getTime();
    s.h.t.clock.advance(Math.ceil(now / DAY) * DAY + 60_000 - now);
    const ids = await seedNewDeals(s, 3);
    for (const id of ids) await s.portal.updateDeal(id, { STAGE_ID: 'WON' });
    await s.drain();
    expect(s.sms.requests).toHaveLength(2);
    // Every invoice went out: only the SMS step waits, and the other channels' steps ran.
    expect(s.accounting.requests).toHaveLength(3);
    // Which of the three waits depends on the order they ran in (in parallel).
    const all = await events();
    expect(all.map((e) => e.status).sort()).toEqual(['processed', 'processed', 'received']);
    const waiting = all.find((e) => e.status === 'received')!;
    expect(waiting.last_error).toContain('PORTAL_MESSAGES_PER_DAY');
    expect(waiting.last_error).toContain('sent 2 SMS today');
    // Not a failed step, and no attempt spent.
    const failed = await s.h.t.deps
      .db('action_runs')
      .where('status', 'failed')
      .count({ n: '*' })
      .first();
    expect(Number((failed as { n: unknown }).n)).toBe(0);
    const job = (await s.h.t.deps.db('jobs').where({ status: 'pending' }).first('attempts')) as {
      attempts: number;
    };
    expect(job.attempts).toBe(0);
    // The next UTC day: it is sent, once.
    s.h.t.clock.advance(DAY);
    await s.drain();
    expect(s.sms.requests).toHaveLength(3);
    expect((await events()).map((e) => e.status)).toEqual(['processed', 'processed', 'processed']);
    expect(s.accounting.requests).toHaveLength(3);
  });
});
