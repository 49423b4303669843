import { describe, expect, it } from '@jest/globals';
import { filterProblems, readLogForm, toLogPageFilter } from '../../server/ui/filters.js';

describe("the log's record-type filter", () => {
  it('keeps every record type the intake stores, a smart process without its type id too', () => {
    // server/intake/entity.ts stores `dynamic` when a delivery names no ENTITY_TYPE_ID.
    for (const etype of [
      'deal',
      'lead',
      'contact',
      'company',
      'quote',
      'task',
      'activity',
      'invoice',
      'dynamic:128',
      'dynamic',
    ]) {
      expect(readLogForm({ etype }).etype).toBe(etype);
    }
    expect(readLogForm({ etype: 'DYNAMIC:130' }).etype).toBe('dynamic:130');
  });

  it('drops what no record is stored as', () => {
    for (const etype of ['dynamic:', 'dynamic:x', 'dynamic:12345678901', 'deals', "deal' or 1=1"]) {
      expect(readLogForm({ etype }).etype).toBe('');
    }
  });
});

describe('the record and event boxes, read as the log shows them', () => {
  const filterOf = (src: Record<string, string>) => {
    const form = readLogForm(src);
    const filter = toLogPageFilter(form, 1);
    return { form, filter, problems: filterProblems(form, filter) };
  };

  it('reads "Deal 72" as the log\'s Record ID column shows it, in English and Russian', () => {
    for (const [entity, type] of [
      ['72', undefined],
      ['#72', undefined],
      ['Deal 72', 'deal'],
      ['deal:72', 'deal'],
      ['Сделка 72', 'deal'],
      ['Сделка №72', 'deal'],
      ['Счёт 72', 'invoice'],
      ['contact #72', 'contact'],
      // A smart process's item is stored as dynamic:<type id>: found by its id.
      ['Item 72', undefined],
      ['Элемент 72', undefined],
    ] as const) {
      const { filter, problems } = filterOf({ entity });
      expect([entity, filter.entityId, filter.entityType, problems]).toEqual([
        entity,
        '72',
        type,
        [],
      ]);
    }
    // The type box wins over the word.
    expect(filterOf({ entity: 'Deal 72', etype: 'lead' }).filter.entityType).toBe('lead');
  });

  it('reads an event by its code in any case or by what it means', () => {
    for (const [event, code] of [
      ['oncrmdealupdate', 'ONCRMDEALUPDATE'],
      ['A deal was changed', 'ONCRMDEALUPDATE'],
      ['a deal was changed.', 'ONCRMDEALUPDATE'],
      ['Изменена сделка', 'ONCRMDEALUPDATE'],
    ] as const) {
      const { form, filter, problems } = filterOf({ event });
      expect([form.event, filter.event, problems]).toEqual([code, code, []]);
    }
  });

  it('says when a value was left out, instead of listing every event under it', () => {
    expect(filterOf({ entity: 'Constructor 72' }).problems).toEqual(['log.badRecord']);
    const record = filterOf({ entity: 'Order 72 of May' });
    expect(record.filter.entityId).toBeUndefined();
    expect(record.problems).toEqual(['log.badRecord']);
    const event = filterOf({ event: 'A deal was won' });
    expect(event.filter.event).toBeUndefined();
    expect(event.form.event).toBe('A deal was won');
    expect(event.problems).toEqual(['log.badEvent']);
  });
});
