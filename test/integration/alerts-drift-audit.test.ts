import { afterEach, describe, expect, it } from '@jest/globals';
import { createAlertMonitor } from '../../server/alerts/index.js';
import { eventHandlerUrl } from '../../server/install/bindings.js';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

describe('subscription drift from the portal itself', () => {
  let s: PaidDealScenario;
  afterEach(async () => {
    await s.close();
  });

  it('notices with event.get that Bitrix24 no longer has a binding, and alerts after the grace period', async () => {
    s = await startPaidDealScenario();
    const deps = s.h.t.deps;
    const monitor = createAlertMonitor(deps, { auditEveryMs: 0, driftGraceMs: 60_000 });
    const drift = async () =>
      (await deps.db('alert_state').where('key', 'like', 'drift:%').first())?.state as
        string | undefined;

    await monitor.checkOnce();
    expect(await drift()).not.toBe('firing');

    // Someone (or an app update) removes the deal-update binding on the portal.
    const portal = (await findPortalByMemberId(deps.db, s.portal.memberId))!;
    await deps.bitrix.call(portal, 'event.unbind', {
      event: 'ONCRMDEALUPDATE',
      handler: eventHandlerUrl(deps),
      auth_type: 1,
    });
    expect(s.portal.bindings.map((b) => b.event)).not.toContain('ONCRMDEALUPDATE');

    await monitor.checkOnce();
    const stored = (await findPortalByMemberId(deps.db, s.portal.memberId))!;
    expect(JSON.parse(stored.events_bound ?? '[]')).not.toContain('ONCRMDEALUPDATE');
    s.h.t.clock.advance(61_000);
    const report = await monitor.checkOnce();
    expect(await drift()).toBe('firing');
    expect(report.sent.map((x) => [x.kind, x.phase])).toEqual([['drift', 'firing']]);
    expect(report.sent[0]?.text).toContain('ONCRMDEALUPDATE');
    await monitor.stop();
  });

  /**
   * The audit used to run for every due portal at once and the check waited for the last
   * answer: a portal whose REST endpoint hangs held every portal's alerts for the call's
   * 30 s timeout, every 15 minutes.
   */
  it('goes on without the audit of a portal whose REST endpoint does not answer', async () => {
    s = await startPaidDealScenario();
    const deps = s.h.t.deps;
    // The portal answers event.get only after 3 s.
    s.portal.delayNext('event.get', 3000);
    const calls = () => s.portal.calls.filter((c) => c.method === 'event.get').length;
    await deps.db('portals').update({ events_bound: null });
    const monitor = createAlertMonitor(deps, { auditEveryMs: 0, auditWaitMs: 300 });
    const before = calls(); // the install's own
    try {
      const report = await monitor.checkOnce();
      // The portal has not answered yet (its answer is recorded below).
      expect(calls()).toBe(before);
      expect(s.h.t.logs.text()).not.toContain('binding audit (event.get) failed');
      expect(report.sent).toEqual([]);
      // The audit goes on without the check, and what it reads is stored for the next one.
      for (let i = 0; i < 100 && calls() === before; i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(calls()).toBe(before + 1);
      for (let i = 0; i < 20; i++) {
        if ((await findPortalByMemberId(deps.db, s.portal.memberId))?.events_bound) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      const stored = await findPortalByMemberId(deps.db, s.portal.memberId);
      expect(JSON.parse(stored?.events_bound ?? '[]')).toContain('ONCRMDEALUPDATE');
    } finally {
      await monitor.stop();
    }
  });
});
