import { describe, expect, it } from '@jest/globals';
import {
  planBindings,
  type CurrentBindings,
  type WantedBindings,
} from '../../server/install/binding-plan.js';
import { OFFLINE_CONNECTOR, OFFLINE_NOTICE } from '../../server/install/offline-binding.js';

/** The plan syncBindings runs: what is unbound, bound and kept, and with which connector. */
const HANDLER = 'https://app.example.com/b24/events';
const want = (over: Partial<WantedBindings> = {}): WantedBindings => ({
  handler: HANDLER,
  appBase: 'https://app.example.com/',
  authType: '1',
  events: ['ONAPPINSTALL', 'ONCRMDEALUPDATE', OFFLINE_NOTICE],
  offline: ['ONCRMDEALUPDATE'],
  placements: [{ code: 'CRM_DEAL_DETAIL_TAB', handler: 'https://app.example.com/tab', title: 'T' }],
  noticeOptions: { minTimeout: 60 },
  ...over,
});
const nothing = (over: Partial<CurrentBindings> = {}): CurrentBindings => ({
  events: [],
  offline: [],
  stray: [],
  placements: [],
  noticeStale: false,
  connector: OFFLINE_CONNECTOR,
  ...over,
});
const summary = (w: WantedBindings, c: CurrentBindings) =>
  planBindings(w, c).commands.map((p) => `${p.cmd[0]} ${p.name} [${p.connector}]`);

describe('planBindings', () => {
  it('binds everything wanted on an empty portal, offline commands with our connector', () => {
    expect(summary(want(), nothing())).toEqual([
      'event.bind ONAPPINSTALL []',
      'event.bind ONCRMDEALUPDATE []',
      `event.bind ${OFFLINE_NOTICE} []`,
      `event.bind offline:ONCRMDEALUPDATE [${OFFLINE_CONNECTOR}]`,
      'placement.bind CRM_DEAL_DETAIL_TAB []',
    ]);
    const notice = planBindings(want(), nothing()).commands[2]!.cmd[1];
    expect(notice).toMatchObject({ options: { minTimeout: 60 } });
  });

  it('keeps what is bound as wanted and sends nothing for it', () => {
    const plan = planBindings(
      want(),
      nothing({
        events: ['ONAPPINSTALL', 'ONCRMDEALUPDATE', OFFLINE_NOTICE].map((event) => ({
          event,
          handler: HANDLER,
          auth_type: '1',
        })),
        offline: [{ event: 'ONCRMDEALUPDATE', connector_id: OFFLINE_CONNECTOR, offline: 1 }],
        placements: [{ placement: 'CRM_DEAL_DETAIL_TAB', handler: 'https://app.example.com/tab' }],
      }),
    );
    expect(plan.commands).toEqual([]);
    expect([...plan.kept.events]).toEqual(['ONAPPINSTALL', 'ONCRMDEALUPDATE', OFFLINE_NOTICE]);
    expect([...plan.kept.offline]).toEqual(['ONCRMDEALUPDATE']);
    expect([...plan.kept.placements]).toEqual(['CRM_DEAL_DETAIL_TAB']);
  });

  it('unbinds before it binds: another auth_type, a stale notice, strays', () => {
    const current = nothing({
      events: [
        { event: 'ONCRMDEALUPDATE', handler: HANDLER, auth_type: '0' },
        { event: 'ONAPPINSTALL', handler: HANDLER, auth_type: '1' },
        { event: OFFLINE_NOTICE, handler: HANDLER, auth_type: '1' },
      ],
      stray: [{ event: 'ONCRMLEADADD', connector_id: '', offline: 1 }],
      noticeStale: true,
    });
    expect(summary(want({ offline: [], placements: [] }), current)).toEqual([
      'event.unbind ONCRMDEALUPDATE []',
      `event.unbind ${OFFLINE_NOTICE} []`,
      'event.bind ONCRMDEALUPDATE []',
      `event.bind ${OFFLINE_NOTICE} []`,
      'event.unbind stray:ONCRMLEADADD []',
    ]);
  });

  it('never touches placements of other handlers, and unbinds its own unwanted ones', () => {
    const current = nothing({
      placements: [
        { placement: 'CRM_LEAD_DETAIL_TAB', handler: 'https://other.example.org/tab' },
        { placement: 'CRM_LEAD_DETAIL_TAB', handler: 'https://app.example.com/old' },
      ],
    });
    expect(summary(want({ events: [], offline: [] }), current)).toEqual([
      'placement.unbind CRM_LEAD_DETAIL_TAB []',
      'placement.bind CRM_DEAL_DETAIL_TAB []',
    ]);
  });
});
