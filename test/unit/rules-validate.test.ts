import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from '@jest/globals';
import { projectRoot } from '../../server/lib/project-root.js';
import { MAX_MAP_BYTES, validateEventMap } from '../../server/rules/validate.js';
import { MAX_RULE_NAME } from '../../server/rules/schema.js';
import { translateMessage } from '../../server/ui/i18n-messages.js';
import { englishIn } from '../helpers/english-words.js';

const sample = () =>
  JSON.parse(
    fs.readFileSync(path.join(projectRoot(), 'server/rules/samples/paid-deal.json'), 'utf8'),
  ) as { rules: Array<Record<string, unknown>> };

const errorsOf = (json: unknown) => {
  const r = validateEventMap(json);
  if (r.ok) throw new Error('expected the map to be invalid');
  return r.errors;
};

describe('validateEventMap', () => {
  // The CLI's `rules import` printed `got string "ftp://admin:urlPASSWORD9@…"`, where the
  // export, the pages and the log mask the same URL.
  it("masks a step URL's credentials in the value it quotes", () => {
    for (const url of [
      'ftp://admin:urlPASSWORD9@erp.example/x',
      'https://erp.example/x?token=urlPASSWORD9 y',
    ]) {
      const doc = sample();
      (doc.rules[0]!.actions as Array<Record<string, unknown>>)[0] = { type: 'http', url };
      const errors = errorsOf(doc);
      const text = errors.map((e) => e.message).join('\n');
      expect([url, text]).toEqual([url, expect.stringContaining('got string "')]);
      expect(text).not.toContain('urlPASSWORD9');
      expect(text).toContain('********');
    }
  });

  it('accepts the sample paid-deal map and upper-cases event names', () => {
    const doc = sample();
    doc.rules[0]!.on = ['onCrmDealUpdate'];
    const r = validateEventMap(doc);
    expect(r.ok).toBe(true);
    if (r.ok) {
      expect(r.map.rules[0]?.on).toEqual(['ONCRMDEALUPDATE']);
      expect(r.map.rules[0]?.actions).toHaveLength(4);
    }
  });

  it('refuses a timeline comment step Bitrix24 would refuse: FIELDS, or a required field missing', () => {
    // b24restdocs api-reference/crm/timeline/comments/crm-timeline-comment-add.md
    const comment = (params: Record<string, unknown>) => ({
      rules: [
        {
          name: 'comment',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'bitrix', method: 'crm.timeline.comment.add', params }],
        },
      ],
    });
    const full = { ENTITY_ID: '{{deal.ID}}', ENTITY_TYPE: 'deal', COMMENT: 'Paid' };
    expect(errorsOf(comment({ FIELDS: full }))).toEqual([
      {
        path: '$.rules[0].actions[0].params.FIELDS',
        message:
          'expected "fields" in lower case: crm.timeline.comment.add does not take "FIELDS" (Bitrix24 CRM 23.100.0 and later)',
      },
    ]);
    expect(errorsOf(comment({ fields: { ENTITY_TYPE: 'deal' } }))).toEqual([
      {
        path: '$.rules[0].actions[0].params.fields',
        message: 'crm.timeline.comment.add needs ENTITY_ID, COMMENT',
      },
    ]);
    expect(errorsOf(comment({ id: 1 }))[0]?.message).toBe(
      'expected an object with ENTITY_ID, ENTITY_TYPE, COMMENT, got nothing',
    );
    // The core reads the fields by their exact names: `entity_id` left the owner 0 and every
    // event failed at the step (OWNER_NOT_FOUND).
    expect(
      errorsOf(
        comment({ fields: { entity_id: '{{deal.ID}}', ENTITY_TYPE: 'deal', comment: 'x' } }),
      ),
    ).toEqual([
      {
        path: '$.rules[0].actions[0].params.fields.entity_id',
        message:
          'expected "ENTITY_ID" in capitals: crm.timeline.comment.add reads its fields by their exact names',
      },
      {
        path: '$.rules[0].actions[0].params.fields.comment',
        message:
          'expected "COMMENT" in capitals: crm.timeline.comment.add reads its fields by their exact names',
      },
    ]);
    // ENTITY_TYPE_ID (2 for a deal) stands for ENTITY_TYPE.
    expect(
      validateEventMap(
        comment({ fields: { ENTITY_ID: '{{deal.ID}}', ENTITY_TYPE_ID: 2, COMMENT: 'Paid' } }),
      ).ok,
    ).toBe(true);
    // Control: the documented form passes, and other methods keep their own keys.
    expect(validateEventMap(comment({ fields: full })).ok).toBe(true);
    const other = comment({ FIELDS: full });
    (other.rules[0]!.actions[0] as { method: string }).method = 'crm.deal.update';
    expect(validateEventMap(other).ok).toBe(true);
  });

  it('refuses an http step on a port fetch never connects to, where the port is written out', () => {
    const map = (url: string) => ({
      rules: [
        {
          name: 'r',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'http', method: 'POST', url }],
        },
      ],
    });
    for (const url of ['http://127.0.0.1:9/x', 'https://erp.example:25/api', 'http://h:6667']) {
      expect(errorsOf(map(url))).toEqual([
        {
          path: '$.rules[0].actions[0].url',
          message: expect.stringMatching(
            /^expected a port an HTTP request can use: .* would never be sent/,
          ) as unknown as string,
        },
      ]);
    }
    // Controls: a usual port, no port, and a port that comes from a template are not refused.
    for (const url of [
      'http://127.0.0.1:8080/x',
      'https://erp.example/api?port=25',
      'http://{{deal.UF_HOST}}:25/x',
    ]) {
      expect(validateEventMap(map(url)).ok).toBe(true);
    }
  });

  it('refuses a telegram step whose chat is neither a number nor @name nor a template', () => {
    const map = (chatId: unknown) => ({
      rules: [
        { name: 'r', on: ['ONCRMDEALADD'], actions: [{ type: 'telegram', chatId, text: 'x' }] },
      ],
    });
    expect(errorsOf(map('hello world'))).toEqual([
      {
        path: '$.rules[0].actions[0].chatId',
        message:
          'expected a Telegram chat: a number like -1001234567890 or @channel_name, got string "hello world"',
      },
    ]);
    // Control: each form Telegram takes, and a template filled per event.
    for (const ok of ['-1001234567890', '42', '@ops_channel', '{{deal.UF_CRM_CHAT}}', 777]) {
      expect([ok, validateEventMap(map(ok)).ok]).toEqual([ok, true]);
    }
  });

  it('refuses a map over MAX_MAP_BYTES as a whole, in English and in Russian', () => {
    const withText = (n: number) => ({
      rules: [
        {
          name: 'r',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'sms', to: '+1555', text: 'я'.repeat(n) }],
        },
      ],
    });
    // Bytes, not characters: 'я' is two bytes of UTF-8.
    expect(validateEventMap(withText(MAX_MAP_BYTES / 2 - 200)).ok).toBe(true);
    const [e] = errorsOf(withText(MAX_MAP_BYTES / 2 + 200));
    expect(e).toEqual({
      path: '$',
      message:
        'the map is 257 KB; at most 256 KB is kept: remove rules, or shorten their templates',
    });
    expect(translateMessage(e!.message, 'ru')).toBe(
      'карта правил занимает 257 КБ; хранится не больше 256 КБ: удалите правила или сократите их шаблоны',
    );
  });

  it('names the JSON path of a wrong type and says what arrived', () => {
    const doc = sample();
    (doc.rules[0]!.actions as Array<Record<string, unknown>>)[1]!.url = 5;
    expect(errorsOf(doc)).toEqual([
      { path: '$.rules[0].actions[1].url', message: 'expected string, got number 5' },
    ]);
  });

  it('says an SLA out of range in words: at least 1 second, at most 30 days', () => {
    const sla = (v: number) =>
      errorsOf({
        rules: [
          {
            name: 'r',
            on: ['ONCRMDEALUPDATE'],
            actions: [{ type: 'sms', to: '1', text: 't' }],
            slaSeconds: v,
          },
        ],
      }).map((e) => e.message);
    // Before: "expected int to be <=9007199254740991, got number 100000000000000000000".
    expect(sla(1e20)).toEqual([
      'expected at most 30 days (2592000 seconds), got number 100000000000000000000',
    ]);
    expect(sla(3_000_000)).toEqual([
      'expected at most 30 days (2592000 seconds), got number 3000000',
    ]);
    expect(sla(-5)).toEqual(['expected at least 1 second, got number -5']);
    expect(sla(1.5)).toEqual(['expected int, got number 1.5']);
    // Control: 30 days exactly is taken.
    expect(
      validateEventMap({
        rules: [
          {
            name: 'r',
            on: ['ONCRMDEALUPDATE'],
            actions: [{ type: 'sms', to: '1', text: 't' }],
            slaSeconds: 2_592_000,
          },
        ],
      }).ok,
    ).toBe(true);
  });

  it('lists every problem, not just the first', () => {
    const errors = errorsOf({
      rules: [
        {
          name: '',
          on: [],
          when: [{ field: 'STAGE_ID' }, { field: 'STAGE_ID', equals: 'A', becomes: 'B' }],
          actions: [
            { type: 'smss', to: 'x' },
            { type: 'http', method: 'FETCH', url: 'ftp://x' },
            { type: 'email', to: 'a@b.c', subject: 'Hi' },
          ],
          slaSeconds: -5,
          colour: 'red',
        },
      ],
    });
    const paths = errors.map((e) => e.path);
    expect(paths).toEqual(
      expect.arrayContaining([
        '$.rules[0].name',
        '$.rules[0].on',
        '$.rules[0].when[0]',
        '$.rules[0].when[1]',
        '$.rules[0].actions[0].type',
        '$.rules[0].actions[1].method',
        '$.rules[0].actions[1].url',
        '$.rules[0].actions[2]',
        '$.rules[0].slaSeconds',
        '$.rules[0].colour',
      ]),
    );
    const byPath = Object.fromEntries(errors.map((e) => [e.path, e.message]));
    expect(byPath['$.rules[0].actions[0].type']).toBe(
      'expected type to be one of "http", "telegram", "email", "sms", "bitrix", got string "smss"',
    );
    expect(byPath['$.rules[0].when[0]']).toMatch(/expected one operator.*got none/);
    expect(byPath['$.rules[0].when[1]']).toMatch(/got "equals" and "becomes"/);
    expect(byPath['$.rules[0].actions[2]']).toMatch(/expected text or html/);
    expect(byPath['$.rules[0].colour']).toBe('unknown key "colour"');
    expect(byPath['$.rules[0].actions[1].url']).toMatch(/expected an http\(s\) URL/);
  });

  it('refuses a header name that no request can carry, naming the header', () => {
    const map = {
      rules: [
        {
          name: 'r',
          on: ['ONCRMDEALADD'],
          actions: [
            {
              type: 'http',
              method: 'POST',
              url: 'https://erp.example/x',
              headers: { 'X Token': 'a', 'X-Api-Key': 'b', "X-Ok_1!#$%&'*+.^`|~": 'c' },
            },
          ],
        },
      ],
    };
    const v = validateEventMap(map);
    expect(v.ok ? [] : v.errors).toEqual([
      {
        path: '$.rules[0].actions[0].headers["X Token"]',
        message:
          'expected a header name of letters, digits and - (no spaces), got string "X Token"',
      },
    ]);
  });

  it('says an empty required text or list in words', () => {
    const v = validateEventMap({
      rules: [{ name: '', on: [], actions: [{ type: 'sms', to: '', text: 'x' }] }],
    });
    expect(v.ok ? [] : v.errors).toEqual([
      { path: '$.rules[0].name', message: 'required; it is empty' },
      { path: '$.rules[0].on', message: 'expected at least one; the list is empty' },
      { path: '$.rules[0].actions[0].to', message: 'required; it is empty' },
    ]);
  });

  it('says an empty URL or REST method is empty before what it should be (found in a walk)', () => {
    const v = validateEventMap({
      rules: [
        {
          name: 'x',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            { type: 'http', method: 'POST', url: '' },
            { type: 'bitrix', method: '' },
          ],
        },
      ],
    });
    const errors = v.ok ? [] : v.errors;
    expect(errors).toEqual([
      {
        path: '$.rules[0].actions[0].url',
        message: 'it is empty; expected an http(s) URL, starting with "https://" (or "http://")',
      },
      {
        path: '$.rules[0].actions[1].method',
        message: 'it is empty; expected a REST method name such as crm.timeline.comment.add',
      },
    ]);
    expect(translateMessage(errors[0]!.message, 'ru')).toBe(
      'оно пустое; ожидается адрес http(s), начинающийся с "https://" (или "http://")',
    );
  });

  it('reports a missing required key as missing', () => {
    expect(errorsOf({ rules: [{ name: 'x', on: ['ONCRMDEALADD'] }] })).toEqual([
      { path: '$.rules[0].actions', message: 'expected array; it is missing' },
    ]);
    expect(errorsOf([])).toEqual([{ path: '$', message: 'expected object, got a list of 0' }]);
  });

  it('rejects duplicate rule names and names both places', () => {
    const doc = sample();
    doc.rules.push({ ...doc.rules[0]! });
    expect(errorsOf(doc)).toEqual([
      {
        path: '$.rules[1].name',
        message:
          'expected a unique rule name; "Paid deal: invoice, shipment, SMS" is also the name of $.rules[0]',
      },
    ]);
  });

  it('counts names that differ only in capitals or spaces around as one', () => {
    const doc = sample();
    doc.rules.push({ ...doc.rules[0]!, name: ' paid DEAL: invoice, shipment, sms' });
    const errors = errorsOf(doc);
    expect(errors).toEqual([
      {
        path: '$.rules[1].name',
        message:
          'expected a unique rule name; " paid DEAL: invoice, shipment, sms" is also the name of $.rules[0] ("Paid deal: invoice, shipment, SMS"; names that differ only in capitals count as one)',
      },
    ]);
    expect(englishIn(translateMessage(errors[0]!.message, 'ru'))).toEqual([]);
    // The builder's refusal of such a name says so too, in Russian as well.
    const builder =
      'a rule named "Paid" already exists (names that differ only in capitals count as one); open it from the rules page to change it, or choose another name';
    expect(translateMessage(builder, 'ru')).toBe(
      'правило с названием "Paid" уже есть (названия, которые различаются только заглавными буквами, считаются одним); чтобы его изменить, откройте его на странице правил или выберите другое название',
    );
  });

  it('rejects a template that reads a step that has not run yet', () => {
    const doc = sample();
    const actions = doc.rules[0]!.actions as Array<Record<string, unknown>>;
    actions.reverse();
    const errors = errorsOf(doc);
    expect(errors).toEqual([
      {
        path: '$.rules[0].actions[0].params',
        message: expect.stringContaining(
          'template {{steps.invoice.response.id}} expects an earlier step named "invoice"',
        ) as unknown as string,
      },
    ]);
  });

  it('takes step names and answer keys in any script, as a Russian admin writes them', () => {
    const doc = {
      rules: [
        {
          name: 'Счёт',
          on: ['ONCRMDEALUPDATE'],
          actions: [
            { type: 'http', method: 'POST', url: 'https://1c.example/api', name: 'счёт' },
            { type: 'sms', to: '+15550100', text: 'Счёт {{steps.счёт.response.номер}}' },
          ],
        },
      ],
    };
    expect(validateEventMap(doc).ok).toBe(true);
    // A space is still refused, and the message says so.
    (doc.rules[0]!.actions[0] as { name: string }).name = 'смс клиенту';
    expect(errorsOf(doc)).toEqual([
      {
        path: '$.rules[0].actions[0].name',
        message: expect.stringContaining(
          'expected a step name of letters, digits, _ or - (no spaces)',
        ) as unknown as string,
      },
      expect.objectContaining({ path: '$.rules[0].actions[1].text' }),
    ]);
  });

  it('takes a URL pasted with spaces around it, and says what is wrong with one it refuses', () => {
    const step = (url: string) => ({
      rules: [
        { name: 'r', on: ['ONCRMDEALADD'], actions: [{ type: 'http', method: 'POST', url }] },
      ],
    });
    const ok = validateEventMap(step('  https://erp.example/api/invoices \n'));
    expect(ok.ok && ok.map.rules[0]!.actions[0]).toMatchObject({
      url: 'https://erp.example/api/invoices',
    });
    const said = (url: string) => errorsOf(step(url)).map((e) => e.message.split(', got')[0]);
    expect(said('https://erp.example/api/my invoices')).toEqual([
      'expected an http(s) URL without spaces (a space inside a URL is written %20)',
    ]);
    expect(said('erp.example/api/invoices')).toEqual([
      'expected an http(s) URL, starting with "https://" (or "http://")',
    ]);
  });

  it('refuses a rule name longer than the pages that list rules can show', () => {
    const named = (name: string) => ({
      rules: [{ name, on: ['ONCRMDEALADD'], actions: [{ type: 'sms', to: '1', text: 'x' }] }],
    });
    expect(validateEventMap(named('x'.repeat(MAX_RULE_NAME))).ok).toBe(true);
    expect(errorsOf(named('x'.repeat(MAX_RULE_NAME + 1)))).toEqual([
      {
        path: '$.rules[0].name',
        message: expect.stringContaining(
          `expected a rule name of at most ${MAX_RULE_NAME} characters, got`,
        ) as unknown as string,
      },
    ]);
  });

  it('rejects a template that is not a path', () => {
    const errors = errorsOf({
      rules: [
        {
          name: 'r',
          on: ['ONCRMDEALADD'],
          actions: [{ type: 'sms', to: '{{contact..PHONE}}', text: 'hi' }],
        },
      ],
    });
    expect(errors[0]?.path).toBe('$.rules[0].actions[0].to');
    expect(errors[0]?.message).toMatch(/^template \{\{contact\.\.PHONE\}\}: not a path/);
  });

  it('rejects an unknown template filter with its JSON path', () => {
    const errors = errorsOf({
      rules: [
        {
          name: 'r',
          on: ['ONCRMDEALADD'],
          actions: [{ type: 'sms', to: '1', text: 'hi {{deal.TITLE | shout}}' }],
        },
      ],
    });
    expect(errors).toEqual([
      {
        path: '$.rules[0].actions[0].text',
        message:
          'template {{deal.TITLE | shout}}: unknown filter "shout" (filters: raw, upper, lower, date, money)',
      },
    ]);
  });
});

describe('a map nested too deep', () => {
  it('is refused with the place, not a stack overflow', () => {
    let body: Record<string, unknown> = { end: 1 };
    for (let i = 0; i < 5000; i++) body = { a: body };
    const result = validateEventMap({
      rules: [
        {
          name: 'deep',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'http', method: 'POST', url: 'https://erp.example/api', body }],
        },
      ],
    });
    expect(result.ok).toBe(false);
    const [error] = result.ok ? [] : result.errors;
    expect(error!.path).toMatch(/^\$\.rules\[0\]\.actions\[0\]\.body(\.a)+$/);
    expect(error!.message).toBe('expected at most 64 levels of nesting');
  });

  it('takes a body nested as deep as a rule needs (control)', () => {
    let body: Record<string, unknown> = { end: 1 };
    for (let i = 0; i < 20; i++) body = { a: body };
    const result = validateEventMap({
      rules: [
        {
          name: 'nested',
          on: ['ONCRMDEALUPDATE'],
          actions: [{ type: 'http', method: 'POST', url: 'https://erp.example/api', body }],
        },
      ],
    });
    expect(result.ok).toBe(true);
  });
});
