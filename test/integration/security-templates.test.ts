import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { renderTemplate, TemplateError } from '../../server/rules/templates.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui/ui-client.js';

/**
 * Found by the injection scenario of the reliability suite: `{{deal.constructor}}`,
 * `{{deal.toString}}` or `{{constructor}}` read what a JavaScript object inherits and sent
 * `function Object() { [native code] }` in a request.
 */
describe('templates read only what a record holds', () => {
  const ctx = { deal: { ID: '7', TITLE: 'Order' }, portal: { domain: 'acme.bitrix24.com' } };

  it('treat inherited names as missing', () => {
    for (const path of [
      'deal.constructor',
      'deal.toString',
      'deal.__proto__',
      'constructor',
      'portal.hasOwnProperty',
      'deal.valueOf',
    ]) {
      expect(renderTemplate(`x={{${path}?}}`, ctx)).toBe('x=');
      expect(() => renderTemplate(`{{${path}}}`, ctx)).toThrow(TemplateError);
    }
    expect(() => renderTemplate('{{deal.constructor}}', ctx)).toThrow('deal has no constructor');
    expect(renderTemplate('{{deal.TITLE}} {{portal.domain}}', ctx)).toBe('Order acme.bitrix24.com');
  });

  describe('in the dry run of the rules page', () => {
    let h: UiHarness;
    let s: UiSession;
    beforeAll(async () => {
      h = await startUiHarness();
      s = await openSession(h);
    });
    afterAll(async () => {
      await h.close();
    });

    it('shows no inherited member of the deal in what a step would send', async () => {
      const v = validateEventMap({
        rules: [
          {
            name: 'Tricks',
            on: ['ONCRMDEALUPDATE'],
            actions: [
              {
                type: 'http',
                method: 'POST',
                url: `${h.sink.url}/tricks`,
                body: {
                  a: 'a={{deal.constructor?}}',
                  b: 'b={{deal.toString?}}',
                  t: '{{deal.TITLE}}',
                },
              },
            ],
          },
        ],
      });
      if (!v.ok) throw new Error(JSON.stringify(v.errors));
      await saveRuleMap(h.t.deps.db, undefined, v.map, h.t.clock.now());
      const deal = await h.portal.addDeal({ TITLE: 'Tricky order', STAGE_ID: 'NEW' });
      await h.drain();
      const csrf = csrfOf((await getPage(h, '/ui/rules', s.cookie)).html);
      const page = await postForm(
        h,
        '/ui/rules/dry-run',
        { event: 'ONCRMDEALUPDATE', id: deal.id, _csrf: csrf },
        s.cookie,
      );
      expect(page.status).toBe(200);
      expect(page.html).toContain('Tricky order');
      expect(page.html).toContain('&#34;a=&#34;');
      expect(page.html).not.toContain('native code');
    });
  });
});
