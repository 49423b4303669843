import { describe, expect, it } from '@jest/globals';
import {
  describeConditions,
  describeStep,
  plain,
  urlHost,
  type StageNames,
} from '../../server/rules/describe.js';
import type { EventMap, Rule } from '../../server/rules/model.js';
import { mapWords } from '../../server/ui/i18n-map.js';
import { changeMap, stageNames } from '../../server/ui/pages/rules-table.js';
import { portalMetadata } from '../helpers/portal-metadata.js';

const en = mapWords('en');
const ru = mapWords('ru');
const rule = (when: Rule['when'], on = ['ONCRMDEALUPDATE']): Rule => ({
  name: 'r',
  on,
  when,
  actions: [{ type: 'sms', to: '1', text: 't' }],
});
const words = (r: Rule, w = en, stages?: StageNames) => describeConditions(r, w, stages).map(plain);

describe('conditions in words', () => {
  it('names crm.item fields (camelCase) like crm.deal fields', () => {
    expect(words(rule([{ field: 'stageId', becomes: 'DT128_5:SUCCESS' }]))).toEqual([
      'Stage becomes DT128_5:SUCCESS',
    ]);
  });

  it("names the event's own record without its root, another record with it", () => {
    expect(words(rule([{ field: 'deal.OPPORTUNITY', equals: 10 }]))).toEqual(['Amount equals 10']);
    expect(words(rule([{ field: 'company.INDUSTRY', changed: true }]), ru)).toEqual([
      'Поле «Компания · Сфера деятельности» изменяется',
    ]);
    expect(words(rule([{ field: 'UF_CRM_17', in: ['a', null] }]))).toEqual([
      'UF_CRM_17 is one of a, empty',
    ]);
    // The event's own fields are not a record's: `event.name` is not a contact's first name.
    expect(words(rule([{ field: 'event.name', equals: 'ONCRMDEALADD' }]))).toEqual([
      'Event · name equals ONCRMDEALADD',
    ]);
  });

  it("names an old invoice's own fields without their root on its status event too", () => {
    const on = (event: string) =>
      words(rule([{ field: 'invoice.STATUS_ID', equals: 'P' }], [event]));
    expect(on('ONCRMINVOICEUPDATE')).toEqual(['Status equals P']);
    expect(on('ONCRMINVOICESETSTATUS')).toEqual(['Status equals P']);
  });

  it("names an activity's fields in words, not codes (a new admin's walk)", () => {
    const r = rule(
      [
        { field: 'PROVIDER_TYPE_ID', equals: 'CALL' },
        { field: 'COMPLETED', becomes: 'Y' },
      ],
      ['ONCRMACTIVITYUPDATE'],
    );
    expect(words(r)).toEqual(['Activity kind equals CALL', 'Completed becomes Y']);
    expect(words(r, ru)).toEqual(['Поле «Вид дела» равно CALL', 'Поле «Завершено» становится Y']);
  });

  it("names an activity's type by its name, and leaves another record's TYPE_ID a code", () => {
    const calls = rule([{ field: 'TYPE_ID', in: ['2', '4', '9'] }], ['ONCRMACTIVITYADD']);
    expect(words(calls)).toEqual(['Type is one of Call, E-mail, 9']);
    expect(words(calls, ru)).toEqual(['Поле «Тип» — одно из: Звонок, Письмо, 9']);
    expect(words(rule([{ field: 'TYPE_ID', equals: '2' }], ['ONCRMCONTACTADD']))).toEqual([
      'Type equals 2',
    ]);
  });

  it('shows stage names with their pipeline where the portal names them, codes otherwise', () => {
    const stages: StageNames = (code) =>
      code === 'C1:WON' ? { name: 'Paid', pipeline: 'Wholesale' } : undefined;
    const r = rule([{ field: 'STAGE_ID', in: ['C1:WON', 'C1:NEW'] }]);
    expect(words(r, en, stages)).toEqual(['Stage is one of Paid (pipeline Wholesale), C1:NEW']);
    expect(words(r, ru, stages)).toEqual([
      'Поле «Стадия» — одно из: Paid (воронка Wholesale), C1:NEW',
    ]);
    // Only stage fields are looked up: a title "C1:WON" is a title.
    expect(words(rule([{ field: 'TITLE', equals: 'C1:WON' }]), en, stages)).toEqual([
      'Title equals C1:WON',
    ]);
  });

  it("names a lead's stage from the lead stages, and a deal's from the deals'", () => {
    const stages: StageNames = (code, record = 'deal') =>
      record === 'lead' && code === 'CONVERTED'
        ? { name: 'Good lead' }
        : record === 'deal' && code === 'WON'
          ? { name: 'Deal won' }
          : undefined;
    const lead = rule([{ field: 'STATUS_ID', becomes: 'CONVERTED' }], ['ONCRMLEADUPDATE']);
    expect(words(lead, en, stages)).toEqual(['Status becomes Good lead']);
    // A deal's STATUS_ID (no such list) and a lead's STAGE_ID are left as codes.
    expect(words(rule([{ field: 'STATUS_ID', equals: 'CONVERTED' }]), en, stages)).toEqual([
      'Status equals CONVERTED',
    ]);
    expect(
      words(rule([{ field: 'STAGE_ID', equals: 'WON' }], ['ONCRMLEADUPDATE']), en, stages),
    ).toEqual(['Stage equals WON']);
  });

  it("names a quote's and an old invoice's status from the portal's lists, each from its own", () => {
    const stages = stageNames(portalMetadata());
    const quote = rule([{ field: 'STATUS_ID', in: ['APPROVED', 'SENT'] }], ['ONCRMQUOTEUPDATE']);
    expect(words(quote, en, stages)).toEqual(['Status is one of Approved, Sent']);
    expect(words(quote, ru, stages)).toEqual(['Поле «Статус» — одно из: Approved, Sent']);
    // An old invoice's status event is the invoice's; its codes are its own list's.
    const paid = rule([{ field: 'invoice.STATUS_ID', becomes: 'P' }], ['ONCRMINVOICESETSTATUS']);
    expect(words(paid, en, stages)).toEqual(['Status becomes Paid']);
    expect(
      words(rule([{ field: 'STATUS_ID', equals: 'S' }], ['ONCRMINVOICEUPDATE']), en, stages),
    ).toEqual(['Status equals Sent']);
    // A quote's S and an invoice's SENT are no codes of theirs; a lead's list is the lead's.
    expect(
      words(rule([{ field: 'STATUS_ID', in: ['S', 'CONVERTED'] }], ['ONCRMQUOTEADD']), en, stages),
    ).toEqual(['Status is one of S, CONVERTED']);
    expect(
      words(rule([{ field: 'STATUS_ID', equals: 'SENT' }], ['ONCRMINVOICEADD']), en, stages),
    ).toEqual(['Status equals SENT']);
    // An old invoice's Paid flag by its name.
    expect(words(rule([{ field: 'PAYED', equals: 'Y' }], ['ONCRMINVOICEUPDATE']))).toEqual([
      'Paid equals Y',
    ]);
  });

  it('marks every value as data, never as words', () => {
    const [phrase] = describeConditions(rule([{ field: 'STAGE_ID', becomes: 'WON' }]), en);
    expect(phrase).toEqual([{ text: 'Stage' }, { text: ' becomes ' }, { text: 'WON', data: true }]);
  });
});

describe("a deal's or lead's stage group", () => {
  it('names the group, the same in every pipeline', () => {
    expect(words(rule([{ field: 'STAGE_SEMANTIC_ID', becomes: 'S' }]))).toEqual([
      'Stage group becomes Successful',
    ]);
    expect(
      words(rule([{ field: 'STATUS_SEMANTIC_ID', in: ['P', 'F'] }], ['ONCRMLEADUPDATE']), ru),
    ).toEqual(['Поле «Группа стадии» — одно из: В работе, Провальная']);
    // Another record's field of that name, or a code outside the list: as written.
    expect(words(rule([{ field: 'STAGE_SEMANTIC_ID', equals: 'X' }]))).toEqual([
      'Stage group equals X',
    ]);
  });
});

describe('steps in words', () => {
  it('shows the host of an http step, never its credentials', () => {
    expect(urlHost('https://********@erp.example:8443/x?key=********')).toBe('erp.example:8443');
    expect(urlHost('{{deal.UF_URL}}')).toBe('{{deal.UF_URL}}');
    const step = describeStep({ type: 'http', method: 'PUT', url: { $env: 'ERP_URL' } }, ru);
    expect(plain(step)).toBe('PUT на адрес из ERP_URL');
  });

  it("says whose timeline a comment goes to, by the owner type's name as the method takes it", () => {
    const comment = (ENTITY_TYPE: unknown, method = 'crm.timeline.comment.add') =>
      plain(
        describeStep(
          {
            type: 'bitrix',
            method,
            params: { fields: { ENTITY_TYPE, ENTITY_ID: '1', COMMENT: 'x' } },
          },
          en,
        ),
      );
    expect(comment('deal')).toBe("Comment in the deal's timeline");
    // CCrmOwnerType::ResolveID takes any case; a smart process is dynamic_<entityTypeId>.
    expect(comment('LEAD')).toBe("Comment in the lead's timeline");
    expect(comment('dynamic_128')).toBe("Comment in the smart-process item's timeline");
    expect(comment('smart_invoice')).toBe("Comment in the invoice's timeline");
    expect(comment('DEAL', 'CRM.Timeline.Comment.Add')).toBe("Comment in the deal's timeline");
    // A type the step works out at run time, or another method: said by the method.
    expect(comment('{{deal.UF_TYPE}}')).toBe('Bitrix24 method crm.timeline.comment.add');
    expect(comment(7)).toBe('Bitrix24 method crm.timeline.comment.add');
    expect(comment('item')).toBe('Bitrix24 method crm.timeline.comment.add');
    expect(comment('deal', 'crm.deal.update')).toBe('Bitrix24 method crm.deal.update');
    expect(
      plain(
        describeStep(
          {
            type: 'bitrix',
            method: 'crm.timeline.comment.add',
            params: { fields: { ENTITY_TYPE: 'company', ENTITY_ID: '1', COMMENT: 'x' } },
          },
          ru,
        ),
      ),
    ).toBe('Комментарий в хронологии компании');
  });
});

describe('changes from the table', () => {
  const map: EventMap = {
    rules: ['a', 'b', 'c'].map((name) => ({ ...rule(undefined), name })),
  };
  it('moves a rule one place and leaves the ends where they are', () => {
    const r = changeMap(map, { kind: 'move', name: 'c', at: 2, dir: 'up' });
    expect(r.ok && r.map.rules.map((x) => x.name)).toEqual(['a', 'c', 'b']);
    const top = changeMap(map, { kind: 'move', name: 'a', at: 0, dir: 'up' });
    expect(top.ok && top.map.rules.map((x) => x.name)).toEqual(['a', 'b', 'c']);
    expect(map.rules.map((x) => x.name)).toEqual(['a', 'b', 'c']);
  });
  it('refuses a stale position and an unknown rule', () => {
    expect(changeMap(map, { kind: 'move', name: 'c', at: 1, dir: 'up' })).toEqual({
      ok: false,
      reason: 'map.stale',
    });
    expect(changeMap(map, { kind: 'toggle', name: 'x', enabled: false })).toEqual({
      ok: false,
      reason: 'map.noRule',
    });
  });
});
