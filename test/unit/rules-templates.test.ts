import { describe, expect, it } from '@jest/globals';
import { buildTemplateContext } from '../../server/rules/context.js';
import { renderAction } from '../../server/rules/render-action.js';
import {
  renderTemplate,
  TemplateError,
  templatePaths,
  templateRoots,
} from '../../server/rules/templates.js';
import { PermanentError } from '../../server/lib/retry-errors.js';

const deal = {
  ID: '42',
  TITLE: 'Hardware order',
  OPPORTUNITY: 950.5,
  STAGE_ID: 'WON',
  CONTACT_ID: '7',
};
const contact = {
  ID: '7',
  NAME: 'Ada',
  PHONE: [
    { ID: '1', VALUE_TYPE: 'WORK', VALUE: '+15550100', TYPE_ID: 'PHONE' },
    { ID: '2', VALUE_TYPE: 'MOBILE', VALUE: '+15550199', TYPE_ID: 'PHONE' },
  ],
};
const ctx = buildTemplateContext({
  event: { name: 'ONCRMDEALUPDATE', id: 9, memberId: 'm1', entityType: 'deal', entityId: '42' },
  entity: deal,
  related: { contact },
  steps: { invoice: { response: { id: 'INV-1', lines: [{ sku: 'A' }] }, status: 201 } },
  portal: { domain: 'acme.bitrix24.com', memberId: 'm1' },
});

const failure = (fn: () => unknown): TemplateError => {
  try {
    fn();
  } catch (e) {
    if (e instanceof TemplateError) return e;
    throw e;
  }
  throw new Error('expected a TemplateError');
};

describe('renderTemplate', () => {
  it('fills placeholders deep inside objects and arrays, keys untouched', () => {
    expect(
      renderTemplate(
        { '{{deal.ID}}': ['Deal {{deal.ID}}: {{ deal.TITLE }}', { n: 'x{{event.name}}' }], k: 3 },
        ctx,
      ),
    ).toEqual({
      '{{deal.ID}}': ['Deal 42: Hardware order', { n: 'xONCRMDEALUPDATE' }],
      k: 3,
    });
  });

  it('reads nested paths, array indexes and earlier step outputs', () => {
    expect(renderTemplate('{{contact.PHONE.1.VALUE}}', ctx)).toBe('+15550199');
    expect(renderTemplate('{{contact.PHONE[1].VALUE_TYPE}}', ctx)).toBe('MOBILE');
    expect(renderTemplate('Invoice {{steps.invoice.response.id}}', ctx)).toBe('Invoice INV-1');
    expect(renderTemplate('{{steps.invoice.response.lines.0.sku}}', ctx)).toBe('A');
    // Names and keys in any script (a step named in Russian, an answer of 1C).
    const ru = { ...ctx, steps: { счёт: { response: { номер: 'СЧ-7' }, status: 201 } } };
    expect(renderTemplate('Счёт {{steps.счёт.response.номер}}', ru)).toBe('Счёт СЧ-7');
    expect(renderTemplate('{{portal.domain}}/{{entity.ID}}', ctx)).toBe('acme.bitrix24.com/42');
  });

  it('renders a multi-field as its first VALUE', () => {
    expect(renderTemplate('{{contact.PHONE}}', ctx)).toBe('+15550100');
    expect(renderTemplate('Call {{contact.PHONE}}', ctx)).toBe('Call +15550100');
  });

  it('keeps the JSON type of a lone placeholder and interpolates otherwise', () => {
    expect(renderTemplate({ amount: '{{deal.OPPORTUNITY}}' }, ctx)).toEqual({ amount: 950.5 });
    expect(renderTemplate('{{steps.invoice.response}}', ctx)).toEqual({
      id: 'INV-1',
      lines: [{ sku: 'A' }],
    });
    expect(renderTemplate('{{steps.invoice.status}}', ctx)).toBe(201);
    expect(renderTemplate('{{deal.OPPORTUNITY}} USD', ctx)).toBe('950.5 USD');
    expect(renderTemplate('r={{steps.invoice.response.lines}}', ctx)).toBe('r=[{"sku":"A"}]');
  });

  it('fails with a message naming the missing path', () => {
    const noPhone = buildTemplateContext({
      event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
      entity: deal,
      related: { contact: { ID: '7', NAME: 'Ada' } },
    });
    const e = failure(() => renderTemplate({ to: '{{contact.PHONE}}' }, noPhone));
    expect(e.message).toBe('template {{contact.PHONE}}: contact has no PHONE');
    expect(e.path).toBe('contact.PHONE');
    expect(e).toBeInstanceOf(PermanentError);
    expect(failure(() => renderTemplate('{{deal.NOPE}}', ctx)).message).toBe(
      'template {{deal.NOPE}}: deal has no NOPE',
    );
    expect(failure(() => renderTemplate('{{company.TITLE}}', ctx)).message).toBe(
      'template {{company.TITLE}}: company is not available for this event',
    );
    expect(failure(() => renderTemplate('{{contact.PHONE.5.VALUE}}', ctx)).message).toBe(
      'template {{contact.PHONE.5.VALUE}}: contact.PHONE has no item 5 (it has 2)',
    );
    expect(failure(() => renderTemplate('{{steps.shipment.response.id}}', ctx)).message).toBe(
      'template {{steps.shipment.response.id}}: no earlier step named "shipment" has run',
    );
  });

  it('treats a null field as missing unless the placeholder is optional', () => {
    const c = buildTemplateContext({
      event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
      entity: { ID: '1', COMMENTS: null },
    });
    expect(failure(() => renderTemplate('{{deal.COMMENTS}}', c)).message).toBe(
      'template {{deal.COMMENTS}}: deal.COMMENTS is empty (null)',
    );
    expect(renderTemplate('Note: {{deal.COMMENTS?}}.', c)).toBe('Note: .');
    expect(renderTemplate('{{deal.COMMENTS?}}', c)).toBeNull();
  });

  it('leaves step placeholders alone when asked (dry run)', () => {
    expect(
      renderTemplate('Invoice {{steps.x.response.id}} for {{deal.ID}}', ctx, { keepSteps: true }),
    ).toBe('Invoice {{steps.x.response.id}} for 42');
  });
});

describe('templatePaths', () => {
  it('lists the normalised paths and roots a value reads', () => {
    const value = {
      to: '{{contact.PHONE}}',
      text: 'Deal {{deal.ID}} {{ company.TITLE? }} {{contact.PHONE[0].VALUE}}',
      n: 5,
    };
    expect([...templatePaths(value)].sort()).toEqual([
      'company.TITLE',
      'contact.PHONE',
      'contact.PHONE.0.VALUE',
      'deal.ID',
    ]);
    expect([...templateRoots(value)].sort()).toEqual(['company', 'contact', 'deal']);
  });
});

describe('renderAction', () => {
  it('keeps text fields text and JSON fields typed', () => {
    const rendered = renderAction(
      {
        type: 'http',
        name: 'invoice',
        method: 'POST',
        url: 'https://x.example/deals/{{deal.ID}}',
        headers: { 'X-Deal': '{{deal.ID}}', 'X-Amount': '{{deal.OPPORTUNITY}}' },
        body: { amount: '{{deal.OPPORTUNITY}}' },
        timeoutMs: 500,
      },
      ctx,
    );
    expect(rendered).toEqual({
      type: 'http',
      name: 'invoice',
      method: 'POST',
      url: 'https://x.example/deals/42',
      headers: { 'X-Deal': '42', 'X-Amount': '950.5' },
      body: { amount: 950.5 },
      timeoutMs: 500,
    });
    expect(
      renderAction({ type: 'sms', to: '{{contact.PHONE}}', text: '{{deal.OPPORTUNITY}}' }, ctx),
    ).toEqual({
      type: 'sms',
      to: '+15550100',
      text: '950.5',
    });
  });

  it("percent-encodes values in an http step's URL, so data never picks another path or query", () => {
    const crafted = buildTemplateContext({
      event: { name: 'ONCRMDEALUPDATE', id: 9, memberId: 'm1', entityType: 'deal', entityId: '42' },
      entity: { ...deal, TITLE: '../admin/export?all=1#', UF_URL: 'https://x.example/a/b?c=d' },
      portal: { domain: 'acme.bitrix24.com', memberId: 'm1' },
    });
    const url = (template: string) =>
      renderAction({ type: 'http', method: 'POST', url: template }, crafted).url;
    const sent = url('https://x.example/deals/{{deal.TITLE}}?id={{deal.ID}}&t={{deal.TITLE}}');
    expect(sent).toBe(
      'https://x.example/deals/..%2Fadmin%2Fexport%3Fall%3D1%23?id=42&t=..%2Fadmin%2Fexport%3Fall%3D1%23',
    );
    expect(new URL(sent).pathname).toBe('/deals/..%2Fadmin%2Fexport%3Fall%3D1%23');
    expect(new URL(sent).searchParams.get('t')).toBe('../admin/export?all=1#');
    // A URL that is one placeholder is a whole URL from the data; `| raw` trusts a value.
    expect(url('{{deal.UF_URL}}')).toBe('https://x.example/a/b?c=d');
    expect(url('https://x.example/{{deal.TITLE | raw}}')).toBe(
      'https://x.example/../admin/export?all=1#',
    );
    // A dot segment walks up the path even when encoded: refused, naming the placeholder.
    const dots = buildTemplateContext({
      event: { name: 'ONCRMDEALUPDATE', id: 9, memberId: 'm1', entityType: 'deal', entityId: '42' },
      entity: { ...deal, TITLE: '..' },
      portal: { domain: 'acme.bitrix24.com', memberId: 'm1' },
    });
    const e = failure(() =>
      renderAction(
        { type: 'http', method: 'GET', url: 'https://x.example/a/{{deal.TITLE}}' },
        dots,
      ),
    );
    expect(e.message).toBe('template {{deal.TITLE}}: ".." may not be a value in a URL');
    // Other text fields are not URLs.
    expect(
      renderAction({ type: 'sms', to: '+15550100', text: '{{deal.TITLE}}' }, crafted).text,
    ).toBe('../admin/export?all=1#');
  });
});

describe('filters and escaping', () => {
  const c = buildTemplateContext({
    event: { name: 'ONCRMDEALUPDATE', entityType: 'deal' },
    entity: {
      ID: '5',
      TITLE: 'a<b>&_c',
      OPPORTUNITY: '1234567.5',
      CLOSEDATE: '2026-11-27T14:03:09+03:00',
    },
  });

  it('applies upper, lower, date and money in order', () => {
    expect(renderTemplate('{{deal.TITLE | upper}}', c)).toBe('A<B>&_C');
    expect(renderTemplate('{{ deal.TITLE | upper | lower }}', c)).toBe('a<b>&_c');
    expect(renderTemplate('{{deal.CLOSEDATE | date}}', c)).toBe('2026-11-27 14:03');
    expect(renderTemplate('{{deal.CLOSEDATE | date:"DD.MM.YYYY HH:mm:ss"}}', c)).toBe(
      '27.11.2026 14:03:09',
    );
    expect(renderTemplate({ a: '{{deal.OPPORTUNITY | money}}' }, c)).toEqual({
      a: '1 234 567.50',
    });
    expect(renderTemplate('{{deal.OPPORTUNITY | money:RUB}}', c)).toBe('1 234 567.50 RUB');
  });

  it('names the placeholder when a filter is unknown or cannot read the value', () => {
    expect(failure(() => renderTemplate('{{deal.TITLE | shout}}', c)).message).toBe(
      'template {{deal.TITLE | shout}}: unknown filter "shout" (filters: raw, upper, lower, date, money)',
    );
    expect(failure(() => renderTemplate('{{deal.TITLE | date}}', c)).message).toBe(
      'template {{deal.TITLE | date}}: "a<b>&_c" is not a date',
    );
  });

  it('escapes values, not the template, for HTML and Telegram Markdown; raw opts out', () => {
    const t = 'x <i>{{deal.TITLE}}</i> {{deal.TITLE | raw}}';
    expect(renderTemplate(t, c, { escape: 'html' })).toBe('x <i>a&lt;b&gt;&amp;_c</i> a<b>&_c');
    expect(renderTemplate('*{{deal.TITLE}}* {{deal.ID}}.', c, { escape: 'markdownV2' })).toBe(
      '*a<b\\>&\\_c* 5.',
    );
    expect(renderTemplate('{{deal.TITLE}}', c, { escape: 'markdown' })).toBe('a<b>&\\_c');
    expect(
      renderAction(
        { type: 'email', to: 'a@x.test', subject: '{{deal.TITLE}}', html: '{{deal.TITLE}}' },
        c,
      ),
    ).toEqual({ type: 'email', to: 'a@x.test', subject: 'a<b>&_c', html: 'a&lt;b&gt;&amp;_c' });
  });
});
