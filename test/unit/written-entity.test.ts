import { describe, expect, it } from '@jest/globals';
import { writtenEntity } from '../../server/processing/entity-reader.js';

/** The record a `bitrix` step writes, as the loop guard remembers it: the type its events are stored under. */
describe('writtenEntity', () => {
  it('names a quote or deal saved through crm.item as the quote or deal its event is stored under', () => {
    expect(writtenEntity('crm.item.update', { entityTypeId: 7, id: 5 })).toEqual({
      type: 'quote',
      id: '5',
    });
    expect(writtenEntity('crm.item.update', { entityTypeId: '2', id: '9' })).toEqual({
      type: 'deal',
      id: '9',
    });
    expect(writtenEntity('crm.item.update', { entityTypeId: 128, id: 3 })).toEqual({
      type: 'dynamic:128',
      id: '3',
    });
  });

  it('names an old invoice updated, and a record added by the ID in the answer', () => {
    expect(writtenEntity('crm.invoice.update', { id: 4, fields: {} })).toEqual({
      type: 'invoice',
      id: '4',
    });
    expect(writtenEntity('crm.invoice.add', { fields: {} }, 42)).toEqual({
      type: 'invoice',
      id: '42',
    });
    expect(writtenEntity('crm.quote.add', { fields: {} }, '17')).toEqual({
      type: 'quote',
      id: '17',
    });
    // No ID in the answer (a batch's, a refusal's): nothing to remember.
    expect(writtenEntity('crm.deal.add', { fields: {} }, { error: 'x' })).toBeUndefined();
    expect(writtenEntity('crm.invoice.delete', { id: 4 })).toBeUndefined();
  });

  it('names an item or a task added by the id inside the answer (found in review)', () => {
    expect(
      writtenEntity('crm.item.add', { entityTypeId: 128, fields: {} }, { item: { id: 31 } }),
    ).toEqual({ type: 'dynamic:128', id: '31' });
    expect(
      writtenEntity('tasks.task.add', { fields: {} }, { task: { id: '8', title: 'x' } }),
    ).toEqual({ type: 'task', id: '8' });
    expect(writtenEntity('crm.item.add', { entityTypeId: 128 }, { item: {} })).toBeUndefined();
  });
});
