import { afterEach, describe, expect, it } from '@jest/globals';
import { syncBindings } from '../../server/install/bindings.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Source keys (`auth_connector`) are a plan feature, Pro and above (DOCS
 * api-reference/events/offline-events.md; feature.get `rest_auth_connector`): below it the core
 * refuses any request that carries one, a batch as a whole, 403 WRONG_LICENSE. The app binds
 * its offline events with a connector where the plan has them and without one elsewhere.
 */
describe('offline events on plans with and without source keys', () => {
  let s: PaidDealScenario | undefined;
  afterEach(async () => {
    await s?.close();
    s = undefined;
  });

  const portalRow = (x: PaidDealScenario) =>
    x.h.t.deps.db('portals').where({ member_id: x.portal.memberId }).first();
  const offlineBindings = (x: PaidDealScenario) =>
    x.portal.bindings
      .filter((b) => b.eventType === 'offline')
      .map((b) => `${b.event}[${b.connectorId}]`)
      .sort();

  /** Two deals seen online, then (app down) one won; returns the calls made from then on. */
  async function loseAWin(x: PaidDealScenario) {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) {
      ids.push((await x.portal.addDeal({ TITLE: `Order ${i}`, STAGE_ID: 'NEW' })).id);
    }
    await x.drain();
    x.shiftPortalTime(60_000);
    await x.h.pauseApp();
    await x.portal.updateDeal(ids[0]!, { STAGE_ID: 'WON' });
    await x.portal.whenIdle();
    x.h.resumeApp();
    const from = x.portal.calls.length;
    return () => x.portal.calls.slice(from);
  }

  it('installs where the plan has none, binds offline events without a connector and recovers a lost win', async () => {
    s = await startPaidDealScenario(undefined, { B24_OFFLINE_EVENTS: 'on' }, { sourceKeys: false });
    // Tried and answered: the plan said no, and no request carried auth_connector.
    const feature = s.portal.calls.filter((c) => c.method === 'feature.get');
    expect(feature.map((c) => c.params.CODE)).toContain('rest_auth_connector');
    expect(s.portal.calls.filter((c) => c.status === 403)).toEqual([]);
    expect(offlineBindings(s)).toEqual(['ONCRMDEALADD[]', 'ONCRMDEALUPDATE[]']);
    expect(JSON.parse((await portalRow(s)).events_bound)).toContain('ONOFFLINEEVENT');

    const since = await loseAWin(s);
    const report = await s.h.services.offline.drainPortal(await portalRow(s));
    expect(report).toMatchObject({ read: 1, recovered: 1, failed: 0 });
    const offlineCalls = since().filter((c) => c.method.startsWith('event.offline.'));
    expect(offlineCalls.length).toBeGreaterThan(0);
    expect(offlineCalls.every((c) => c.status === 200 && !('auth_connector' in c.params))).toBe(
      true,
    );
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);

    // A second sync changes nothing.
    const binds = s.portal.calls.filter((c) => c.method.startsWith('event.')).length;
    const sync = await syncBindings(s.h.t.deps, await portalRow(s));
    expect(sync.offline.sort()).toEqual(['ONCRMDEALADD', 'ONCRMDEALUPDATE']);
    expect(sync.offlineFailed).toEqual([]);
    expect(s.portal.calls.filter((c) => c.method.startsWith('event.')).length).toBe(binds + 1);
  });

  it('binds with our connector where the plan has source keys', async () => {
    s = await startPaidDealScenario(undefined, { B24_OFFLINE_EVENTS: 'on' });
    expect(offlineBindings(s)).toEqual(['ONCRMDEALADD[b24hooks]', 'ONCRMDEALUPDATE[b24hooks]']);
    const since = await loseAWin(s);
    await s.h.services.offline.drainPortal(await portalRow(s));
    const gets = since().filter((c) => c.method === 'event.offline.get');
    expect(gets.length).toBeGreaterThan(0);
    expect(gets.every((c) => c.params.auth_connector === 'b24hooks')).toBe(true);
  });

  it('a plan that loses source keys: the drain binds again without a connector, and the next loss is recovered', async () => {
    s = await startPaidDealScenario(undefined, { B24_OFFLINE_EVENTS: 'on' });
    s.portal.setSourceKeys(false);
    const from = s.portal.calls.length;
    // Refused (the queue of our connector cannot be read any more): bound again instead.
    expect(await s.h.services.offline.drainPortal(await portalRow(s))).toMatchObject({ read: 0 });
    const refused = s.portal.calls.slice(from).filter((c) => c.status === 403);
    expect(refused.map((c) => c.method)).toEqual(['event.offline.get']);
    // The old bindings cannot be removed without source keys; the new ones are read.
    expect(offlineBindings(s)).toEqual([
      'ONCRMDEALADD[]',
      'ONCRMDEALADD[b24hooks]',
      'ONCRMDEALUPDATE[]',
      'ONCRMDEALUPDATE[b24hooks]',
    ]);

    const since = await loseAWin(s);
    const report = await s.h.services.offline.drainPortal(await portalRow(s));
    expect(report).toMatchObject({ read: 1, recovered: 1, failed: 0 });
    expect(since().filter((c) => c.status === 403)).toEqual([]);
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
  });
});
