import { describe, expect, it } from '@jest/globals';
import { translateMessage } from '../../server/ui/i18n-messages.js';
import { englishIn } from '../helpers/english-words.js';
import { checkMap, eventsTriggeredBy } from '../../server/rules/check-map.js';
import type { Action, EventMap, Rule } from '../../server/rules/model.js';

const sms: Action = { type: 'sms', to: '{{contact.PHONE}}', text: 'hi' };
const update = (fields: Record<string, unknown>, method = 'crm.deal.update'): Action => ({
  type: 'bitrix',
  method,
  params: { id: '{{entity.ID}}', fields },
});
const rule = (name: string, on: string[], actions: Action[], extra: Partial<Rule> = {}): Rule => ({
  name,
  on,
  actions,
  ...extra,
});

describe('checkMap', () => {
  it('warns when two rules on one trigger write the same field, naming both', () => {
    const map: EventMap = {
      rules: [
        rule('set stage', ['ONCRMDEALADD'], [update({ STAGE_ID: 'PREPARATION', TITLE: 'x' })]),
        rule('set stage too', ['ONCRMDEALADD'], [update({ stageId: 'NEW' }, 'crm.item.update')]),
        rule('other trigger', ['ONCRMLEADADD'], [update({ STAGE_ID: 'WON' })]),
      ],
    };
    // crm.item.update without entityTypeId is a smart process: no overlap with crm.deal.update.
    expect(checkMap(map)).toEqual([]);
    (map.rules[1]!.actions[0] as { params: Record<string, unknown> }).params.entityTypeId = 2;
    expect(checkMap(map)).toEqual([
      {
        code: 'same-field-write',
        rules: ['set stage', 'set stage too'],
        message: expect.stringContaining('both write STAGE_ID') as unknown as string,
      },
    ]);
  });

  it("knows a custom field in either naming: crm.item's camelCase and the UPPER_CASE name", () => {
    // A timestamp-named field keeps the underscore between its numeric blocks in camelCase
    // (b24restdocs api-reference/crm/universal/index.md), so UF_CRM_3_1747309727 is
    // ufCrm3_1747309727, and a mixed name only loses its prefix: ufCrm_3_DIGIT10.
    const item = (fields: Record<string, unknown>): Action => ({
      type: 'bitrix',
      method: 'crm.item.update',
      params: { entityTypeId: 3, id: '{{entity.id}}', fields },
    });
    const map: EventMap = {
      rules: [
        rule(
          'camel',
          ['ONCRMDYNAMICITEMADD'],
          [item({ ufCrm3_1747309727: 'a', ufCrm_3_DIGIT10: 1 })],
        ),
        rule(
          'upper',
          ['ONCRMDYNAMICITEMADD'],
          [item({ UF_CRM_3_1747309727: 'b', UF_CRM_3_DIGIT10: 2 })],
        ),
      ],
    };
    expect(checkMap(map).filter((w) => w.code === 'same-field-write')).toEqual([
      expect.objectContaining({
        rules: ['camel', 'upper'],
        message: expect.stringContaining('both write UF_CRM_3_1747309727, UF_CRM_3_DIGIT10'),
      }),
    ]);
  });

  it('warns about a rule whose own action can trigger its event', () => {
    const map: EventMap = {
      rules: [
        rule('touch deal', ['ONCRMDEALUPDATE'], [sms, update({ COMMENTS: 'seen' })]),
        rule(
          'comment only',
          ['ONCRMDEALUPDATE'],
          [{ type: 'bitrix', method: 'crm.timeline.comment.add', params: { fields: {} } }],
        ),
      ],
    };
    const warnings = checkMap(map);
    expect(warnings).toEqual([
      {
        code: 'self-trigger',
        rules: ['touch deal'],
        message: expect.stringMatching(
          /^rule "touch deal" listens to ONCRMDEALUPDATE and its step crm\.deal\.update can trigger that event again/,
        ) as unknown as string,
      },
    ]);
  });

  it('warns about rules that trigger each other in a cycle', () => {
    const map: EventMap = {
      rules: [
        rule('deal to lead', ['ONCRMDEALUPDATE'], [update({ TITLE: 'x' }, 'crm.lead.update')]),
        rule('lead to deal', ['ONCRMLEADUPDATE'], [update({ TITLE: 'y' })]),
      ],
    };
    expect(checkMap(map).map((w) => [w.code, w.rules])).toEqual([
      ['trigger-cycle', ['deal to lead', 'lead to deal']],
    ]);
  });

  it('warns about rules on events that are not bound, and ignores disabled rules', () => {
    const map: EventMap = {
      rules: [
        rule('leads', ['ONCRMLEADADD'], [sms]),
        rule('off', ['ONCRMDEALUPDATE'], [update({ X: 1 })], { enabled: false }),
      ],
    };
    expect(checkMap(map, { boundEvents: ['ONCRMDEALADD', 'ONCRMDEALUPDATE'] })).toEqual([
      {
        code: 'unbound-event',
        rules: ['leads'],
        message: expect.stringContaining(
          'ONCRMLEADADD, which is not subscribed (Subscriptions)',
        ) as unknown as string,
      },
    ]);
  });

  it("warns of a change compared on an update whose record type's ADD event is not subscribed", () => {
    const becomes = { field: 'STAGE_ID', becomes: 'WON' };
    const map: EventMap = {
      rules: [
        rule('won', ['ONCRMDEALUPDATE'], [sms], {
          when: [becomes, { field: 'TITLE', changed: true }],
        }),
        rule('plain', ['ONCRMDEALUPDATE'], [sms], { when: [{ field: 'STAGE_ID', equals: 'WON' }] }),
        rule('item', ['ONCRMDYNAMICITEMUPDATE_1038'], [sms], { when: [becomes] }),
        rule('task', ['ONTASKUPDATE'], [sms], { when: [{ field: 'STATUS', changed: true }] }),
      ],
    };
    const first = (bound: string[]) =>
      checkMap(map, { boundEvents: bound }).filter((w) => w.code === 'first-change-unseen');
    const all = ['ONCRMDEALUPDATE', 'ONCRMDYNAMICITEMUPDATE_1038', 'ONTASKUPDATE'];
    const warned = first(all);
    expect(warned.map((w) => w.rules[0])).toEqual(['won', 'item', 'task']);
    expect(warned[0]!.message).toBe(
      'rule "won": the first change of a new record (ONCRMDEALUPDATE) is skipped by its conditions on changes of STAGE_ID, TITLE, because the portal is not subscribed to ONCRMDEALADD (Subscriptions), where a record is first seen; subscribe to it',
    );
    expect(warned[1]!.message).toContain('subscribed to ONCRMDYNAMICITEMADD_1038 (');
    expect(translateMessage(warned[0]!.message, 'ru')).toBe(
      'правило "won": первое изменение новой записи (ONCRMDEALUPDATE) не пройдёт его условия на изменение STAGE_ID, TITLE, потому что портал не подписан на ONCRMDEALADD (Подписки), где запись видна впервые; подпишитесь на него',
    );
    // Control: with the ADD events subscribed (a smart process's general one will do, its
    // records sharing one snapshot), nothing is said.
    expect(first([...all, 'ONCRMDEALADD', 'ONCRMDYNAMICITEMADD', 'ONTASKADD'])).toEqual([]);
    // An update not subscribed is said once, as unbound, not again here.
    expect(first(['ONTASKUPDATE'])).toHaveLength(1);
  });

  it("does not take another smart process type's ADD for this type's", () => {
    const map: EventMap = {
      rules: [
        rule('item', ['ONCRMDYNAMICITEMUPDATE_1038'], [sms], {
          when: [{ field: 'stageId', becomes: 'DT1038_1:SUCCESS' }],
        }),
      ],
    };
    const first = (bound: string[]) =>
      checkMap(map, { boundEvents: bound }).filter((w) => w.code === 'first-change-unseen');
    // Type 1040's records are not type 1038's: the first change of an item is still unseen.
    const other = first(['ONCRMDYNAMICITEMUPDATE_1038', 'ONCRMDYNAMICITEMADD_1040']);
    expect(other.map((w) => w.message)).toEqual([
      expect.stringContaining('not subscribed to ONCRMDYNAMICITEMADD_1038 ('),
    ]);
    // Its own type's ADD, or the general one, sees them.
    expect(first(['ONCRMDYNAMICITEMUPDATE_1038', 'ONCRMDYNAMICITEMADD_1038'])).toEqual([]);
  });

  it('names the event a misspelt trigger is close to', () => {
    const map: EventMap = { rules: [rule('typo', ['ONCRMDEALUPDTE', 'ONCRMLEADADD'], [sms])] };
    const [w] = checkMap(map, { boundEvents: ['ONCRMDEALUPDATE'] });
    expect(w?.message).toBe(
      'rule "typo" listens to ONCRMDEALUPDTE, ONCRMLEADADD, which are not subscribed (Subscriptions); it will not fire until the portal is subscribed to them; did you mean ONCRMDEALUPDATE (for ONCRMDEALUPDTE)?',
    );
    expect(translateMessage(w!.message, 'ru')).toMatch(
      /возможно, имелось в виду ONCRMDEALUPDATE \(вместо ONCRMDEALUPDTE\)\?$/,
    );
  });

  it('warns about an SLA within the settling time, which every event would miss', () => {
    const map: EventMap = {
      rules: [
        rule('instant', ['ONCRMDEALUPDATE'], [sms], { slaSeconds: 1 }),
        rule('fine', ['ONCRMDEALUPDATE'], [sms], { slaSeconds: 2 }),
        rule('none', ['ONCRMDEALUPDATE'], [sms]),
      ],
    };
    const warnings = checkMap(map, { settleMs: 1000 });
    expect(warnings).toEqual([
      {
        code: 'sla-too-short',
        rules: ['instant'],
        message:
          'rule "instant" has an SLA of 1 s, but an event is first read 1 s after it arrives (EVENT_SETTLE_MS); every event will be late',
      },
    ]);
    // Without the settling time (EVENT_SETTLE_MS=0) any SLA can be met.
    expect(checkMap(map, { settleMs: 0 })).toEqual([]);
    expect(translateMessage(warnings[0]!.message, 'ru')).toBe(
      'правило "instant" имеет SLA 1 с, но событие читается не раньше чем через 1 с после получения (EVENT_SETTLE_MS); каждое событие опоздает',
    );
  });

  it("warns about an http step's timeout beyond the server's STEP_TIMEOUT_MAX_SECONDS", () => {
    const call = (timeoutMs?: number): Action => ({
      type: 'http',
      method: 'POST',
      url: 'https://erp.example/x',
      ...(timeoutMs === undefined ? {} : { timeoutMs }),
    });
    const map: EventMap = {
      rules: [
        rule('slow ERP', ['ONCRMDEALUPDATE'], [sms, call(120_000)]),
        rule('fine', ['ONCRMDEALUPDATE'], [call(60_000), call()]),
      ],
    };
    const warnings = checkMap(map, { stepTimeoutMaxMs: 60_000 });
    expect(warnings).toEqual([
      {
        code: 'step-timeout-cut',
        rules: ['slow ERP'],
        message:
          'rule "slow ERP", step 2 waits up to 120 s for an answer, but this server ends a step after 60 s (STEP_TIMEOUT_MAX_SECONDS)',
      },
    ]);
    expect(checkMap(map, {})).toEqual([]);
    expect(translateMessage(warnings[0]!.message, 'ru')).toBe(
      'правило "slow ERP", шаг 2 ждёт ответа до 120 с, но этот сервер прерывает шаг через 60 с (STEP_TIMEOUT_MAX_SECONDS)',
    );
  });

  it('warns of a Telegram text whose markup the Bot API would refuse, values left aside', () => {
    const tg = (text: string, parseMode?: 'HTML' | 'MarkdownV2'): Action => ({
      type: 'telegram',
      chatId: '-100123',
      text,
      ...(parseMode ? { parseMode } : {}),
    });
    const map: EventMap = {
      rules: [
        rule('unclosed', ['ONCRMDEALUPDATE'], [tg('Big <b>deal {{deal.TITLE}}', 'HTML')]),
        rule('bang', ['ONCRMDEALUPDATE'], [sms, tg('Deal {{deal.ID}} won!', 'MarkdownV2')]),
        rule('fine', ['ONCRMDEALUPDATE'], [tg('<b>{{deal.TITLE}}</b> &amp; co', 'HTML')]),
        rule('plain', ['ONCRMDEALUPDATE'], [tg('Big <b>deal')]),
      ],
    };
    const warnings = checkMap(map).filter((w) => w.code === 'telegram-markup');
    expect(warnings.map((w) => w.rules[0])).toEqual(['unclosed', 'bang']);
    expect(warnings[0]!.message).toBe(
      `rule "unclosed", step 1: Telegram will refuse its text as HTML (can't parse entities: Can't find end tag corresponding to start tag "b"); every message of this step would fail`,
    );
    expect(warnings[1]!.message).toMatch(
      /^rule "bang", step 2: Telegram will refuse its text as MarkdownV2 \(can't parse entities: Character '!' is reserved/,
    );
    expect(translateMessage(warnings[0]!.message, 'ru')).toContain(
      ': Telegram не примет текст в режиме HTML',
    );
  });

  it('knows which events a REST method causes', () => {
    expect(eventsTriggeredBy('crm.deal.update')).toEqual(['ONCRMDEALUPDATE']);
    expect(eventsTriggeredBy('crm.item.add', { entityTypeId: 1 })).toEqual(['ONCRMLEADADD']);
    // A smart process's item: the general event and the type's own, for one change.
    expect(eventsTriggeredBy('crm.item.update', { entityTypeId: 128 })).toEqual([
      'ONCRMDYNAMICITEMUPDATE',
      'ONCRMDYNAMICITEMUPDATE_128',
    ]);
    expect(eventsTriggeredBy('crm.timeline.comment.add')).toEqual(['ONCRMTIMELINECOMMENTADD']);
    expect(eventsTriggeredBy('tasks.task.update')).toEqual(['ONTASKUPDATE']);
    expect(eventsTriggeredBy('crm.deal.get')).toEqual([]);
  });

  it('knows an old invoice’s add and update also send ONCRMINVOICESETSTATUS, and warns of a rule on it writing the invoice', () => {
    // CCrmInvoice::Add (behind Update too) calls SetStatus, whose event comes first.
    expect(eventsTriggeredBy('crm.invoice.update')).toEqual([
      'ONCRMINVOICESETSTATUS',
      'ONCRMINVOICEUPDATE',
    ]);
    expect(eventsTriggeredBy('crm.invoice.add')).toEqual([
      'ONCRMINVOICESETSTATUS',
      'ONCRMINVOICEADD',
    ]);
    expect(eventsTriggeredBy('crm.invoice.delete')).toEqual(['ONCRMINVOICEDELETE']);
    const map: EventMap = {
      rules: [
        rule(
          'Paid invoice: note it',
          ['ONCRMINVOICESETSTATUS'],
          [update({ COMMENTS: 'paid' }, 'crm.invoice.update')],
        ),
      ],
    };
    expect(checkMap(map).map((w) => [w.code, w.message])).toEqual([
      [
        'self-trigger',
        'rule "Paid invoice: note it" listens to ONCRMINVOICESETSTATUS and its step crm.invoice.update can trigger that event again; the loop guard skips the app\'s own writes, but make sure the conditions cannot re-match',
      ],
    ]);
  });
});

describe('unclosed templates', () => {
  it('warns about a {{ without its closing braces, sent as written, in English and Russian', () => {
    const map: EventMap = {
      rules: [
        {
          name: 'Paid',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            {
              type: 'http',
              method: 'POST',
              url: 'https://erp.example/{{deal.ID}}',
              body: { title: '{{deal.TITLE', ok: '{{deal.ID}} and {{deal.OPPORTUNITY}}' },
            },
          ],
        },
      ],
    };
    const warnings = checkMap(map).filter((w) => w.code === 'unclosed-template');
    expect(warnings).toEqual([
      {
        code: 'unclosed-template',
        rules: ['Paid'],
        message:
          'rule "Paid", step 1: "{{deal.TITLE" has no closing braces, so it is sent as written; close it as in {{deal.TITLE}}',
      },
    ]);
    expect(translateMessage(warnings[0]!.message, 'ru')).toBe(
      'правило "Paid", шаг 1: "{{deal.TITLE" без закрывающих скобок, поэтому отправится как написано; закройте, как в {{deal.TITLE}}',
    );
    // Control: the same step with the braces closed says nothing.
    const closed = structuredClone(map);
    (closed.rules[0]!.actions[0] as { body: Record<string, string> }).body.title = '{{deal.TITLE}}';
    expect(checkMap(closed).filter((w) => w.code === 'unclosed-template')).toEqual([]);
    // A disabled rule (a draft) hears of its text too, unknown starts of placeholders as well.
    const draft = structuredClone(map);
    draft.rules[0]!.enabled = false;
    (draft.rules[0]!.actions[0] as { body: Record<string, string> }).body.ok = '{{client.NAME}}';
    expect(checkMap(draft).map((w) => w.code)).toEqual(['unclosed-template', 'unknown-root']);
  });

  it('warns of steps of a channel the server has not set up, and of a Telegram step with no chat to go to', () => {
    const map: EventMap = {
      rules: [
        rule(
          'Paid',
          ['ONCRMDEALUPDATE'],
          [
            { type: 'telegram', text: 'Paid: {{deal.TITLE}}' },
            { type: 'email', to: 'a@example.com', subject: 'Paid', text: 'x' },
            sms,
            { type: 'telegram', text: 'to a chat', chatId: '-100123' },
          ],
        ),
        rule('Off', ['ONCRMDEALUPDATE'], [sms], { enabled: false }),
      ],
    };
    const none = { telegram: false, email: false, sms: false };
    const warnings = checkMap(map, { channels: none, portalChat: false });
    expect(warnings.map((w) => [w.code, w.rules, w.message])).toEqual([
      [
        'channel-not-set-up',
        ['Paid'],
        'rule "Paid", step 1: Telegram is not set up on this server (TELEGRAM_BOT_TOKEN), so this step fails every time the rule runs; ask the app\'s operator to set it up, or remove the step',
      ],
      ['channel-not-set-up', ['Paid'], expect.stringContaining('step 2: e-mail is not set up')],
      ['channel-not-set-up', ['Paid'], expect.stringContaining('step 3: SMS is not set up')],
      ['channel-not-set-up', ['Paid'], expect.stringContaining('step 4: Telegram is not set up')],
    ]);
    for (const w of warnings) expect(englishIn(translateMessage(w.message, 'ru'))).toEqual([]);
    // Telegram set up: only the step without a chat, on a portal without an alert chat.
    const telegram = { ...none, telegram: true, email: true, sms: true };
    const noChat = checkMap(map, { channels: telegram, portalChat: false });
    expect(noChat.map((w) => w.message)).toEqual([
      'rule "Paid", step 1: the step names no chat, and this portal has no alert chat of its own (Alerts page), so this step fails every time the rule runs; name a chat in the step, or set the portal\'s alert chat',
    ]);
    expect(englishIn(translateMessage(noChat[0]!.message, 'ru'))).toEqual([]);
    // Controls: with the portal's alert chat, or where it is not known (the default map).
    expect(checkMap(map, { channels: telegram, portalChat: true })).toEqual([]);
    expect(checkMap(map, { channels: telegram })).toEqual([]);
    expect(checkMap(map)).toEqual([]);
  });

  it('warns of a template that starts with a name no rule has, in English and Russian', () => {
    const map: EventMap = {
      rules: [
        rule(
          'Paid',
          ['ONCRMDEALUPDATE'],
          [
            {
              type: 'sms',
              to: '{{client.PHONE}}',
              text: '{{Deal.TITLE}} for {{client.NAME}} {{deal.ID}} {{contact.NAME?}} {{steps.x.status?}}',
            },
          ],
        ),
      ],
    };
    const warnings = checkMap(map).filter((w) => w.code === 'unknown-root');
    expect(warnings.map((w) => w.message)).toEqual([
      'rule "Paid", step 1: {{client.PHONE}} reads "client", a value no rule has',
      'rule "Paid", step 1: {{Deal.TITLE}} reads "Deal", a value no rule has; did you mean "deal"?',
    ]);
    expect(translateMessage(warnings[1]!.message, 'ru')).toBe(
      'правило "Paid", шаг 1: {{Deal.TITLE}} читает "Deal", а такого значения у правила нет; возможно, имелось в виду "deal"?',
    );
    // Control: the names a rule has raise nothing.
    const known = structuredClone(map);
    (known.rules[0]!.actions[0] as { to: string; text: string }).to = '{{contact.PHONE}}';
    (known.rules[0]!.actions[0] as { to: string; text: string }).text =
      '{{deal.TITLE}} {{entity.ID}} {{event.name}} {{portal.domain}} {{company.TITLE?}}';
    expect(checkMap(known).filter((w) => w.code === 'unknown-root')).toEqual([]);
  });

  it('warns of a record the rule’s events never bring: a deal in an activity rule (a new admin’s walk)', () => {
    const step = (text: string) => [{ type: 'sms' as const, to: '+100', text }];
    const map: EventMap = {
      rules: [
        rule(
          'Calls',
          ['ONCRMACTIVITYADD'],
          step('{{activity.SUBJECT}} {{deal.TITLE}} {{contact.PHONE}} {{deal.ID}}'),
        ),
      ],
    };
    const warnings = checkMap(map).filter((w) => w.code === 'unknown-root');
    expect(warnings.map((w) => w.message)).toEqual([
      'rule "Calls", step 1: {{deal.TITLE}} reads "deal": this rule\'s events (ONCRMACTIVITYADD) bring no deal, so the step fails every time',
      'rule "Calls", step 1: {{contact.PHONE}} reads "contact": this rule\'s events (ONCRMACTIVITYADD) bring no contact, so the step fails every time',
    ]);
    expect(translateMessage(warnings[0]!.message, 'ru')).toBe(
      'правило "Calls", шаг 1: {{deal.TITLE}} читает "deal": события этого правила (ONCRMACTIVITYADD) не приносят записи deal, поэтому шаг будет завершаться ошибкой каждый раз',
    );
    // Controls: a deal rule has its deal and contact; a rule on a deal and an activity event
    // may read the deal (one of its events brings it); an event of no known record is not
    // judged.
    const fine = (on: string[]) =>
      checkMap({ rules: [rule('R', on, step('{{deal.TITLE}} {{contact.PHONE?}}'))] }).filter(
        (w) => w.code === 'unknown-root',
      );
    expect(fine(['ONCRMDEALUPDATE'])).toEqual([]);
    expect(fine(['ONCRMDEALUPDATE', 'ONCRMACTIVITYADD'])).toEqual([]);
    expect(fine(['ONSOMETHINGCUSTOM'])).toEqual([]);
    expect(fine(['ONTASKADD'])).toHaveLength(2);
  });

  it('judges a rule on ONCRMINVOICESETSTATUS as an invoice’s: it brings the invoice and its payer, never a deal', () => {
    // The status event carries the invoice's ID (CCrmInvoiceRestService::processEvent) and
    // is stored and read as the invoice (intake, entity-reader).
    const on = (text: string) =>
      checkMap({
        rules: [rule('Paid', ['ONCRMINVOICESETSTATUS'], [{ type: 'sms', to: '+100', text }])],
      })
        .filter((w) => w.code === 'unknown-root')
        .map((w) => w.message);
    expect(on('{{deal.TITLE}} {{invoice.ORDER_TOPIC}} {{contact.NAME}} {{company.TITLE}}')).toEqual(
      [
        'rule "Paid", step 1: {{deal.TITLE}} reads "deal": this rule\'s events (ONCRMINVOICESETSTATUS) bring no deal, so the step fails every time',
      ],
    );
  });
});
