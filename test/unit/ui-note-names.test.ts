import { describe, expect, it } from '@jest/globals';
import { evaluateRule } from '../../server/rules/conditions.js';
import type { StageNames } from '../../server/rules/describe.js';
import type { Condition, Rule } from '../../server/rules/model.js';
import type { Snapshot } from '../../server/rules/model.js';
import { mapWords } from '../../server/ui/i18n-map.js';
import { readableNote } from '../../server/ui/note-names.js';

const update = { name: 'ONCRMDEALUPDATE', entityType: 'deal', entityId: '42' };
const STAGES: Record<string, string> = { NEW: 'New', WON: 'Deal won', LOSE: 'Deal lost' };
const stages: StageNames = (code) => (STAGES[code] ? { name: STAGES[code] } : undefined);
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
    for (const [raw, want] of cases) expect(readableNote(raw, 'en', [], names())).toBe(want);
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
    expect(readableNote(raw, 'ru', [], { ...names('ru'), stages: ru })).toBe(
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
    expect(readableNote('TITLE is "a: TITLE is b", not "c"', 'en', [], names())).toBe(
      'Title is "a: TITLE is b", not "c"',
    );
    // A lead's status and a smart process's stage are not deal stages.
    const lead = { ...names(), entityType: 'lead' };
    expect(readableNote('STATUS_ID is "NEW", not "WON"', 'en', [], lead)).toBe(
      'Status is "NEW", not "WON"',
    );
    const item = { ...names(), entityType: 'dynamic:1038' };
    expect(readableNote('stageId is "NEW", not "WON"', 'en', [], item)).toBe(
      'Stage is "NEW", not "WON"',
    );
    // A deal's stage on a contact's event is the deal's.
    const contact = { ...names(), entityType: 'contact' };
    expect(readableNote('deal.STAGE_ID is "NEW", not "WON"', 'en', [], contact)).toBe(
      'Deal · Stage is "New", not "Deal won"',
    );
    expect(
      readableNote('STAGE_ID is "NEW", not "WON"', 'en', [], { ...names(), stages: undefined }),
    ).toBe('Stage is "NEW", not "WON"');
    expect(readableNote('no rule matched', 'ru', [], names('ru'))).toBe(
      'ни одно правило не подошло',
    );
  });

  it('names a stage with its pipeline where the portal has several', () => {
    const piped: StageNames = (code) =>
      code === 'C1:WON' ? { name: 'Paid', pipeline: 'Wholesale' } : undefined;
    expect(readableNote('STAGE_ID is "C1:WON"', 'en', [], { ...names(), stages: piped })).toBe(
      'Stage is "Paid (pipeline Wholesale)"',
    );
  });
});
