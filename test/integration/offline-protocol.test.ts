import { describe, expect, it } from '@jest/globals';
import type { PaidDealScenario } from '../helpers/scenario.js';
import { eachRecoveryScenario } from '../helpers/recovery-scenario.js';
import { syncBindings } from '../../server/install/bindings.js';

// Offline events as the Bitrix24 core handles them (CORE lib/api/event.php): `auth_connector` is
// auth data of the top-level request, and ONOFFLINEEVENT is rate-limited by its own minTimeout.
describe('offline events on a real portal', () => {
  let s!: PaidDealScenario;
  eachRecoveryScenario('on', (x) => (s = x));

  const portalRow = () => s.h.t.deps.db('portals').where({ member_id: s.portal.memberId }).first();
  const offlineCalls = () =>
    s.portal.calls.filter(
      (c) =>
        c.method.startsWith('event.offline.') ||
        (c.method.startsWith('event.') && c.params['event_type'] === 'offline'),
    );

  it('loses the connector of a command inside a batch, as the core does (the emulator model)', async () => {
    const row = await portalRow();
    const answer = await s.h.t.deps.bitrix.batch(row, {
      x: ['event.bind', { event: 'ONCRMCONTACTADD', event_type: 'offline', auth_connector: 'zz' }],
    });
    expect(answer.errors).toEqual({});
    const made = s.portal.bindings.filter((b) => b.event === 'ONCRMCONTACTADD');
    expect(made.map((b) => [b.eventType, b.connectorId])).toEqual([['offline', '']]);
  });

  it('sends auth_connector on the top-level request of every offline call, and removes stray bindings', async () => {
    // What the old code left on portals: an offline binding made inside a batch (connector '').
    const row = await portalRow();
    await s.h.t.deps.bitrix.batch(row, {
      x: ['event.bind', { event: 'ONCRMDEALUPDATE', event_type: 'offline' }],
    });
    expect(
      s.portal.bindings.filter((b) => b.eventType === 'offline').map((b) => b.connectorId),
    ).toEqual(['b24hooks', 'b24hooks', '']);
    const sync = await syncBindings(s.h.t.deps, await portalRow());
    expect(sync.offline.sort()).toEqual(['ONCRMDEALADD', 'ONCRMDEALUPDATE']);
    expect(
      s.portal.bindings
        .filter((b) => b.eventType === 'offline')
        .map((b) => [b.event, b.connectorId])
        .sort(),
    ).toEqual([
      ['ONCRMDEALADD', 'b24hooks'],
      ['ONCRMDEALUPDATE', 'b24hooks'],
    ]);

    // A drain: get and clear, each a direct call that carries the connector itself.
    const deal = await s.portal.addDeal({ TITLE: 'x', STAGE_ID: 'NEW' });
    await s.drain();
    await s.portal.updateDeal(deal.id, { TITLE: 'y' });
    await s.h.services.offline.drainAll();
    const calls = offlineCalls().filter((c) => c.method.startsWith('event.offline.'));
    expect(calls.map((c) => c.method)).toEqual(
      expect.arrayContaining(['event.offline.get', 'event.offline.clear']),
    );
    for (const c of offlineCalls()) {
      // Inside a batch the core would ignore it: every one must be a request of its own
      // or a command of a batch whose request carried the connector (checked below).
      if (c.inBatch) continue;
      if (c.method === 'batch') continue;
      expect(c.params['auth_connector']).toBe('b24hooks');
    }
    const batches = s.portal.calls.filter(
      (c) => c.method === 'batch' && JSON.stringify(c.params).includes('event_type=offline'),
    );
    // Install's and the sync's carry it; without it: this test's stray bind, and the sync's
    // unbind of that stray binding (connector '' is matched by a request without one).
    expect(batches.length).toBeGreaterThanOrEqual(3);
    expect(
      batches.filter((b) => b.params['auth_connector'] !== 'b24hooks').map((b) => b.params['cmd']),
    ).toEqual([
      { x: 'event.bind?event=ONCRMDEALUPDATE&event_type=offline' },
      { c0: 'event.unbind?event=ONCRMDEALUPDATE&event_type=offline' },
    ]);
    expect(s.portal.offlineEvents).toHaveLength(0);
  });

  it('records ONOFFLINEEVENT as bound after a re-sync, as after the install', async () => {
    // `portals` lists events_bound; an operator checks it to see loss recovery armed.
    const bound = async () => JSON.parse((await portalRow()).events_bound) as string[];
    expect(s.portal.bindings.some((b) => b.event === 'ONOFFLINEEVENT')).toBe(true);
    expect(await bound()).toContain('ONOFFLINEEVENT');
    const sync = await syncBindings(s.h.t.deps, await portalRow());
    expect(sync.events).toContain('ONOFFLINEEVENT');
    expect(await bound()).toContain('ONOFFLINEEVENT');
  });

  it('binds ONOFFLINEEVENT with minTimeout 60 and no add_auth, and gets at most one notice a minute', async () => {
    const notice = s.portal.bindings.filter((b) => b.event === 'ONOFFLINEEVENT');
    expect(notice.map((b) => b.options)).toEqual([{ minTimeout: 60 }]);
    const bind = s.portal.calls.find(
      (c) => c.method === 'event.bind' && c.params['event'] === 'ONOFFLINEEVENT',
    );
    expect(bind?.params['options']).toEqual({ minTimeout: '60' });

    const deal = await s.portal.addDeal({ TITLE: 'x', STAGE_ID: 'NEW' });
    await s.drain();
    const notices = () => s.portal.deliveries.filter((d) => d.event === 'ONOFFLINEEVENT').length;
    s.shiftPortalTime(61_000);
    const before = notices();
    for (let i = 0; i < 30; i++) {
      s.shiftPortalTime(1000);
      await s.portal.updateDeal(deal.id, { TITLE: `t${i}` });
    }
    await s.portal.whenIdle();
    // 31 changes within 31 seconds: at most one notice (control: at least one came).
    expect(notices() - before).toBe(1);
    s.shiftPortalTime(61_000);
    await s.portal.updateDeal(deal.id, { TITLE: 'later' });
    await s.portal.whenIdle();
    expect(notices() - before).toBe(2);
  });

  it('binds ONOFFLINEEVENT with the minTimeout of B24_OFFLINE_MIN_TIMEOUT', async () => {
    const next = await import('../helpers/scenario.js').then((m) =>
      m.startPaidDealScenario(undefined, {
        B24_OFFLINE_EVENTS: 'on',
        B24_OFFLINE_MIN_TIMEOUT: '300',
      }),
    );
    try {
      expect(
        next.portal.bindings.filter((b) => b.event === 'ONOFFLINEEVENT').map((b) => b.options),
      ).toEqual([{ minTimeout: 300 }]);
    } finally {
      await next.close();
    }
  });
});
