import { describe, expect, it } from '@jest/globals';
import type { Rule } from '../../server/rules/model.js';
import {
  scenarioStatus,
  seedNewDeals,
  startPaidDealScenario,
  type PaidDealScenario,
} from '../helpers/scenario.js';
import {
  eachRecoveryScenario,
  expectEachWonDealActedOnOnce,
  updateDealsWhileDown,
} from '../helpers/recovery-scenario.js';
import type { UiHarness } from '../helpers/ui-harness.js';
import { getPage, openSession } from './ui/ui-client.js';

describe('loss recovery through offline events', () => {
  let s!: PaidDealScenario;
  const replace = eachRecoveryScenario('on', (x) => (s = x));

  const db = () => s.h.t.deps.db;
  const portalRow = () => db()('portals').where({ member_id: s.portal.memberId }).first();

  /** Deals at NEW, seen online while the app runs (their offline records are covered). */
  async function seedDeals(n: number): Promise<string[]> {
    s.h.t.clock.set(Date.now() + 2_000);
    return seedNewDeals(s, n);
  }

  it('binds the chosen events offline with our connector and ONOFFLINEEVENT online, once', async () => {
    const offline = s.portal.bindings.filter((b) => b.eventType === 'offline');
    expect(offline.map((b) => [b.event, b.connectorId]).sort()).toEqual([
      ['ONCRMDEALADD', 'b24hooks'],
      ['ONCRMDEALUPDATE', 'b24hooks'],
    ]);
    expect(s.portal.bindings.filter((b) => b.event === 'ONOFFLINEEVENT')).toHaveLength(1);
    const { syncBindings } = await import('../../server/install/bindings.js');
    const sync = await syncBindings(s.h.t.deps, await portalRow());
    expect(sync.offline.sort()).toEqual(['ONCRMDEALADD', 'ONCRMDEALUPDATE']);
    expect(s.portal.bindings.filter((b) => b.eventType === 'offline')).toHaveLength(2);
    expect(s.portal.bindings.filter((b) => b.event === 'ONOFFLINEEVENT')).toHaveLength(1);
  });

  it('runs the actions of every deal won while the app was down exactly once', async () => {
    const ids = await seedDeals(40);
    const before = await db()('action_runs').count({ n: '*' }).first();
    expect(Number(before?.n)).toBe(0);

    // 100 updates: 30 deals move to WON (some after other changes), the rest change titles.
    const won = await updateDealsWhileDown(s, ids);
    // One record per deal, the latest state.
    expect(s.portal.offlineEvents.filter((r) => r.event === 'ONCRMDEALUPDATE')).toHaveLength(40);

    s.h.resumeApp();
    const report = await s.h.services.offline.drainPortal(await portalRow());
    expect(report).toEqual({ read: 40, recovered: 40, covered: 0, failed: 0 });
    await s.drain();

    expect(s.portal.offlineEvents).toHaveLength(0);
    expect(won).toHaveLength(30);
    await expectEachWonDealActedOnOnce(s, won);

    // Draining again, and ONOFFLINEEVENT after our own timeline writes, runs nothing twice.
    expect(await s.h.services.offline.drainAll()).toEqual({
      read: 0,
      recovered: 0,
      covered: 0,
      failed: 0,
    });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(30);

    const status = await scenarioStatus(s);
    expect(status.recovered).toBe(40);
    expect(status.recovery).toMatchObject({ offline: 40, sweep: 0, lastGap: null });

    // The dashboard inside Bitrix24 shows the recovered count; the log marks the source.
    // (The UI client needs only the portal and the app URL of a harness.)
    const ui = { portal: s.portal, appUrl: s.h.appUrl } as unknown as UiHarness;
    const admin = await openSession(ui);
    const page = await getPage(ui, '/ui', admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toContain('id="fig-recovered"><b>40</b>');
    expect(page.html).toContain('<span id="recovered-offline">40</span>');
    expect(page.html).toContain('<span id="recovered-sweep">0</span>');
    expect(page.html).toContain('id="no-gap"');
    const log = await getPage(ui, '/ui/events', admin.cookie);
    expect(log.html.match(/data-source="offline"/g)?.length).toBeGreaterThanOrEqual(30);
  });

  it('runs the actions once when both the online and the offline delivery arrive for one change', async () => {
    const [id] = await seedDeals(1);
    s.h.t.clock.set(Date.now() + 65_000);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);

    // ONOFFLINEEVENT came with the change; its drain found the record covered.
    const notices = await db()('events').where({ event: 'ONOFFLINEEVENT' }).orderBy('id');
    expect(notices.at(-1)).toMatchObject({
      status: 'processed',
      last_error: 'offline drain: 1 read, 0 recovered, 1 covered',
    });
    expect(s.portal.offlineEvents).toHaveLength(0);
    expect(await db()('events').where({ source: 'offline' })).toHaveLength(0);
    await s.h.services.offline.drainAll();
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
  });

  it('counts a failed event as covering its change: the other rules’ steps are not sent again', async () => {
    // Two rules on one change (no `becomes`: nothing but coverage keeps a copy from matching);
    // the second fails for good (its template names a record a deal event does not have).
    const rule = (name: string, url: string, body: Record<string, string>): Rule => ({
      name,
      on: ['ONCRMDEALUPDATE'],
      when: [{ field: 'STAGE_ID', equals: 'WON' }],
      actions: [{ type: 'http', method: 'POST', url, body }],
    });
    await replace(
      await startPaidDealScenario(
        ({ accounting }) => ({
          rules: [
            rule('Won', `${accounting}/won`, { id: '{{deal.ID}}' }),
            rule('Broken', `${accounting}/broken`, { t: '{{lead.TITLE}}' }),
          ],
        }),
        { B24_OFFLINE_EVENTS: 'on' },
      ),
    );
    const [id] = await seedDeals(1);
    s.h.t.clock.set(Date.now() + 65_000);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    await s.portal.whenIdle();
    await s.h.services.intake.drain();
    // Its record is drained only after the online event has failed (here the ONOFFLINEEVENT
    // that came with it is dropped; on a portal, the notice is throttled to one per
    // minTimeout and the drain timer reads the record later).
    const notice = () => db()('events').where({ event: 'ONOFFLINEEVENT' });
    await db()('jobs').whereIn('event_id', notice().clone().select('id')).delete();
    await notice().delete();
    await s.drain();
    const online = await db()('events').where({ event: 'ONCRMDEALUPDATE', entity_id: id });
    expect(online.map((e: { status: string }) => e.status)).toEqual(['failed']);
    expect(s.accounting.requests.map((r) => r.url)).toEqual(['/won']);
    // Covered (before, recovered as a new event, which sent /won again under a new
    // idempotency key); the control: the record was there and was read.
    expect(await s.h.services.offline.drainAll()).toEqual({
      read: 1,
      recovered: 0,
      covered: 1,
      failed: 0,
    });
    await s.drain();
    expect(await db()('events').where({ source: 'offline' })).toHaveLength(0);
    expect(s.accounting.requests.map((r) => r.url)).toEqual(['/won']);
  });

  it('processes a record that is not covered without running its actions again', async () => {
    const [id] = await seedDeals(1);
    await s.portal.updateDeal(id!, { STAGE_ID: 'WON' });
    await s.drain();
    // The online delivery was received (by the app's clock) before the change's TIMESTAMP_X:
    // the record is not covered and gets processed.
    await s.h.services.offline.drainAll();
    await s.drain();
    expect(s.accounting.requests).toHaveLength(1);
    expect(s.portal.offlineEvents).toHaveLength(0);
    const recovered = await db()('events').where({ source: 'offline', entity_id: id });
    expect(recovered.map((e: { status: string }) => e.status)).toEqual(['skipped']);
  });
});
