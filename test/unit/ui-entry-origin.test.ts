import { describe, expect, it } from '@jest/globals';
import { postedByPortalPage } from '../../server/ui/frame-entry.js';

/**
 * Bitrix24 posts the frame entry from the portal's page into the app's iframe, naming the
 * portal in the query as DOMAIN. On an on-premise portal DOMAIN is built on the server
 * (rest module, app.layout component: `$request->getHttpHost()`, plus `':' . $serverPort`
 * whenever PHP's server port is not 80 or 443), so behind a TLS proxy or a web server on
 * another port it names a port the browser's Origin does not: the page is still the
 * portal's own, on the same host.
 */
describe('a frame entry posted by the portal page', () => {
  const iframe = (origin: string) => ({ origin, 'sec-fetch-dest': 'iframe' });

  it('is let in when DOMAIN names a port the browser does not see', () => {
    expect(postedByPortalPage(iframe('https://crm.example.org'), 'crm.example.org:8888')).toBe(
      true,
    );
    expect(postedByPortalPage(iframe('https://crm.example.org'), 'crm.example.org:443')).toBe(true);
    expect(postedByPortalPage(iframe('http://crm.example.org:8080'), 'crm.example.org')).toBe(true);
    expect(postedByPortalPage(iframe('https://Portal.Bitrix24.com'), 'portal.bitrix24.com')).toBe(
      true,
    );
  });

  it('is refused from another host, however close its name', () => {
    expect(postedByPortalPage(iframe('https://evil.example'), 'crm.example.org')).toBe(false);
    expect(
      postedByPortalPage(iframe('https://crm.example.org.evil.example'), 'crm.example.org'),
    ).toBe(false);
    expect(postedByPortalPage(iframe('https://example.org'), 'crm.example.org:8443')).toBe(false);
    expect(postedByPortalPage(iframe('not a url'), 'crm.example.org')).toBe(false);
  });

  it('takes Origin null only into a frame', () => {
    expect(postedByPortalPage({ origin: 'null', 'sec-fetch-dest': 'iframe' }, 'a.example')).toBe(
      true,
    );
    expect(postedByPortalPage({ origin: 'null', 'sec-fetch-dest': 'document' }, 'a.example')).toBe(
      false,
    );
  });
});
