import { describe, expect, it } from '@jest/globals';
import { evaluateRule, matchRules } from '../../server/rules/conditions.js';
import { buildTemplateContext } from '../../server/rules/context.js';
import type { EventMap, Rule } from '../../server/rules/model.js';
import { isAddEvent, takeSnapshot, watchedFields } from '../../server/rules/transitions.js';

const update = { name: 'ONCRMDEALUPDATE', entityType: 'deal', entityId: '42' };
const add = { name: 'ONCRMDEALADD', entityType: 'deal', entityId: '42' };
const won: Rule = {
  name: 'won',
  on: ['ONCRMDEALADD', 'ONCRMDEALUPDATE'],
  when: [{ field: 'STAGE_ID', becomes: 'WON' }],
  actions: [{ type: 'sms', to: '{{contact.PHONE}}', text: 'paid' }],
};
const deal = (fields: Record<string, unknown>) => ({ ID: '42', ...fields });

describe('becomes', () => {
  it('holds when the stage moves from NEW to WON', () => {
    const r = evaluateRule(won, {
      event: update,
      entity: deal({ STAGE_ID: 'WON' }),
      previous: { STAGE_ID: 'NEW' },
    });
    expect(r).toEqual({ matched: true, reason: 'STAGE_ID became "WON" (was "NEW")' });
  });

  it('does not hold when the deal was already WON', () => {
    const r = evaluateRule(won, {
      event: update,
      entity: deal({ STAGE_ID: 'WON' }),
      previous: { STAGE_ID: 'WON' },
    });
    expect(r).toEqual({ matched: false, reason: 'STAGE_ID was already "WON"' });
  });

  it('does not hold when the deal moved somewhere else', () => {
    const r = evaluateRule(won, {
      event: update,
      entity: deal({ STAGE_ID: 'LOSE' }),
      previous: { STAGE_ID: 'NEW' },
    });
    expect(r.matched).toBe(false);
    expect(r.reason).toBe('STAGE_ID is "LOSE", not "WON"');
  });

  it('holds for a deal created directly in WON (first sighting on an ADD event)', () => {
    const r = evaluateRule(won, {
      event: add,
      entity: deal({ STAGE_ID: 'WON' }),
      previous: undefined,
    });
    expect(r).toEqual({ matched: true, reason: 'STAGE_ID became "WON" (new record)' });
  });

  it('does not hold on the first sighting of an old deal on an UPDATE event', () => {
    const r = evaluateRule(won, {
      event: update,
      entity: deal({ STAGE_ID: 'WON' }),
      previous: undefined,
    });
    expect(r.matched).toBe(false);
    expect(r.reason).toMatch(/earlier value is unknown \(first sighting on ONCRMDEALUPDATE/);
  });

  it('treats a snapshot without the field as a first sighting of that field', () => {
    const r = evaluateRule(won, {
      event: update,
      entity: deal({ STAGE_ID: 'WON' }),
      previous: { TITLE: 'x' },
    });
    expect(r.matched).toBe(false);
  });
});

describe('changed', () => {
  const rule: Rule = { ...won, when: [{ field: 'ASSIGNED_BY_ID', changed: true }] };

  it('holds when the value differs from the snapshot and not when it is the same', () => {
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ ASSIGNED_BY_ID: '3' }),
        previous: { ASSIGNED_BY_ID: '1' },
      }),
    ).toEqual({ matched: true, reason: 'ASSIGNED_BY_ID changed from "1" to "3"' });
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ ASSIGNED_BY_ID: 3 }),
        previous: { ASSIGNED_BY_ID: '3' },
      }).matched,
    ).toBe(false);
  });

  it('holds on an ADD for a value that is set, not for an empty one, never on a first UPDATE', () => {
    expect(
      evaluateRule(rule, { event: add, entity: deal({ ASSIGNED_BY_ID: '1' }), previous: undefined })
        .matched,
    ).toBe(true);
    expect(
      evaluateRule(rule, { event: add, entity: deal({ ASSIGNED_BY_ID: '' }), previous: undefined })
        .matched,
    ).toBe(false);
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ ASSIGNED_BY_ID: '1' }),
        previous: undefined,
      }).matched,
    ).toBe(false);
  });

  it('counts a value that became empty as a change', () => {
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ ASSIGNED_BY_ID: null }),
        previous: { ASSIGNED_BY_ID: '1' },
      }).matched,
    ).toBe(true);
  });
});

describe('equals and in', () => {
  const base: Rule = { name: 'r', on: ['ONCRMDEALUPDATE'], actions: won.actions };

  it('compares numbers with Bitrix24 numeric strings by value', () => {
    const rule = { ...base, when: [{ field: 'OPPORTUNITY', equals: 1500 }] };
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ OPPORTUNITY: '1500.00' }),
        previous: undefined,
      }).matched,
    ).toBe(true);
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ OPPORTUNITY: '1499.99' }),
        previous: undefined,
      }),
    ).toEqual({
      matched: false,
      reason: 'OPPORTUNITY is "1499.99", not 1500',
    });
  });

  it('matches a value in the list and explains a miss', () => {
    const rule = { ...base, when: [{ field: 'deal.CURRENCY_ID', in: ['USD', 'EUR'] }] };
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ CURRENCY_ID: 'EUR' }),
        previous: undefined,
      }).matched,
    ).toBe(true);
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ CURRENCY_ID: 'RUB' }),
        previous: undefined,
      }).reason,
    ).toBe('deal.CURRENCY_ID is "RUB", not one of ["USD","EUR"]');
  });

  it('reads related records and multi-fields by their first value', () => {
    const rule = { ...base, when: [{ field: 'contact.PHONE', equals: '+15550100' }] };
    const related = {
      contact: { ID: '7', PHONE: [{ ID: '1', VALUE_TYPE: 'WORK', VALUE: '+15550100' }] },
    };
    expect(
      evaluateRule(rule, { event: update, entity: deal({}), related, previous: undefined }).matched,
    ).toBe(true);
    expect(
      evaluateRule(rule, { event: update, entity: deal({}), previous: undefined }).matched,
    ).toBe(false);
  });

  it('requires every condition (AND) and reports the first that fails', () => {
    const rule = {
      ...base,
      when: [
        { field: 'CURRENCY_ID', equals: 'USD' },
        { field: 'OPPORTUNITY', in: [1, 2] },
      ],
    };
    expect(
      evaluateRule(rule, {
        event: update,
        entity: deal({ CURRENCY_ID: 'USD', OPPORTUNITY: '3' }),
        previous: undefined,
      }),
    ).toEqual({ matched: false, reason: 'OPPORTUNITY is "3", not one of [1,2]' });
  });
});

describe('matchRules', () => {
  const map: EventMap = {
    rules: [
      { name: 'any update', on: ['ONCRMDEALUPDATE'], actions: won.actions },
      { name: 'adds only', on: ['ONCRMDEALADD'], actions: won.actions },
      { ...won },
      { ...won, name: 'disabled', enabled: false },
    ],
  };

  it('returns the matching rules in map order with reasons, skipping disabled ones', () => {
    const m = matchRules(map, {
      event: update,
      entity: deal({ STAGE_ID: 'WON' }),
      previous: { STAGE_ID: 'NEW' },
    });
    expect(m.map((x) => [x.rule.name, x.index, x.reason])).toEqual([
      ['any update', 0, 'ONCRMDEALUPDATE, no conditions'],
      ['won', 2, 'STAGE_ID became "WON" (was "NEW")'],
    ]);
  });
});

describe('snapshots', () => {
  it('watches the transition fields of every rule of the same entity family', () => {
    const map: EventMap = {
      rules: [
        { ...won, on: ['ONCRMDEALUPDATE'] },
        {
          name: 'b',
          on: ['ONCRMDEALUPDATE'],
          when: [
            { field: 'contact.PHONE', changed: true },
            { field: 'X', equals: 1 },
          ],
          actions: won.actions,
        },
        {
          name: 'c',
          on: ['ONCRMLEADUPDATE'],
          when: [{ field: 'STATUS_ID', becomes: 'CONVERTED' }],
          actions: won.actions,
        },
      ],
    };
    expect(watchedFields(map, 'ONCRMDEALADD').sort()).toEqual(['STAGE_ID', 'contact.PHONE']);
    expect(watchedFields(map, 'ONCRMLEADADD')).toEqual(['STATUS_ID']);
    expect(watchedFields(map, 'ONCRMCONTACTUPDATE')).toEqual([]);
  });

  it('takes the current values of the watched fields, null for missing ones', () => {
    const ctx = buildTemplateContext({ event: update, entity: deal({ STAGE_ID: 'WON' }) });
    expect(takeSnapshot(['STAGE_ID', 'contact.PHONE'], ctx)).toEqual({
      STAGE_ID: 'WON',
      'contact.PHONE': null,
    });
  });

  it('knows which events create a record', () => {
    expect(['ONCRMDEALADD', 'ONCRMDYNAMICITEMADD', 'ONTASKADD'].every(isAddEvent)).toBe(true);
    expect(['ONCRMDEALUPDATE', 'ONCRMDEALDELETE'].some(isAddEvent)).toBe(false);
  });
});
