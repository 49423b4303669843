import { describe, expect, it } from '@jest/globals';
import { translateMessage, translateNote } from '../../server/ui/i18n-messages.js';

describe('messages on Russian pages', () => {
  it('translates the phrases around the data and keeps the data as written', () => {
    expect(translateMessage('expected string, got number 5', 'ru')).toBe(
      'ожидается строка, получено: число 5',
    );
    expect(translateMessage('STAGE_ID became "WON" (was "NEW")', 'ru')).toBe(
      'STAGE_ID стало "WON" (было "NEW")',
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
  it('translates the notes the app writes on lifecycle events', () => {
    // ONAPPINSTALL / ONAPPUPDATE of a portal that uninstalled the app meanwhile.
    expect(translateNote('portal is uninstalled', 'ru', [])).toBe('приложение удалено с портала');
    expect(
      translateNote('install withdrawn: the OAuth server names another member_id', 'ru', []),
    ).toBe('установка отозвана: OAuth-сервер называет другой member_id');
    expect(translateNote('nothing proven; 2 rejected, 1 expired', 'ru', [])).toBe(
      'ничего не подтверждено: отклонено 2, просрочено 1',
    );
    expect(translateNote('proven by event 5', 'ru', [])).toBe('подтверждено событием 5');
    expect(translateNote('ONFOO is not a lifecycle event', 'ru', [])).toBe(
      'ONFOO — не событие жизненного цикла приложения',
    );
  });
});
