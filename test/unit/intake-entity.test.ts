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

  it('names a task chat comment by its MESSAGE_ID, its ID being 0', () => {
    // CORE tasks classes/general/commentitem.php `onEventFilter`; on-task-comment-add.md.
    const data = {
      FIELDS_BEFORE: 'undefined',
      FIELDS_AFTER: { ID: '0', MESSAGE_ID: '1458', TASK_ID: '555' },
      IS_ACCESSIBLE_BEFORE: 'N',
      IS_ACCESSIBLE_AFTER: 'undefined',
    };
    expect(entityOf('ONTASKCOMMENTADD', data)).toEqual({ type: 'task_comment', id: '1458' });
    // The old form's comment, and an update, keep their comment's ID.
    expect(entityOf('ONTASKCOMMENTADD', { FIELDS_AFTER: { ID: '123', TASK_ID: '555' } })).toEqual({
      type: 'task_comment',
      id: '123',
    });
    expect(
      entityOf('ONTASKCOMMENTUPDATE', {
        FIELDS_BEFORE: { ID: '123', TASK_ID: '555' },
        FIELDS_AFTER: { ID: '123', TASK_ID: '555', ACTION: 'EDIT' },
      }),
    ).toEqual({ type: 'task_comment', id: '123' });
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
