import { describe, expect, it } from '@jest/globals';
import { entityOf } from '../../server/intake/entity.js';
import { entityTypeOfEvent } from '../../server/rules/context.js';
import { eventFamily } from '../../server/rules/transitions.js';

/** What a delivery is about, as the intake stores it and the rules read it. */
describe('the record an event is about', () => {
  it('stores a user field event as about no record, not as the record of the field’s id', () => {
    // CORE processEntityUserFieldEvent: FIELDS[ID] is the user field's id.
    const data = { FIELDS: { ID: '41', ENTITY_ID: 'CRM_DEAL', FIELD_NAME: 'UF_CRM_1700000000' } };
    for (const e of [
      'ONCRMDEALUSERFIELDADD',
      'ONCRMLEADUSERFIELDUPDATE',
      'ONCRMCONTACTUSERFIELDDELETE',
      'ONCRMCOMPANYUSERFIELDSETENUMVALUES',
      'onCrmQuoteUserFieldAdd',
    ]) {
      expect([e, entityOf(e, data)]).toEqual([e, { type: null, id: null }]);
    }
    // Control: the record's own events keep their record.
    expect(entityOf('ONCRMDEALUPDATE', { FIELDS: { ID: '41' } })).toEqual({
      type: 'deal',
      id: '41',
    });
  });

  it('reads a move to another pipeline as a deal’s event, in a snapshot family of its own', () => {
    expect(entityOf('ONCRMDEALMOVETOCATEGORY', { FIELDS: { ID: '6675' } })).toEqual({
      type: 'deal',
      id: '6675',
    });
    expect(entityTypeOfEvent('ONCRMDEALMOVETOCATEGORY')).toBe('deal');
    expect(eventFamily('ONCRMDEALMOVETOCATEGORY')).toBe('ONCRMDEALMOVETOCATEGORY');
    expect(eventFamily('ONCRMDEALUPDATE')).toBe('deal');
  });
});
