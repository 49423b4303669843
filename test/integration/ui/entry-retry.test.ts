import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { frameRequest, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';

/**
 * A frame entry that could not be checked now answers 503 with a page that sends the entry
 * again by itself. In a placement such as the deal tab Bitrix24 denies BX24.reloadWindow
 * (rest module, app.layout template: denyInterface(['setTitle', 'setScroll', 'reloadWindow'])
 * for every placement but DEFAULT) and drops the call, so the page must not depend on it:
 * it posts back the entry sealed by the server, never the tokens readable.
 */
describe('a deal tab whose entry could not be checked now', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const busy = { status: 503, error: 'QUERY_LIMIT_EXCEEDED', description: 'Too many requests' };
  const dealTab = () =>
    frameRequest(h, {
      path: '/placement/deal-tab',
      placement: 'CRM_DEAL_DETAIL_TAB',
      placementOptions: { ID: '8061' },
    });
  /** What the retry page's form posts, as the browser posts it from our own page. */
  const retryOf = async (page: string, url: string, origin = h.appUrl) => {
    const action = /<form id="entry-retry-form" method="post" action="([^"]+)"/.exec(page)?.[1];
    const ref = /name="ENTRY_RETRY" value="([^"]+)"/.exec(page)?.[1];
    expect(action).toBeDefined();
    expect(ref).toBeDefined();
    const target = new URL(action!.replace(/&amp;/g, '&'), url).toString();
    return fetch(target, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        origin,
        'sec-fetch-dest': 'iframe',
        ...(origin === h.appUrl ? {} : { 'sec-fetch-site': 'cross-site' }),
      },
      body: new URLSearchParams({ ENTRY_RETRY: ref! }).toString(),
      redirect: 'manual',
    });
  };

  it('sends the entry again by itself, without BX24.reloadWindow, and opens the tab', async () => {
    const { url, init } = dealTab();
    h.portal.failNext('profile', busy);
    const first = await fetch(url, init);
    expect(first.status).toBe(503);
    const page = await first.text();
    // No token in the page.
    const posted = new URLSearchParams(String(init.body));
    expect(page).not.toContain(posted.get('AUTH_ID')!);
    expect(page).not.toContain(posted.get('REFRESH_ID')!);
    const again = await retryOf(page, url);
    expect(again.status).toBe(303);
    expect(again.headers.get('location')).toMatch(/^\/ui\/deal\/8061\?s=/);
  });

  it('is sent again only from our own page, unaltered, within a minute', async () => {
    const { url, init } = dealTab();
    h.portal.failNext('profile', busy);
    const page = await (await fetch(url, init)).text();
    // Another site's page cannot make a browser send the sealed entry (login CSRF).
    const foreign = await retryOf(page, url, 'https://stranger.example');
    expect(foreign.status).toBe(503);
    expect(foreign.headers.get('set-cookie')).toBeNull();
    // An altered seal opens nothing.
    const altered = page.replace(
      /name="ENTRY_RETRY" value="([^"]{8})/,
      'name="ENTRY_RETRY" value="AAAAAAAA',
    );
    expect((await retryOf(altered, url)).status).toBe(503);
    // Nor is it taken after its minute.
    h.t.clock.advance(61_000);
    const late = await retryOf(page, url);
    expect(late.status).toBe(503);
    expect(late.headers.get('set-cookie')).toBeNull();
  });
});
