import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi } from '../helpers/framed-ui.js';
import { frameRequest, type UiHarness } from '../helpers/ui-harness.js';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');

/**
 * Login CSRF: a stranger's page (another site) posts a frame entry with the stranger's own
 * valid credentials into the app, so the victim's browser would open the stranger's portal
 * and the victim would configure it (alert chats, rules with their secrets) believing it is
 * theirs. The real entry is Bitrix24's POST from the portal's own page into its iframe.
 */
describeInChromium('a frame entry posted from another site', (executablePath) => {
  let ui: FramedUi | undefined;
  let h: UiHarness;
  let page: Page;
  let evil: http.Server;
  let evilUrl = '';

  beforeAll(async () => {
    ui = await startFramedUi(executablePath);
    ({ h, page } = ui);
    // The stranger's site: its page posts the stranger's own, valid entry (user 1 of a
    // portal the app serves) top-level into the app, as soon as the victim opens it.
    evil = http.createServer((req, res) => {
      const { url, init } = frameRequest(h);
      const action = url.replace('127.0.0.1', 'localhost');
      const fields = [...new URLSearchParams(String(init.body))]
        .map(([k, v]) => `<input type="hidden" name="${esc(k)}" value="${esc(v)}">`)
        .join('');
      const meta = req.url?.includes('no-referrer')
        ? '<meta name="referrer" content="no-referrer">'
        : '';
      res.setHeader('content-type', 'text/html');
      res.end(
        `<!doctype html><html><head>${meta}</head><body><form id="f" method="post" action="${esc(action)}">${fields}</form><script>document.getElementById('f').submit()</script></body></html>`,
      );
    });
    await new Promise<void>((resolve) => evil.listen(0, '127.0.0.3', resolve));
    evilUrl = `http://127.0.0.3:${(evil.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    evil?.closeAllConnections();
    await new Promise<void>((resolve) => evil?.close(() => resolve()));
    await ui?.close();
  });

  /** Opens the stranger's page and returns where the victim's tab ended and its status. */
  const visit = async (path: string) => {
    const entry = page.waitForResponse((r) => r.url().startsWith(`${h.appUrl}/app`));
    await page.goto(`${evilUrl}${path}`);
    const res = await entry;
    await page.waitForLoadState('load');
    return { status: res.status(), url: page.url() };
  };

  it('is refused, and the victim never gets a session of the stranger', async () => {
    const { status, url } = await visit('/');
    expect(status).toBe(403);
    expect(url).not.toContain('/ui');
  });

  it('is refused also when the page hides its origin (Origin: null)', async () => {
    const { status, url } = await visit('/no-referrer');
    expect(status).toBe(403);
    expect(url).not.toContain('/ui');
  });

  it("still lets Bitrix24's own entry in, posted from the portal page into the frame", async () => {
    await page.goto(`${h.portal.url}/app?user=1`);
    await page.frameLocator('iframe.b24emu-frame').locator('#figures').waitFor();
  });
});
