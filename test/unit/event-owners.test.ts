import { describe, expect, it } from '@jest/globals';
import { ownersOf } from '../../server/processing/owners.js';

/** The records a record belongs to, from the fields Bitrix24 answers (server/processing/owners.ts). */
describe('ownersOf', () => {
  it("takes an activity's owner and its bindings where they were read: the cards it shows in", () => {
    const call = { ID: '9', OWNER_TYPE_ID: '3', OWNER_ID: '4' };
    const bound = [
      { entityTypeId: 3, entityId: 4 },
      { entityTypeId: 2, entityId: 15 },
      { entityTypeId: 128, entityId: 1 },
    ];
    expect(ownersOf('activity', call, bound)).toEqual([
      { type: 'contact', id: '4' },
      { type: 'deal', id: '15' },
    ]);
    // The owner as well where the bindings leave it out (those the user may not read).
    expect(ownersOf('activity', call, [{ entityTypeId: 2, entityId: 15 }])).toEqual([
      { type: 'contact', id: '4' },
      { type: 'deal', id: '15' },
    ]);
    // None read, or none of a card's type: the owner.
    expect(ownersOf('activity', call, [])).toEqual([{ type: 'contact', id: '4' }]);
    expect(ownersOf('activity', call, [{ entityTypeId: 'x' }, null])).toEqual([
      { type: 'contact', id: '4' },
    ]);
  });

  it('reads an activity’s owner by CRM type id, as a string or a number', () => {
    expect(ownersOf('activity', { ID: '9', OWNER_TYPE_ID: '2', OWNER_ID: '15' })).toEqual([
      { type: 'deal', id: '15' },
    ]);
    expect(ownersOf('activity', { OWNER_TYPE_ID: 3, OWNER_ID: 4 })).toEqual([
      { type: 'contact', id: '4' },
    ]);
    // A quote (7) or a smart process owns no card tab of ours; no owner at all is none.
    expect(ownersOf('activity', { OWNER_TYPE_ID: '7', OWNER_ID: '15' })).toEqual([]);
    expect(ownersOf('activity', { OWNER_TYPE_ID: null, OWNER_ID: null })).toEqual([]);
  });

  it('reads a task’s bindings, skipping smart-process ones and repeats', () => {
    expect(
      ownersOf('task', { ufCrmTask: ['C_627', 'CO_591', 'L_1177', 'T88_3', 'D_1723', 'D_1723'] }),
    ).toEqual([
      { type: 'contact', id: '627' },
      { type: 'company', id: '591' },
      { type: 'lead', id: '1177' },
      { type: 'deal', id: '1723' },
    ]);
    expect(ownersOf('task', { title: 'no bindings selected' })).toEqual([]);
  });

  it('reads the deal of a quote, an old invoice and a smart-process item', () => {
    expect(ownersOf('quote', { DEAL_ID: '5' })).toEqual([{ type: 'deal', id: '5' }]);
    expect(ownersOf('invoice', { UF_DEAL_ID: 6 })).toEqual([{ type: 'deal', id: '6' }]);
    expect(ownersOf('dynamic:130', { parentId2: 7 })).toEqual([{ type: 'deal', id: '7' }]);
    expect(ownersOf('quote', { DEAL_ID: '0' })).toEqual([]);
  });

  it('owns nothing for a deal, a contact, or a record not read', () => {
    expect(ownersOf('deal', { ID: '1', CONTACT_ID: '2' })).toEqual([]);
    expect(ownersOf('activity', null)).toEqual([]);
    expect(ownersOf(null, { OWNER_TYPE_ID: '2', OWNER_ID: '1' })).toEqual([]);
  });
});
