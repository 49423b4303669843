import { afterEach, beforeEach, expect } from '@jest/globals';
import { startPaidDealScenario, type PaidDealScenario } from './scenario.js';

// The recovery suites' Jest-side helpers. They live apart from scenario.ts, which the
// benchmarks import outside Jest, where '@jest/globals' cannot be loaded.

/**
 * A fresh paid-deal scenario for every test of the suite that calls it, with offline
 * events `on` or `off` and the app's clock set to the portal's, as in production (the
 * portal's DATE_MODIFY and TIMESTAMP_X against our received_at). `use` gets each one;
 * the function returned lets a test swap in a scenario of its own (the old one is closed,
 * the new one is closed after the test).
 */
export function eachRecoveryScenario(
  offline: 'on' | 'off',
  use: (s: PaidDealScenario) => void,
): (next: PaidDealScenario) => Promise<void> {
  let s: PaidDealScenario | undefined;
  beforeEach(async () => {
    s = await startPaidDealScenario(undefined, { B24_OFFLINE_EVENTS: offline });
    s.h.t.clock.set(Date.now());
    use(s);
  });
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });
  return async (next) => {
    await s?.close();
    s = next;
    use(next);
  };
}

/**
 * Each deal in `won` got the paid-deal map's actions exactly once: one invoice, one
 * shipment, one SMS and one timeline comment per deal, every action run succeeded, and
 * nothing else ran.
 */
export async function expectEachWonDealActedOnOnce(
  s: PaidDealScenario,
  won: string[],
): Promise<void> {
  expect(s.accounting.requests).toHaveLength(won.length);
  const dealIds = s.accounting.requests.map(
    (r) => (JSON.parse(r.body) as { dealId: string }).dealId,
  );
  expect(new Set(dealIds)).toEqual(new Set(won));
  expect(s.logistics.requests).toHaveLength(won.length);
  expect(s.sms.requests).toHaveLength(won.length);
  const runs = await s.h.t.deps.db('action_runs').select('status');
  expect(runs).toHaveLength(4 * won.length);
  expect(runs.every((r: { status: string }) => r.status === 'succeeded')).toBe(true);
  for (const id of won) {
    expect(s.portal.timeline.filter((c) => c.ENTITY_ID === id)).toHaveLength(1);
  }
}

/**
 * While the app is down, 100 updates of the 40 deals `ids`: every title changes, and the
 * first 30 deals move to WON, then get a comment. Every online delivery of them is lost
 * (not answered 200). Returns the deals won; the app stays paused.
 */
export async function updateDealsWhileDown(s: PaidDealScenario, ids: string[]): Promise<string[]> {
  await s.h.pauseApp();
  const won = ids.slice(0, 30);
  let updates = 0;
  for (const [i, id] of ids.entries()) {
    await s.portal.updateDeal(id, { TITLE: `Order ${i} (edited)` });
    updates++;
  }
  for (const id of won) {
    await s.portal.updateDeal(id, { STAGE_ID: 'WON' });
    updates++;
  }
  for (const id of won) {
    await s.portal.updateDeal(id, { COMMENTS: 'paid' });
    updates++;
  }
  expect(updates).toBe(100);
  await s.portal.whenIdle();
  const lost = s.portal.deliveries.filter((d) => d.event === 'ONCRMDEALUPDATE' && d.status !== 200);
  expect(lost).toHaveLength(100);
  return won;
}
