import { describe, expect, it } from '@jest/globals';
import { evaluateRule } from '../../server/rules/conditions.js';
import type { StageNames } from '../../server/rules/describe.js';
import type { Condition, Rule } from '../../server/rules/model.js';
import type { Snapshot } from '../../server/rules/model.js';
import { mapWords } from '../../server/ui/i18n-map.js';
import { readableNote, type NoteNames } from '../../server/ui/note-names.js';
import { stageNames } from '../../server/ui/pages/rules-table.js';
import { portalMetadata } from '../helpers/portal-metadata.js';

const update = { name: 'ONCRMDEALUPDATE', entityType: 'deal', entityId: '42' };
const STAGES: Record<string, string> = { NEW: 'New', WON: 'Deal won', LOSE: 'Deal lost' };
const LEAD_STAGES: Record<string, string> = { CONVERTED: 'Good lead' };
const stages: StageNames = (code, record = 'deal') => {
  const name = (record === 'lead' ? LEAD_STAGES : STAGES)[code];
  return name ? { name } : undefined;
};
const names = (lang: 'en' | 'ru' = 'en') => ({ words: mapWords(lang), stages, entityType: 'deal' });

/** The reason the evaluator itself gives for one condition on a deal update. */
function reasonOf(c: Condition, entity: Record<string, unknown>, previous?: Snapshot): string {
  const rule: Rule = { name: 'r', on: ['ONCRMDEALUPDATE'], when: [c], actions: [] };
  return evaluateRule(rule, { event: update, entity: { ID: '42', ...entity }, previous }).reason;
}

describe('notes with names for codes', () => {
  it("names a deal's fields and stages in the reasons the evaluator writes", () => {
    const cases: Array<[string, string]> = [
      [
        reasonOf({ field: 'STAGE_ID', becomes: 'WON' }, { STAGE_ID: 'LOSE' }, { STAGE_ID: 'NEW' }),
        'Stage is "Deal lost", not "Deal won"',
      ],
      [
        reasonOf({ field: 'STAGE_ID', becomes: 'WON' }, { STAGE_ID: 'WON' }, { STAGE_ID: 'NEW' }),
        'Stage became "Deal won" (was "New")',
      ],
      [
        reasonOf({ field: 'STAGE_ID', in: ['WON', 'C9:WON'] }, { STAGE_ID: 'NEW' }),
        'Stage is "New", not one of ["Deal won","C9:WON"]',
      ],
      [
        reasonOf({ field: 'OPPORTUNITY', equals: 1500 }, { OPPORTUNITY: '900' }),
        'Amount is "900", not 1500',
      ],
      [
        reasonOf(
          { field: 'ASSIGNED_BY_ID', changed: true },
          { ASSIGNED_BY_ID: '7' },
          {
            ASSIGNED_BY_ID: '7',
          },
        ),
        'Responsible unchanged ("7")',
      ],
      [
        reasonOf({ field: 'contact.PHONE', equals: '+1' }, {}),
        'Contact · Phone is empty, not "+1"',
      ],
      // A field with no name in the dictionary, and a deal stage's code only in its own
      // field: both stay as written.
      [
        reasonOf({ field: 'UF_CRM_5', equals: 'WON' }, { UF_CRM_5: 'NEW' }),
        'UF_CRM_5 is "NEW", not "WON"',
      ],
    ];
    for (const [raw, want] of cases)
      expect(readableNote(raw, 'en', [], names(), 'reason')).toBe(want);
  });

  it('names them in Russian around the translated phrases', () => {
    const raw = reasonOf(
      { field: 'STAGE_ID', becomes: 'WON' },
      { STAGE_ID: 'LOSE' },
      {
        STAGE_ID: 'NEW',
      },
    );
    const ru: StageNames = (code) =>
      ({ WON: { name: 'Сделка успешна' }, LOSE: { name: 'Провал' } })[code];
    expect(readableNote(raw, 'ru', [], { ...names('ru'), stages: ru }, 'reason')).toBe(
      'Стадия = "Провал", а не "Сделка успешна"',
    );
  });

  it("keeps rule names as written in an event's note, even one that reads like a reason", () => {
    const note =
      'no rule to run (TITLE is set: STAGE_ID is "NEW", not "WON"; Big: OPPORTUNITY is "5", not 10)';
    expect(readableNote(note, 'en', ['TITLE is set', 'Big'], names())).toBe(
      'no rule to run (TITLE is set: Stage is "New", not "Deal won"; Big: Amount is "5", not 10)',
    );
    expect(readableNote(note, 'ru', ['TITLE is set', 'Big'], names('ru'))).toBe(
      'нет правил для запуска (TITLE is set: Стадия = "New", а не "Deal won"; Big: Сумма = "5", а не 10)',
    );
  });

  it('leaves values alone: a value that reads like a reason, another record type, no stage list', () => {
    const r = (note: string, n: NoteNames = names()) => readableNote(note, 'en', [], n, 'reason');
    expect(r('TITLE is "a: TITLE is b", not "c"')).toBe('Title is "a: TITLE is b", not "c"');
    // A lead's status is named from the lead stages, never the deals'; a smart process's
    // stage is not a deal stage.
    expect(r('STATUS_ID is "WON", not "CONVERTED"', { ...names(), entityType: 'lead' })).toBe(
      'Status is "WON", not "Good lead"',
    );
    expect(r('stageId is "NEW", not "WON"', { ...names(), entityType: 'dynamic:1038' })).toBe(
      'Stage is "NEW", not "WON"',
    );
    // A deal's stage on a contact's event is the deal's.
    expect(r('deal.STAGE_ID is "NEW", not "WON"', { ...names(), entityType: 'contact' })).toBe(
      'Deal · Stage is "New", not "Deal won"',
    );
    expect(r('STAGE_ID is "NEW", not "WON"', { ...names(), stages: undefined })).toBe(
      'Stage is "NEW", not "WON"',
    );
    expect(readableNote('no rule matched', 'ru', [], names('ru'))).toBe(
      'ни одно правило не подошло',
    );
  });

  it('rewrites only whole sentences of the evaluator, never values, rule names or remote text', () => {
    const r = (note: string, kind: 'reason' | 'eventNote' = 'reason', rules: string[] = []) =>
      readableNote(note, 'en', rules, names(), kind);
    // Values that read like reasons, after a field with and without a name.
    expect(r('UF_CRM_5 is "a: TITLE is b", not "c"')).toBe('UF_CRM_5 is "a: TITLE is b", not "c"');
    expect(r('UF_CRM_5 is "(STAGE_ID is NEW)", not "c"')).toBe(
      'UF_CRM_5 is "(STAGE_ID is NEW)", not "c"',
    );
    expect(r('TITLE is "x; TITLE is y", not "z"')).toBe('Title is "x; TITLE is y", not "z"');
    expect(r('TITLE is "x; STAGE_ID is \\"NEW\\"", not "z"')).toBe(
      'Title is "x; STAGE_ID is \\"NEW\\"", not "z"',
    );
    // A value cut short by `show` (57 characters and "...") is a value too.
    const long = JSON.stringify('x'.repeat(80)).slice(0, 57) + '...';
    expect(r(`TITLE is ${long}, not "WON"; STAGE_ID is "NEW"`)).toBe(
      `Title is ${long}, not "WON"; Stage is "New"`,
    );
    // The characters that stand in for names during translation, in user text: untouched.
    expect(r('TITLE is "\uE0000\uE001", not "c"')).toBe('TITLE is "\uE0000\uE001", not "c"');
    // A step's remote error in an event's note is not the evaluator's.
    expect(
      r('Invoice/post failed (continued): HTTP 422: Name is required; email is "x"', 'eventNote', [
        'Invoice',
      ]),
    ).toBe('Invoice/post failed (continued): HTTP 422: Name is required; email is "x"');
    // Rule names, with or without ": " after them.
    expect(r('TITLE is set/step1 failed (continued): boom', 'eventNote', ['TITLE is set'])).toBe(
      'TITLE is set/step1 failed (continued): boom',
    );
    expect(r('TITLE is set: rule no longer in the map', 'eventNote', [])).toBe(
      'TITLE is set: rule no longer in the map',
    );
    // The event's own fields are not a record's: `event.name` is not "First name".
    expect(r('event.name is "ONCRMDEALADD", not "ONCRMDEALUPDATE"')).toBe(
      'event.name is "ONCRMDEALADD", not "ONCRMDEALUPDATE"',
    );
  });

  it('names a stale trigger in the event note and in the match note', () => {
    expect(
      readableNote('Won: stale trigger, STAGE_ID is "NEW", not "WON"', 'en', ['Won'], names()),
    ).toBe('Won: stale trigger, Stage is "New", not "Deal won"');
    expect(
      readableNote('stale trigger: STAGE_ID is "NEW", not "WON"', 'en', [], names(), 'matchNote'),
    ).toBe('stale trigger: Stage is "New", not "Deal won"');
    const skipped =
      'no rule to run (Won: stale trigger: STAGE_ID was already "WON"; Other: OPPORTUNITY is 5, not 10)';
    expect(readableNote(skipped, 'en', ['Won', 'Other'], names())).toBe(
      'no rule to run (Won: stale trigger: Stage was already "Deal won"; Other: Amount is 5, not 10)',
    );
  });

  it("names a quote's and an old invoice's statuses from the portal's lists, in either language", () => {
    const judged = (on: string, entityType: string, c: Condition, entity: Snapshot) =>
      evaluateRule(
        { name: 'r', on: [on], when: [c], actions: [] },
        {
          event: { name: on, entityType, entityId: '7' },
          entity: { ID: '7', ...entity },
          previous: undefined,
        },
      ).reason;
    const portal = (entityType: string, lang: 'en' | 'ru' = 'en') => ({
      words: mapWords(lang),
      stages: stageNames(portalMetadata()),
      entityType,
    });
    const quote = judged(
      'ONCRMQUOTEUPDATE',
      'quote',
      { field: 'STATUS_ID', in: ['APPROVED', 'SENT'] },
      { STATUS_ID: 'DECLAINED' },
    );
    expect(quote).toBe('STATUS_ID is "DECLAINED", not one of ["APPROVED","SENT"]');
    expect(readableNote(quote, 'en', [], portal('quote'), 'reason')).toBe(
      'Status is "Declined", not one of ["Approved","Sent"]',
    );
    const invoice = judged(
      'ONCRMINVOICESETSTATUS',
      'invoice',
      { field: 'STATUS_ID', equals: 'P' },
      { STATUS_ID: 'S' },
    );
    expect(readableNote(invoice, 'ru', [], portal('invoice', 'ru'), 'reason')).toBe(
      'Статус = "Sent", а не "Paid"',
    );
    // Without the stored record type, the event names it: a status event is an invoice's.
    expect(
      readableNote(
        invoice,
        'en',
        [],
        { ...portal(''), entityType: null, event: 'ONCRMINVOICESETSTATUS' },
        'reason',
      ),
    ).toBe('Status is "Sent", not "Paid"');
    // A deal's STATUS_ID is in no list: its codes stay.
    expect(readableNote(invoice, 'en', [], portal('deal'), 'reason')).toBe(
      'Status is "S", not "P"',
    );
  });

  it('names a stage outside the default pipeline with its pipeline, after the quotes', () => {
    const piped: StageNames = (code) =>
      code === 'C1:WON'
        ? { name: 'Paid', pipeline: 'Wholesale', inDefault: false }
        : code === 'WON'
          ? { name: 'Deal won', pipeline: 'General', inDefault: true }
          : undefined;
    const n = { ...names(), stages: piped };
    // Beside a stage of another pipeline, the default pipeline's says its pipeline too.
    expect(readableNote('STAGE_ID is "C1:WON", not "WON"', 'en', [], n, 'reason')).toBe(
      'Stage is "Paid" (pipeline Wholesale), not "Deal won" (pipeline General)',
    );
    // A pipeline's name is data: kept as written in Russian too.
    const ru = { ...names('ru'), stages: piped };
    expect(readableNote('STAGE_ID is "C1:WON", not "WON"', 'ru', [], ru, 'reason')).toBe(
      'Стадия = "Paid" (воронка Wholesale), а не "Deal won" (воронка General)',
    );
    // Only stages of the default pipeline: no pipeline said.
    expect(readableNote('STAGE_ID is "NEW", not "WON"', 'en', [], n, 'reason')).toBe(
      'Stage is "NEW", not "Deal won"',
    );
  });

  it("names a deal's stage group in the evaluator's reasons", () => {
    const reason = reasonOf(
      { field: 'STAGE_SEMANTIC_ID', becomes: 'S' },
      { STAGE_SEMANTIC_ID: 'F' },
      {
        STAGE_SEMANTIC_ID: 'P',
      },
    );
    expect(readableNote(reason, 'en', [], names(), 'reason')).toBe(
      'Stage group is "Failed", not "Successful"',
    );
  });

  it('says both pipelines where two stages of one name differ only by pipeline (found in a walk)', () => {
    // "Deal successful" is the won stage's name in every pipeline: without the pipelines the
    // note read `Stage is "Deal successful" (pipeline Wholesale), not "Deal successful"`.
    const same: StageNames = (code) =>
      code === 'C1:WON'
        ? { name: 'Deal successful', pipeline: 'Wholesale', inDefault: false }
        : code === 'WON'
          ? { name: 'Deal successful', pipeline: 'General', inDefault: true }
          : undefined;
    const reason = reasonOf(
      { field: 'STAGE_ID', becomes: 'WON' },
      { STAGE_ID: 'C1:WON' },
      {
        STAGE_ID: 'C1:NEW',
      },
    );
    expect(readableNote(reason, 'en', [], { ...names(), stages: same }, 'reason')).toBe(
      'Stage is "Deal successful" (pipeline Wholesale), not "Deal successful" (pipeline General)',
    );
  });
  it("names an activity's type as the rules page does, quoted or a number, in either language", () => {
    const activity = { ...names(), entityType: 'activity' };
    const rule: Rule = {
      name: 'r',
      on: ['ONCRMACTIVITYADD'],
      when: [{ field: 'TYPE_ID', in: ['2', 4] }],
      actions: [],
    };
    const raw = evaluateRule(rule, {
      event: { name: 'ONCRMACTIVITYADD', entityType: 'activity', entityId: '7' },
      entity: { ID: '7', TYPE_ID: '1' },
      previous: undefined,
    }).reason;
    expect(raw).toBe('TYPE_ID is "1", not one of ["2",4]');
    expect(readableNote(raw, 'en', [], activity, 'reason')).toBe(
      'Type is "Meeting", not one of ["Call","E-mail"]',
    );
    expect(readableNote(raw, 'ru', [], { ...activity, words: mapWords('ru') }, 'reason')).toBe(
      'Тип = "Встреча", не из ["Звонок","Письмо"]',
    );
    // An activity's type on a deal's event, by its path; a code with no name stays; a deal's
    // TYPE_ID (the portal's own list) is not an activity's; other numbers are left alone.
    expect(readableNote('activity.TYPE_ID is 2, not 9', 'en', [], names(), 'reason')).toBe(
      'Activity · Type is "Call", not 9',
    );
    expect(readableNote('TYPE_ID is "2", not "SALE"', 'en', [], names(), 'reason')).toBe(
      'Type is "2", not "SALE"',
    );
    expect(readableNote('OWNER_ID is "2", not "4"', 'en', [], activity, 'reason')).toBe(
      'Owner is "2", not "4"',
    );
  });
});
