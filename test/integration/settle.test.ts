import { afterEach, describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { firstAttemptAt } from '../../server/intake/deliver.js';
import { seedNewDeals, startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Bitrix24's `ts` has one-second resolution and a CRM event carries only the ID, so two
 * changes of a deal within one second arrive as identical deliveries; the second is only
 * counted (server/README.md#processing-retries-and-replay). The first is read
 * `EVENT_SETTLE_MS` (default 1 s) after its receipt, so the read shows both changes.
 */
describe('the settling time before an event is first read', () => {
  let s: PaidDealScenario | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  /**
   * A deal at NEW that the app has seen (its ONCRMDEALADD is due after the settling time),
   * with the portal's clock early in a second, so the next changes fall well inside it.
   */
  async function seenDealEarlyInASecond(sc: PaidDealScenario): Promise<string> {
    const [dealId] = await seedNewDeals(sc, 1);
    sc.h.t.clock.advance(1_000);
    await sc.drain();
    while (sc.portalNow() % 1_000 > 400) await sleep(20);
    return dealId!;
  }

  /** A deal at NEW that the app has seen, then a title change and the move to WON in one second. */
  async function twoChangesInOneSecond(sc: PaidDealScenario) {
    const dealId = await seenDealEarlyInASecond(sc);
    await sc.portal.updateDeal(dealId, { TITLE: 'Order 1 (confirmed)' });
    await sc.drain();
    const read = sc.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' });
    const before = (await read.clone().first()) as { status: string };
    await sc.portal.updateDeal(dealId, { STAGE_ID: 'WON' });
    await sc.drain();
    const answers = sc.portal.deliveries
      .filter((d) => d.event === 'ONCRMDEALUPDATE')
      .map((d) => JSON.parse(d.responseBody ?? '{}') as Record<string, unknown>);
    expect(answers).toEqual([{ ok: true }, { ok: true, duplicate: true }]);
    const rows = (await read.clone()) as Array<{ duplicates: number }>;
    expect(rows).toHaveLength(1);
    expect(rows[0]!.duplicates).toBe(1);
    return { statusAfterFirst: before.status, event: () => read.clone().first() };
  }

  it('reads a deal a second after the delivery, so a change later in the same second is not lost', async () => {
    // The production default, not the tests' 0 (test/helpers/test-deps.ts).
    s = await startPaidDealScenario(undefined, { EVENT_SETTLE_MS: undefined });
    expect(s.h.t.deps.config.worker.settleMs).toBe(1_000);
    const { statusAfterFirst, event } = await twoChangesInOneSecond(s);
    expect(statusAfterFirst).toBe('received');
    s.h.t.clock.advance(999);
    await s.drain();
    expect(await event()).toMatchObject({ status: 'received' });
    expect(s.accounting.requests).toHaveLength(0);

    s.h.t.clock.advance(1);
    await s.drain();
    expect(await event()).toMatchObject({ status: 'processed' });
    expect([
      s.accounting.requests.length,
      s.logistics.requests.length,
      s.sms.requests.length,
    ]).toEqual([1, 1, 1]);
  });

  it("tells the worker when a delivery's job is due, and nothing for a counted repeat", async () => {
    s = await startPaidDealScenario(undefined, { EVENT_SETTLE_MS: undefined });
    const dealId = await seenDealEarlyInASecond(s);
    const due: number[] = [];
    s.h.services.intake.onStored((at) => due.push(at));
    await s.portal.updateDeal(dealId, { TITLE: 'Order 1 (confirmed)' });
    await s.portal.updateDeal(dealId, { STAGE_ID: 'WON' });
    const row = (await s.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).first()) as {
      received_at: number | string;
      duplicates: number;
    };
    expect(row.duplicates).toBe(1);
    expect(due).toEqual([Number(row.received_at) + 1_000]);
  });

  it('loses the move to WON for good when the delivery is read at once (the control)', async () => {
    s = await startPaidDealScenario(undefined, { EVENT_SETTLE_MS: '0' });
    const { statusAfterFirst, event } = await twoChangesInOneSecond(s);
    // Read before the second change: the stage was still NEW.
    expect(statusAfterFirst).toBe('skipped');
    s.h.t.clock.advance(60_000);
    await s.drain();
    expect(await event()).toMatchObject({ status: 'skipped' });
    expect(s.accounting.requests).toHaveLength(0);
  });

  it('does not let a read made for an earlier event stand in for a later one read before its settling time', async () => {
    s = await startPaidDealScenario(undefined, { EVENT_SETTLE_MS: undefined });
    const sc = s;
    const dealId = await seenDealEarlyInASecond(sc);
    // E1 in one second of the portal's clock, E2 100 ms later (app clock) in the next one.
    await sc.portal.updateDeal(dealId, { TITLE: 'Order 1 (a)' });
    await sc.drain();
    sc.h.t.clock.advance(100);
    sc.shiftPortalTime(1_000);
    await sc.portal.updateDeal(dealId, { TITLE: 'Order 1 (b)' });
    await sc.drain();
    // E1's settling time: its read (the deal at NEW) is made after E2 was stored.
    sc.h.t.clock.advance(900);
    await sc.drain();
    const rows = () => sc.h.t.deps.db('events').where({ event: 'ONCRMDEALUPDATE' }).orderBy('id');
    expect((await rows()).map((r) => r.status)).toEqual(['skipped', 'received']);
    // Then the deal is won in E2's second: an identical delivery, only counted.
    await sc.portal.updateDeal(dealId, { STAGE_ID: 'WON' });
    await sc.drain();
    expect((await rows())[1].duplicates).toBe(1);
    // E2's settling time: E1's read must not serve it.
    sc.h.t.clock.advance(100);
    await sc.drain();
    expect((await rows()).map((r) => r.status)).toEqual(['skipped', 'processed']);
    expect(sc.accounting.requests).toHaveLength(1);
  });

  it('runs events that are not read at once, and an event verified late no earlier than its settling time', () => {
    const at = (event: string, entity_id: string | null = '7') => ({
      event,
      entity_id,
      received_at: 5_000,
    });
    expect(firstAttemptAt(1_000, at('ONAPPINSTALL', null))).toBe(5_000);
    expect(firstAttemptAt(1_000, at('ONOFFLINEEVENT', null))).toBe(5_000);
    expect(firstAttemptAt(1_000, at('ONCRMDEALDELETE'))).toBe(5_000);
    expect(firstAttemptAt(1_000, at('ONCRMDEALUPDATE'))).toBe(6_000);
    expect(firstAttemptAt(1_000, at('ONCRMDYNAMICITEMUPDATE_1038'))).toBe(6_000);
    // Verified when the application token arrived: 300 ms after receipt, then 5 s after.
    expect(firstAttemptAt(1_000, at('ONCRMDEALUPDATE'), 5_300)).toBe(6_000);
    expect(firstAttemptAt(1_000, at('ONCRMDEALUPDATE'), 10_000)).toBe(10_000);
  });
});
