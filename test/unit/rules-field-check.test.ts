import { describe, expect, it } from '@jest/globals';
import { translateMessage } from '../../server/ui/i18n-messages.js';
import {
  unknownFieldWarnings,
  valueTypeWarnings,
  type KnownFields,
} from '../../server/rules/field-check.js';
import type { FieldInfo } from '../../server/rules/metadata.js';
import type { Rule } from '../../server/rules/model.js';

const known = {
  deal: ['ID', 'TITLE', 'STAGE_ID', 'OPPORTUNITY', 'CONTACT_ID', 'UF_CRM_1747309879'],
  contact: ['ID', 'NAME', 'PHONE'],
};
const rule = (on: string[], when: Rule['when'], text: string): Rule => ({
  name: 'r',
  on,
  when,
  actions: [{ type: 'sms', to: '{{contact.PHONE}}', text }],
});
const fieldsOf = (r: Rule, k: KnownFields = known) =>
  unknownFieldWarnings(r, k).map((w) => /reads (\S+):/.exec(w.message)?.[1]);

describe("fields the portal's records do not have", () => {
  it('checks bare and rooted condition fields and templates against the record they read', () => {
    const r = rule(
      ['ONCRMDEALUPDATE'],
      [
        { field: 'STAGEID', equals: 'WON' },
        { field: 'deal.UF_CRM_1747309879', changed: true },
        { field: 'contact.NAMES', equals: 'x' },
      ],
      'Deal {{deal.TITEL}} {{entity.OPPORTUNITY}} {{deal.GONE?}} {{event.name}} {{steps.a.response}}',
    );
    expect(fieldsOf(r)).toEqual(['deal.STAGEID', 'deal.TITEL', 'contact.NAMES']);
    expect(unknownFieldWarnings(r, known)[0]!.message).toBe(
      `rule "r" reads deal.STAGEID: the portal's deals have no field STAGEID; did you mean STAGE_ID?`,
    );
  });

  it("checks an activity rule's fields against the portal's activities, in English and Russian", () => {
    const r = rule(
      ['ONCRMACTIVITYADD'],
      [{ field: 'PROVIDER_TYPE', equals: 'CALL' }],
      'Call {{activity.SUBJCT}} {{activity.OWNER_ID}}',
    );
    const activity = ['ID', 'SUBJECT', 'PROVIDER_TYPE_ID', 'OWNER_ID'];
    expect(fieldsOf(r, { ...known, activity })).toEqual([
      'activity.PROVIDER_TYPE',
      'activity.SUBJCT',
    ]);
    const [first, second] = unknownFieldWarnings(r, { activity });
    expect(first!.message).toBe(
      `rule "r" reads activity.PROVIDER_TYPE: the portal's activities have no field PROVIDER_TYPE`,
    );
    expect(second!.message).toBe(
      `rule "r" reads activity.SUBJCT: the portal's activities have no field SUBJCT; did you mean SUBJECT?`,
    );
    expect(translateMessage(first!.message, 'ru')).toContain(': у дел портала нет поля ');
  });

  it("checks a quote rule's fields against the portal's quotes, in English and Russian", () => {
    const r = rule(
      ['ONCRMQUOTEADD', 'ONCRMQUOTEUPDATE'],
      [{ field: 'STATUS', equals: 'APPROVED' }],
      'Quote {{quote.TITEL}} {{entity.OPPORTUNITY}} {{contact.NAME}}',
    );
    const quote = ['ID', 'TITLE', 'STATUS_ID', 'OPPORTUNITY'];
    expect(fieldsOf(r, { ...known, quote })).toEqual(['quote.STATUS', 'quote.TITEL']);
    const [, second] = unknownFieldWarnings(r, { quote });
    expect(second!.message).toBe(
      `rule "r" reads quote.TITEL: the portal's quotes have no field TITEL; did you mean TITLE?`,
    );
    expect(translateMessage(second!.message, 'ru')).toContain(': у предложений портала нет поля ');
  });

  it("checks an old invoice rule's fields, ONCRMINVOICESETSTATUS among its events, in English and Russian", () => {
    const r = rule(
      ['ONCRMINVOICEUPDATE', 'ONCRMINVOICESETSTATUS'],
      [{ field: 'STATUS', becomes: 'P' }],
      'Invoice {{invoice.ORDER_TOPC}} {{invoice.PRICE}} {{company.TITLE}}',
    );
    const invoice = ['ID', 'ORDER_TOPIC', 'STATUS_ID', 'PRICE', 'UF_COMPANY_ID'];
    expect(fieldsOf(r, { invoice })).toEqual(['invoice.STATUS', 'invoice.ORDER_TOPC']);
    // A rule on ONCRMINVOICESETSTATUS alone is an invoice's as well.
    expect(fieldsOf({ ...r, on: ['ONCRMINVOICESETSTATUS'] }, { invoice })).toEqual([
      'invoice.STATUS',
      'invoice.ORDER_TOPC',
    ]);
    const [, second] = unknownFieldWarnings(r, { invoice });
    expect(second!.message).toBe(
      `rule "r" reads invoice.ORDER_TOPC: the portal's invoices have no field ORDER_TOPC; did you mean ORDER_TOPIC?`,
    );
    expect(translateMessage(second!.message, 'ru')).toContain(': у счетов портала нет поля ');
  });

  it("checks a lead rule's fields against the portal's leads", () => {
    const r = rule(
      ['ONCRMLEADUPDATE'],
      [{ field: 'STATUSID', becomes: 'CONVERTED' }],
      'Lead {{lead.TITLE}} {{entity.OPORTUNITY}}',
    );
    const lead = ['ID', 'TITLE', 'STATUS_ID', 'OPPORTUNITY'];
    expect(fieldsOf(r, { ...known, lead })).toEqual(['lead.STATUSID', 'lead.OPORTUNITY']);
    expect(unknownFieldWarnings(r, { lead })[0]!.message).toBe(
      `rule "r" reads lead.STATUSID: the portal's leads have no field STATUSID; did you mean STATUS_ID?`,
    );
  });

  it('says nothing where the field list is not known or the record is not one it checks', () => {
    const r = rule(['ONCRMDEALUPDATE'], [{ field: 'company.TITEL', equals: 'x' }], '{{deal.X}}');
    // No company list: not checked; no deal list: not checked.
    expect(fieldsOf(r, { contact: known.contact })).toEqual([]);
    // A smart-process item's and a task's fields are not in these lists.
    const item = rule(
      ['ONCRMDYNAMICITEMUPDATE'],
      [{ field: 'ufCrm128Priority', equals: '1' }],
      'x',
    );
    const task = rule(['ONTASKUPDATE'], [{ field: 'TITLE', changed: true }], '{{task.TITEL}}');
    expect([...fieldsOf(item), ...fieldsOf(task)]).toEqual([]);
    // A typo far from every field is named without a guess.
    const far = rule(['ONCRMDEALADD'], [{ field: 'SOMETHING_ELSE', equals: 1 }], 'x');
    expect(unknownFieldWarnings(far, known)[0]!.message).toMatch(/no field SOMETHING_ELSE$/);
  });
});

const info = (code: string, type: string): FieldInfo => ({
  code,
  title: code,
  type,
  multiple: false,
  readOnly: false,
});

describe("condition values a field's type never takes", () => {
  const lists = {
    deal: [
      info('OPPORTUNITY', 'double'),
      info('PROBABILITY', 'integer'),
      info('CLOSED', 'char'),
      info('TITLE', 'string'),
    ],
  };
  const messages = (when: Rule['when']) =>
    valueTypeWarnings(rule(['ONCRMDEALUPDATE'], when, 'x'), lists).map((w) => w.message);

  it('says a word compared with a number field, or anything but Y and N with a flag, never matches', () => {
    expect(messages([{ field: 'OPPORTUNITY', equals: 'abc' }])).toEqual([
      'rule "r": deal.OPPORTUNITY holds a number and never equals "abc"',
    ]);
    expect(messages([{ field: 'deal.PROBABILITY', in: ['50', 'high'] }])).toEqual([
      'rule "r": deal.PROBABILITY holds a number and never equals "high"',
    ]);
    expect(messages([{ field: 'CLOSED', becomes: 'yes' }])).toEqual([
      'rule "r": deal.CLOSED holds Y or N and never equals "yes"',
    ]);
  });

  it('says a decimal written as text compares as text, and how to write it', () => {
    expect(messages([{ field: 'OPPORTUNITY', equals: '1500' }])).toEqual([
      'rule "r": deal.OPPORTUNITY holds a number, but "1500" is written as text, which equals only the same text; write it without quotes (1500) to compare numbers',
    ]);
  });

  it('says a stage condition with nothing chosen never matches (a new admin’s walk), in English and Russian', () => {
    const stages = {
      deal: [
        { ...info('STAGE_ID', 'crm_status'), statusType: 'DEAL_STAGE' },
        info('TITLE', 'string'),
      ],
    };
    const [w] = valueTypeWarnings(
      rule(['ONCRMDEALUPDATE'], [{ field: 'STAGE_ID', becomes: '' }], 'x'),
      stages,
    );
    expect(w!.message).toBe(
      `rule "r": deal.STAGE_ID is never empty, and the condition's value is empty (nothing chosen): the rule never matches`,
    );
    expect(translateMessage(w!.message, 'ru')).toBe(
      'правило "r": deal.STAGE_ID никогда не бывает пустым, а значение условия пустое (ничего не выбрано): правило не сработает',
    );
    // Control: a text field may be empty ("the title was cleared").
    expect(
      valueTypeWarnings(rule(['ONCRMDEALUPDATE'], [{ field: 'TITLE', becomes: '' }], 'x'), stages),
    ).toEqual([]);
  });

  it("says a quote's or an old invoice's status condition with nothing chosen never matches", () => {
    const status = (statusType: string) => [{ ...info('STATUS_ID', 'crm_status'), statusType }];
    const [quote] = valueTypeWarnings(
      rule(['ONCRMQUOTEUPDATE'], [{ field: 'STATUS_ID', equals: '' }], 'x'),
      { quote: status('QUOTE_STATUS') },
    );
    expect(quote!.message).toBe(
      `rule "r": quote.STATUS_ID is never empty, and the condition's value is empty (nothing chosen): the rule never matches`,
    );
    const [invoice] = valueTypeWarnings(
      rule(['ONCRMINVOICESETSTATUS'], [{ field: 'STATUS_ID', becomes: '' }], 'x'),
      { invoice: status('INVOICE_STATUS') },
    );
    expect(invoice!.message).toMatch(/^rule "r": invoice\.STATUS_ID is never empty/);
  });

  it('leaves values the field takes, empty values and unknown fields alone', () => {
    expect(
      messages([
        { field: 'OPPORTUNITY', equals: 1500 },
        { field: 'OPPORTUNITY', equals: '' },
        { field: 'PROBABILITY', equals: '50' },
        { field: 'CLOSED', equals: 'Y' },
        { field: 'TITLE', equals: 'abc' },
        { field: 'UF_CRM_GONE', equals: 'abc' },
        { field: 'OPPORTUNITY', changed: true },
      ]),
    ).toEqual([]);
    // A rule of several record types, or one whose lists are not known: not checked.
    expect(
      valueTypeWarnings(
        rule(['ONCRMDEALUPDATE'], [{ field: 'OPPORTUNITY', equals: 'abc' }], 'x'),
        {},
      ),
    ).toEqual([]);
  });
});
