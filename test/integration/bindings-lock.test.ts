import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { syncBindings } from '../../server/install/bindings.js';
import type { EventBinding } from '../emulator/types.js';
import { startPaidDealScenario, type PaidDealScenario } from '../helpers/scenario.js';

/**
 * Two instances syncing one portal's bindings at once: the core binds a handler under a lock,
 * and the request that finds the lock held answers ERROR_CORE "Unable to set event handler:
 * Process of binding the handler has already started" (b24restdocs
 * api-reference/events/event-bind.md, errors). The other request binds it: the app counted
 * the event as refused, left it out of the portal's bound events and logged a refusal.
 */
describe('an event binding another request is making', () => {
  let s: PaidDealScenario;
  beforeEach(async () => {
    s = await startPaidDealScenario(undefined, {
      B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMDEALDELETE',
    });
  });
  afterEach(async () => {
    await s.close();
  });

  const portalRow = () => s.h.t.deps.db('portals').where({ member_id: s.portal.memberId }).first();
  const forget = async () => {
    // Not bound when our sync looks (event.get), so it asks to bind it.
    const held = s.portal.bindings as EventBinding[];
    const at = held.findIndex((b) => b.event === 'ONCRMDEALDELETE');
    if (at >= 0) held.splice(at, 1);
    await s.h.t.deps
      .db('portals')
      .where({ member_id: s.portal.memberId })
      .update({ events_bound: '[]' });
  };

  it('counts as bound, as "Handler already binded" does', async () => {
    await forget();
    s.portal.failNext('event.bind', {
      status: 400,
      error: 'ERROR_CORE',
      description:
        'Unable to set event handler: Process of binding the handler has already started',
    });
    const sync = await syncBindings(s.h.t.deps, await portalRow());
    expect(sync.failed).toEqual([]);
    expect(sync.events).toContain('ONCRMDEALDELETE');
    expect(JSON.parse((await portalRow()).events_bound as string)).toContain('ONCRMDEALDELETE');
    // Control: another error is still a refusal.
    await forget();
    s.portal.failNext('event.bind', {
      status: 400,
      error: 'ERROR_CORE',
      description: 'Unable to set event handler: Event not found',
    });
    const refused = await syncBindings(s.h.t.deps, await portalRow());
    expect(refused.failed.map((f) => f.name)).toEqual(['ONCRMDEALDELETE']);
  });
});
