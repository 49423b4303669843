import { describe, expect, it } from '@jest/globals';
import { createSecretBox } from '../../server/lib/crypto.js';
import { scopeErrors } from '../../server/rules/scopes.js';
import { sealMap } from '../../server/rules/secret-fields.js';
import { savedBeforeChecks, validateEventMap } from '../../server/rules/validate.js';
import {
  RU_ERRORS,
  translateError,
  translateMessage,
  translateNote,
} from '../../server/ui/i18n-messages.js';
import { clip } from '../../server/ui/context.js';
import { englishIn } from '../helpers/english-words.js';
import { NOT_CONFIGURED_MESSAGE } from '../../server/install/install-portal.js';
import { parseInstallRequest } from '../../server/install/install-request.js';

/** What a save refuses a map with: validation, then scopes and secrets of a valid one. */
function refusals(map: unknown): string[] {
  const v = validateEventMap(map);
  if (!v.ok) return v.errors.map((e) => e.message);
  const sealed = sealMap(v.map, {
    box: createSecretBox(Buffer.alloc(32, 1)),
    envNames: new Set<string>(),
  });
  return [
    ...scopeErrors(v.map, []).map((e) => e.message),
    ...(sealed.ok ? [] : sealed.errors.map((e) => e.message)),
  ];
}

describe('messages on Russian pages', () => {
  it('translates the phrases around the data and keeps the data as written', () => {
    // The two refusals of session 36: the default map's credential, the step budget's wait.
    expect(
      translateMessage(
        '"********" keeps the default map\'s credential only for the request the default map sends, and this step\'s body, headers or signing secret differ from it; type the value or use {"$env": "NAME"}',
        'ru',
      ),
    ).toBe(
      '"********" сохраняет секрет карты по умолчанию только для запроса, который отправляет карта по умолчанию, а у этого шага тело, заголовки или ключ подписи другие; введите значение или используйте {"$env": "NAME"}',
    );
    expect(
      translateError(
        "waiting 2300 ms: this portal's steps filled in more than 2 MB a second (PORTAL_STEP_MB_PER_SECOND)",
        'ru',
      ),
    ).toBe(
      'ждём 2300 мс: шаги этого портала заполнили больше 2 МБ в секунду (PORTAL_STEP_MB_PER_SECOND)',
    );
    expect(translateMessage('expected string, got number 5', 'ru')).toBe(
      'ожидается строка, получено: число 5',
    );
    expect(translateMessage('STAGE_ID became "WON" (was "NEW")', 'ru')).toBe(
      'STAGE_ID: теперь "WON" (было "NEW")',
    );
    expect(translateMessage('template {{contact.PHONE}}: contact has no PHONE', 'ru')).toBe(
      'шаблон {{contact.PHONE}}: contact не содержит PHONE',
    );
    expect(translateMessage('unknown key "is expected"', 'ru')).toBe(
      'неизвестный ключ "is expected"',
    );
  });

  it('leaves no English word in the validation messages an admin meets most', () => {
    for (const [en, ru] of [
      [
        'expected a field name or path such as STAGE_ID, deal.STAGE_ID or contact.PHONE',
        'ожидается поле или путь, например STAGE_ID, deal.STAGE_ID или contact.PHONE',
      ],
      ['expected int, got float', 'ожидается целое число, получено дробное число'],
      [
        'unknown filter "upcase" (filters: raw, upper, lower, date, money)',
        'неизвестный фильтр "upcase" (фильтры: raw, upper, lower, date, money)',
      ],
      ['expected number to be >=1', 'ожидается число не меньше 1'],
      ['expected number to be <=10', 'ожидается число не больше 10'],
    ]) {
      expect(translateMessage(en!, 'ru')).toBe(ru);
    }
  });

  it('leaves no English word in the rarer refusals of a save', () => {
    const messages = [
      ...refusals({
        rules: [
          {
            name: '',
            on: ['x'],
            when: [
              { field: 'A', equals: {} },
              { field: 'B', changed: false },
              { field: 'C' },
              { field: 'D', equals: '1', in: ['2'] },
            ],
            actions: [
              { type: 'http', method: 'GET', url: 'ftp://x', secret: 'short', timeoutMs: 1.5 },
              { type: 'http', method: 'GET', url: 'https://a', headers: { A: { $env: 'a b' } } },
              { type: 'http', method: 'GET', url: 'https://a', headers: { B: { x: 1 } } },
              { type: 'http', method: 'GET', url: 'https://a', headers: { 'X Token': 'x' } },
              { type: 'http', method: 'GET', url: 'http://a:25/x' },
              { type: 'nope' },
              { type: 'telegram', text: '', parseMode: 'X', name: 'a b' },
              { type: 'email', to: 'a', subject: 's' },
              { type: 'bitrix', method: 'x', params: 5 },
              { type: 'bitrix', method: 'crm.timeline.comment.add', params: { FIELDS: {} } },
              { type: 'bitrix', method: 'crm.timeline.comment.add', params: { fields: 'x' } },
              { type: 'bitrix', method: 'crm.timeline.comment.add', params: { fields: {} } },
              { type: 'sms', to: '1', text: '{{steps.nope.response}} {{deal..x}}' },
            ],
            slaSeconds: 0,
            enabled: 'yes',
            extra: 1,
          },
        ],
      }),
      ...refusals({ rules: 5 }),
      ...refusals({
        rules: [
          {
            name: 'r',
            on: ['ONTASKADD'],
            when: [{ field: 'contact.PHONE', changed: true }],
            actions: [
              { type: 'bitrix', method: 'tasks.task.add' },
              {
                type: 'http',
                method: 'POST',
                url: 'https://a.example/x',
                headers: { Authorization: '********', 'X-Key': { $env: 'NOPE' } },
              },
            ],
          },
        ],
      }),
    ];
    // A stored rule that fails a check added after it was saved, named under it.
    messages.push(
      ...savedBeforeChecks({
        rules: [
          {
            name: 'Old',
            on: ['ONCRMDEALADD'],
            actions: [{ type: 'http', method: 'GET', url: 'https://a', headers: { 'X T': 'x' } }],
          },
        ],
      }).map((w) => w.message),
    );
    expect(messages.length).toBeGreaterThan(25);
    const english = messages.flatMap((m) => {
      const ru = translateMessage(m, 'ru');
      return englishIn(ru).length ? [ru] : [];
    });
    expect(english).toEqual([]);
  });

  it("leaves no English word in the installer page's refusals", () => {
    const A = 'a'.repeat(40);
    const parseError = (query: Record<string, unknown>, raw: string) => {
      try {
        parseInstallRequest(query, raw);
      } catch (e) {
        return (e as Error).message;
      }
      throw new Error(`parsed: ${raw}`);
    };
    const q = { DOMAIN: 'acme.bitrix24.com', LANG: 'ru' };
    const messages = [
      NOT_CONFIGURED_MESSAGE,
      parseError(q, `AUTH_ID=x&member_id=m1`),
      parseError(q, `member_id=m1`),
      parseError(q, `AUTH_ID=${A}`),
      parseError({ ...q, DOMAIN: 'not a host' }, `AUTH_ID=${A}&member_id=m1`),
      // install-portal.ts, the refusals after the request parsed
      'This portal address is not allowed (B24_PORTAL_HOSTS).',
      'This OAuth server is not allowed (B24_OAUTH_SERVERS).',
      'The client endpoint is not on the portal domain.',
      'The authorization belongs to another application.',
      'Only a portal administrator can install this application.',
      'REFRESH_ID is missing.',
      'The authorization belongs to another portal.',
      'The OAuth server did not confirm the authorization.',
      "Bitrix24 refused this app's credentials for this portal: the app may not be installed here, or its operator should check B24_CLIENT_ID and B24_CLIENT_SECRET.",
      'The Bitrix24 authorization server is not answering. Please try again in a few minutes.',
    ];
    const english = messages.flatMap((m) => {
      const ru = translateMessage(m, 'ru');
      // member_id is the name of the form field, data like AUTH_ID.
      return englishIn(ru.replace(/\bmember_id\b/g, '')).length ? [ru] : [];
    });
    expect(english).toEqual([]);
  });

  it("translates a step's configuration errors, names as written", () => {
    expect(
      translateMessage(
        "telegram step: no chatId in the step, and this portal has no alert chat of its own (set one on the app's Alerts page)",
        'ru',
      ),
    ).toBe(
      'шаг Telegram: в шаге нет chatId, а у портала нет своего чата оповещений (задайте его на странице «Оповещения»)',
    );
    expect(translateMessage('sms step: "abc" is not a phone number', 'ru')).toBe(
      'шаг SMS: "abc" — не номер телефона',
    );
  });

  it('leaves English pages and unknown messages alone', () => {
    expect(translateMessage('expected string, got number 5', 'en')).toBe(
      'expected string, got number 5',
    );
    expect(translateMessage('ECONNREFUSED', 'ru')).toBe('ECONNREFUSED');
  });
});

describe("an event's own note on Russian pages", () => {
  it("says why a rule's first sighting is no change in the builder's words (a walk's find)", () => {
    const note = translateNote(
      'no rule to run (Quote approved: STATUS_ID is "APPROVED" but its earlier value is unknown (first sighting on ONCRMQUOTEUPDATE; becomes needs a seen change))',
      'ru',
      ['Quote approved'],
    );
    expect(note).toContain('впервые в ONCRMQUOTEUPDATE');
    expect(note).toContain('условие «становится» срабатывает только на изменении');
    expect(note).not.toContain('becomes');
  });

  it('translates the notes the app writes on lifecycle events', () => {
    // ONAPPINSTALL / ONAPPUPDATE of a portal that uninstalled the app meanwhile.
    expect(translateNote('portal is uninstalled', 'ru', [])).toBe('приложение удалено с портала');
    expect(
      translateNote('install withdrawn: the OAuth server names another member_id', 'ru', []),
    ).toBe('установка отозвана: OAuth-сервер называет другой member_id');
    expect(translateNote('nothing proven; 2 rejected, 1 expired', 'ru', [])).toBe(
      'ничего не подтверждено: отклонено 2, просрочено 1',
    );
    expect(
      translateNote(
        'nothing proven; 0 rejected, 0 expired; asked the portal for a test delivery (ONAPPTEST)',
        'ru',
        [],
      ),
    ).toBe(
      'ничего не подтверждено: отклонено 0, просрочено 0; у портала запрошена проверочная доставка (ONAPPTEST)',
    );
    expect(translateNote('test delivery', 'ru', [])).toBe('проверочная доставка');
    // The stale-trigger guard's note, in words (was left in English).
    expect(
      translateNote('ERP sync: stale trigger, Stage is "New", not "Preparation"', 'ru', [
        'ERP sync',
      ]),
    ).toBe('ERP sync: условия уже не выполняются: Stage = "New", а не "Preparation"');
    expect(translateNote('proven by event 5', 'ru', [])).toBe('подтверждено событием 5');
    expect(translateNote('ONFOO is not a lifecycle event', 'ru', [])).toBe(
      'ONFOO — не событие жизненного цикла приложения',
    );
  });
});

describe('errors on Russian pages', () => {
  it("words the app's own parts of an error in Russian and keeps the remote system's text", () => {
    expect(
      translateError(
        'destination erp.example is down (circuit open after 8 failures): POST https://erp.example/api failed: fetch failed (ECONNREFUSED)',
        'ru',
      ),
    ).toBe(
      'erp.example не отвечает: отправка приостановлена после сбоев подряд (8): POST https://erp.example/api: ошибка: fetch failed (ECONNREFUSED)',
    );
    // A channel's name holds spaces (destination-name.ts).
    expect(translateError('destination SMTP mail.example:25 has 4 requests under way', 'ru')).toBe(
      'к SMTP mail.example:25 уже идут запросы (4)',
    );
    // A channel the server has not set up, in a step without a name (found in a walk).
    expect(
      translateError('Won deal / step2: telegram step: TELEGRAM_BOT_TOKEN is not set', 'ru'),
    ).toBe(
      'Won deal / шаг 2: шаг Telegram: на сервере не настроен бот Telegram (TELEGRAM_BOT_TOKEN)',
    );
    expect(translateError('Won deal / mail: email step: SMTP_URL is not set', 'ru')).toBe(
      'Won deal / mail: шаг e-mail: на сервере не настроена отправка почты (SMTP_URL)',
    );
    expect(
      translateError(
        "Won deal / tg: telegram step: no chatId in the step, and this portal has no alert chat of its own (set one on the app's Alerts page)",
        'ru',
      ),
    ).toBe(
      'Won deal / tg: шаг Telegram: в шаге не указан чат, а у портала нет своего чата оповещений (задайте его на странице «Оповещения»)',
    );
    expect(translateError("waiting 3000 ms for the portal's REST budget", 'ru')).toBe(
      'ждём 3000 мс: лимит REST-запросов портала',
    );
    expect(translateError('POST https://erp.example/api timed out after 10000 ms', 'ru')).toBe(
      'POST https://erp.example/api: нет ответа за 10000 мс',
    );
    expect(
      translateError('erp: HTTP 503 from POST https://erp.example/api: Service Unavailable', 'ru'),
    ).toBe('erp: ответ HTTP 503 на POST https://erp.example/api: Service Unavailable');
    // The status before the URL, as in English: a cell's 100 characters keep it.
    const long = `erp: HTTP 502 from POST https://erp.example/${'v1/'.repeat(30)}invoices: Bad Gateway`;
    expect(clip(translateError(long, 'ru'), 100)).toContain('ответ HTTP 502');
    expect(
      translateError(
        'POST http://erp.example:6000/x refused: its port is reserved for another protocol (such as SMTP, SSH or X11), so no HTTP request is sent to it; use the port the service answers HTTP on',
        'ru',
      ),
    ).toBe(
      'POST http://erp.example:6000/x: порт закреплён за другим протоколом (SMTP, SSH, X11 и т. п.), запрос не отправлен; укажите порт, на котором сервис отвечает по HTTP',
    );
    // A remote text alone is left as it came, and English pages are untouched.
    expect(translateError('HTTP 500: the order is not ready to be shipped', 'ru')).toBe(
      'HTTP 500: the order is not ready to be shipped',
    );
    expect(translateError("waiting 3000 ms for the portal's REST budget", 'en')).toBe(
      "waiting 3000 ms for the portal's REST budget",
    );
  });

  it('says in Russian where a step was refused to connect or mail, every kind of address', () => {
    const kinds = [
      'a loopback address',
      'a private address',
      'a carrier-grade NAT address',
      'a unique-local address',
      'a link-local address',
      'a multicast address',
      'an unspecified address',
      'the broadcast address',
      'a reserved address',
    ];
    for (const kind of kinds) {
      for (const text of [
        `Оплата / счёт: POST http://10.0.0.5/api refused: 10.0.0.5 is ${kind} (not in ACTION_PRIVATE_HOSTS)`,
        `Оплата / счёт: GET https://db.internal/x refused: db.internal resolves to ${kind} (not in ACTION_PRIVATE_HOSTS)`,
        `email step refused: x@[10.0.0.5]: 10.0.0.5 is ${kind} (not in ACTION_PRIVATE_HOSTS)`,
        `Оплата / письмо: email step refused: x@evil.net: the mail server of evil.net (mx.evil.net) is at ${kind}, inside the server's network (not in ACTION_PRIVATE_HOSTS)`,
        `email step refused: x@evil.net: the mail server of evil.net is at ${kind}, inside the server's network (not in ACTION_PRIVATE_HOSTS)`,
      ]) {
        const ru = translateError(text, 'ru');
        expect([text, englishIn(ru.replace(/https?:\/\/\S+|\S+@\S+|\S+\.internal/g, ''))]).toEqual([
          text,
          [],
        ]);
      }
    }
  });

  it('starts each error pattern only where a match can begin, so a long URL costs one pass', () => {
    // Unanchored, `(\S+) is a private address …` read the rest of a 2,000-character URL from
    // each of its positions: 50 log rows of one held the main thread about 3 s (a review).
    const loose = RU_ERRORS.map(([re]) => re.source).filter(
      (src) => !/^(\^|\(\^\|: \)|\(\?<!\\S\)|\(?[\p{L} ])/u.test(src),
    );
    expect(loose).toEqual([]);
    // The long run is still translated as before, its data kept as written.
    const url = `http://10.255.255.1/${'A'.repeat(1900)}`;
    const text = `r / x: GET ${url} refused: 10.255.255.1 is a private address (not in ACTION_PRIVATE_HOSTS)`;
    expect(translateError(text, 'ru')).toBe(
      `r / x: GET ${url}: отклонено: 10.255.255.1 — частный адрес (нет в ACTION_PRIVATE_HOSTS)`,
    );
    const cut = `r / x: GET ${url}${'B'.repeat(100)}`;
    expect(translateError(cut, 'ru')).toBe(cut);
  });

  it("says in Russian that mail's route was not found, Telegram's flood control, and a plan's pause", () => {
    for (const text of [
      'Оплата / письмо: email step: where mail for evil.net goes could not be looked up (ETIMEOUT)',
      "Оплата / чат: POST https://api.telegram.org/bot***/sendMessage: Telegram's flood control (429), sent again in 7 s",
      "portal b24memberid paused: the portal's Bitrix24 subscription does not allow the app (PAYMENT_REQUIRED): renew the plan",
      'portal b24memberid paused: the OAuth server does not know the app on this portal (invalid_client): was it removed, or B24_CLIENT_ID/SECRET changed?',
    ]) {
      const ru = translateError(text, 'ru');
      const left = englishIn(
        ru.replace(
          /https?:\/\/\S+|\S+\.net|ETIMEOUT|PAYMENT_REQUIRED|invalid_client|B24_CLIENT_ID\/SECRET|OAuth|b24memberid/g,
          '',
        ),
      );
      expect([text, left]).toEqual([text, []]);
    }
  });
});
