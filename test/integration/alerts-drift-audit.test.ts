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
});
