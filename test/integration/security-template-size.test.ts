import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { renderAction } from '../../server/rules/render-action.js';
import { dryRun } from '../../server/rules/dry-run.js';
import {
  MAX_RENDERED_CHARS,
  RenderTooLargeError,
  renderTemplate,
} from '../../server/rules/templates.js';
import { validateEventMap } from '../../server/rules/validate.js';
import { saveRuleMap } from '../../server/rules/map-store.js';
import type { HttpAction } from '../../server/rules/model.js';
import { translateMessage } from '../../server/ui/i18n-messages.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

/**
 * A portal's admin writes the templates and the records they read: a step repeating a
 * 10,000-character deal field 20,000 times (a 400 KB map, under the 1 MB the pages take) made
 * 400 MB of text on the main thread in seconds, and a few such steps at once took the
 * server's memory, every portal's processing with it. A step renders to at most
 * MAX_RENDERED_CHARS, or fails naming the placeholder that crossed it.
 */
describe('a step may not render to more than MAX_RENDERED_CHARS', () => {
  const big = 'x'.repeat(10_000);
  const copies = Math.ceil(MAX_RENDERED_CHARS / big.length) + 10;
  const ctx = { deal: { ID: '7', TITLE: big }, portal: { domain: 'acme.bitrix24.com' } };

  it('refuses text that repeats a large value past the limit', () => {
    const text = '{{deal.TITLE}}'.repeat(copies);
    expect(() => renderTemplate(text, ctx)).toThrow(RenderTooLargeError);
    expect(() => renderTemplate(text, ctx)).toThrow(/template \{\{deal\.TITLE\}\}: the step grows/);
  });

  it('says so on a Russian page too', () => {
    const message = new RenderTooLargeError('deal.TITLE').message;
    expect(translateMessage(message, 'ru')).toBe(
      `шаблон {{deal.TITLE}}: здесь шаг превышает ${MAX_RENDERED_CHARS} символов (большое значение повторено много раз?); шаг может содержать не больше ${MAX_RENDERED_CHARS}`,
    );
  });

  it('counts a value inserted with | raw like any other', () => {
    const text = '{{deal.TITLE | raw}}'.repeat(copies);
    expect(() => renderTemplate(text, ctx)).toThrow(RenderTooLargeError);
    expect(() => renderTemplate(text, ctx, { escape: 'html' })).toThrow(RenderTooLargeError);
  });

  it('counts a record written whole as its JSON, however often it is repeated', () => {
    const body = Array.from({ length: copies }, () => '{{deal}}');
    expect(() => renderTemplate(body, ctx)).toThrow(RenderTooLargeError);
  });

  it('counts every field of the step together', () => {
    const half = '{{deal.TITLE}}'.repeat(Math.ceil(copies / 2));
    const step: HttpAction = {
      type: 'http',
      method: 'POST',
      url: 'https://erp.example/api',
      headers: { 'X-Note': half },
      body: { text: half },
    };
    expect(() => renderAction(step, ctx)).toThrow(RenderTooLargeError);
    // Each half alone fits.
    expect(String(renderTemplate(half, ctx)).length).toBeLessThan(MAX_RENDERED_CHARS);
  });

  it('renders what stays under the limit as before', () => {
    expect(renderTemplate({ a: '{{deal.TITLE}}', b: '{{deal}}', c: 'x{{deal.ID}}' }, ctx)).toEqual({
      a: big,
      b: ctx.deal,
      c: 'x7',
    });
  });

  it('shares one limit across the steps a dry run shows at once', () => {
    const part = '{{deal.TITLE}}'.repeat(Math.ceil(copies / 4));
    const v = validateEventMap({
      rules: [
        {
          name: 'Many',
          on: ['ONCRMDEALUPDATE'],
          actions: Array.from({ length: 6 }, () => ({ type: 'sms', to: '+15550100', text: part })),
        },
      ],
    });
    if (!v.ok) throw new Error(JSON.stringify(v.errors));
    const [r] = dryRun(v.map, {
      event: { name: 'ONCRMDEALUPDATE', memberId: 'm1', entityType: 'deal', entityId: '7' },
      entity: ctx.deal,
      previous: undefined,
      portal: { domain: 'acme.bitrix24.com', memberId: 'm1' },
    });
    const errors = r?.steps?.filter((s) => s.error !== undefined) ?? [];
    expect(errors.length).toBeGreaterThan(0);
    expect(errors[0]?.error).toMatch(/the step grows past/);
  });

  describe('when an event runs the step', () => {
    let h: UiHarness;
    beforeAll(async () => {
      h = await startUiHarness();
    });
    afterAll(async () => {
      await h.close();
    });

    it('fails the step for good without sending anything', async () => {
      const v = validateEventMap({
        rules: [
          {
            name: 'Blow up',
            on: ['ONCRMDEALADD'],
            actions: [
              {
                type: 'http',
                name: 'big',
                method: 'POST',
                url: `${h.sink.url}/big`,
                body: { text: '{{deal.TITLE}}'.repeat(copies) },
              },
            ],
          },
        ],
      });
      if (!v.ok) throw new Error(JSON.stringify(v.errors));
      await saveRuleMap(h.t.deps.db, undefined, v.map, h.t.clock.now());
      const deal = await h.portal.addDeal({ TITLE: big, STAGE_ID: 'NEW' });
      await h.drain();
      expect(h.sink.requests.filter((r) => r.url === '/big')).toHaveLength(0);
      const ev = await h.t.deps
        .db('events')
        .where({ entity_type: 'deal', entity_id: String(deal.id), event: 'ONCRMDEALADD' })
        .first();
      expect(ev?.status).toBe('failed');
      expect(ev?.attempts).toBe(1);
      expect(String(ev?.last_error)).toMatch(/Blow up \/ big: template \{\{deal\.TITLE\}\}/);
      expect(String(ev?.last_error)).toContain(`at most ${MAX_RENDERED_CHARS}`);
    });
  });
});
