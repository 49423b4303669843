import { describe, expect, it } from '@jest/globals';
import { maskUrlPath, urlPathHasSecret } from '../../server/lib/url-secrets.js';
import { maskUrlText, urlHasCredentials } from '../../server/rules/secret-fields.js';
import { maskUrl } from '../../server/actions/http-call.js';
import { maskForView } from '../../server/ui/mask-view.js';

/** Webhook URLs that are their own credential, and URLs that only look a bit like one. */
describe('credentials in URL paths', () => {
  const secret: Array<[string, string]> = [
    [
      'https://acme.bitrix24.com/rest/1/k3yWEBHOOKsecret/crm.deal.add.json',
      'https://acme.bitrix24.com/rest/1/*/crm.deal.add.json',
    ],
    ['https://acme.bitrix24.com/rest/12/abc123/', 'https://acme.bitrix24.com/rest/12/*/'],
    [
      'https://api.telegram.org/bot123456:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage',
      'https://api.telegram.org/bot*/sendMessage',
    ],
    [
      'https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/XyZ123abcDEF456ghiJKL789',
      'https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/*',
    ],
    [
      'https://discord.com/api/webhooks/123456789012345678/aBcD-eFgH_1234567890abcdefGHIJ',
      'https://discord.com/api/webhooks/123456789012345678/*',
    ],
    [
      'https://hooks.zapier.com/hooks/catch/123456/abcdefg/',
      'https://hooks.zapier.com/hooks/catch/123456/*/',
    ],
    [
      'https://n8n.example/webhook/3fa85f64-5717-4562-b3fc-2c963f66afa6?x=1',
      'https://n8n.example/webhook/*?x=1',
    ],
    // Found by a review: a Slack token without digits, a JWT, a key with an extension, and
    // a long key of letters only.
    [
      'https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/abcdefghijklmnopqrstuvwx',
      'https://hooks.slack.com/services/T01ABCDEF/B02GHIJKL/*',
    ],
    [
      'https://erp.example/in/eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJwb3J0YWwifQ.c2lnbmF0dXJlLXBhcnQ/x',
      'https://erp.example/in/*/x',
    ],
    ['https://erp.example/webhooks/8c3f9a1b2d7e4f60aa91.json', 'https://erp.example/webhooks/*'],
    ['https://erp.example/hook/QwErTyUiOpAsDfGhJkLzXcVb', 'https://erp.example/hook/*'],
  ];
  const plain = [
    'https://erp.example/api/v1/invoices',
    'https://erp.example/deals/{{deal.ID}}/invoice',
    'https://erp.example/orders/12345678901234567890',
    'https://erp.example/customer-relationship-management/export',
    'https://erp.example/rest/api/deals',
  ];

  it.each(secret)('masks the key of %s', (url, masked) => {
    expect(urlPathHasSecret(url)).toBe(true);
    expect(maskUrlPath(url, '*')).toBe(masked);
    expect(urlHasCredentials(url)).toBe(true);
    expect(maskUrlText(url)).toBe(masked.replace(/\*/g, '********'));
    // Summaries and pages: the step's request summary and any text shown.
    expect(maskUrl(url)).toBe(masked.replace(/\*/g, '***'));
    // The part the mask stands for, found by lining the two up.
    const [head = '', tail = ''] = masked.split('*');
    const key = url.slice(head.length, url.length - tail.length);
    expect(key.length).toBeGreaterThan(5);
    expect(maskForView(`POST ${url} timed out`)).not.toContain(key);
    expect(maskForView(JSON.stringify({ url }))).not.toContain(key);
  });

  it.each(plain)('leaves %s as it is', (url) => {
    expect(urlPathHasSecret(url)).toBe(false);
    expect(maskUrlPath(url, '*')).toBe(url);
    expect(urlHasCredentials(url)).toBe(false);
    expect(maskUrl(url.replace(/[{}]/g, ''))).toBe(url.replace(/[{}]/g, ''));
  });
});
