import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { translateError, translateMessage } from '../../../server/ui/i18n-messages.js';
import { seedDeals, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

/**
 * A Russian page translates the app's own words and leaves what another system said as it
 * came. A walk found a JSON parser's "Unexpected token … is not valid JSON" shown as
 * "Unожидается token … = not valid JSON", a portal's "ID is not defined" as "ID = not
 * defined", and a template error left in English in the log while "Send this step once"
 * said it in Russian.
 */
describe('Russian pages and the words of others', () => {
  let h: UiHarness;
  let ru: UiSession;
  beforeAll(async () => {
    h = await startUiHarness();
    await seedDeals(h);
    ru = await openSession(h, { lang: 'ru' });
  });
  afterAll(async () => {
    await h.close();
  });

  it('quotes the JSON parser on a refused map, untouched', async () => {
    const page = await getPage(h, '/ui/rules', ru.cookie);
    const res = await postForm(
      h,
      '/ui/rules',
      { map: '{"rules": [,]}', _csrf: csrfOf(page.html) },
      ru.cookie,
    );
    expect(res.html).toContain('это не JSON: &#34;Unexpected token');
    expect(res.html).not.toContain('Unожидается');
    expect(res.html).not.toMatch(/Unexpected token[^<]* = /);
  });

  it('asks for a number as the record ID, and keeps the portal’s own answer as it came', async () => {
    const page = await getPage(h, '/ui/rules', ru.cookie);
    const abc = await postForm(
      h,
      '/ui/rules/dry-run',
      { event: 'ONCRMDEALUPDATE', id: 'abc', _csrf: csrfOf(page.html) },
      ru.cookie,
    );
    expect(abc.status).toBe(400);
    expect(abc.html).toContain('Укажите событие (например, ONCRMDEALUPDATE) и ID записи (число).');
    h.portal.failNext('crm.deal.get', {
      status: 400,
      error: '',
      description: 'ID is not defined or invalid.',
    });
    const refused = await postForm(
      h,
      '/ui/rules/dry-run',
      { event: 'ONCRMDEALUPDATE', id: '999999', _csrf: csrfOf(page.html) },
      ru.cookie,
    );
    // Control: the portal was asked, and its answer shown.
    expect(refused.html).toContain('ID is not defined or invalid.');
    expect(refused.html).not.toContain('ID = not defined');
  });

  it('says a template error in Russian wherever an error is shown', () => {
    const stored = 'Оплата / step2: template {{contact.PHOEN}}: contact has no PHOEN';
    expect(translateError(stored, 'ru')).toBe(
      'Оплата / шаг 2: шаблон {{contact.PHOEN}}: contact не содержит PHOEN',
    );
    // As "Send this step once" says it (the phrases), and English pages unchanged.
    expect(translateMessage('template {{contact.PHOEN}}: contact has no PHOEN', 'ru')).toBe(
      'шаблон {{contact.PHOEN}}: contact не содержит PHOEN',
    );
    expect(translateError(stored, 'en')).toBe(stored);
    // A phrase never starts inside a word.
    expect(translateMessage('Unexpected end', 'ru')).toBe('Unexpected end');
  });
});
