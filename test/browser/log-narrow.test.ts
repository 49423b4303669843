import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS } from '../helpers/chromium.js';
import { describeInChromium } from '../helpers/browser-suite.js';
import { appFrameOf } from '../helpers/framed-ui.js';
import { seedDeals, startUiHarness, type UiHarness } from '../helpers/ui-harness.js';

/**
 * The event log in a 600 px frame on a Russian portal: its longer headers and badges used to
 * leave no room for the last column, so the table ran past the frame and the errors were cut
 * off at its edge. An event name (ONCRMDEALUPDATE, no space in it) now breaks, as in the deal
 * tab, and the table fits. (The map page and the other lists at this width, with long rules:
 * lists-narrow.test.ts.)
 */
describeInChromium('the event log in a narrow frame', (executablePath) => {
  let h: UiHarness;
  let browser: Browser;
  beforeAll(async () => {
    h = await startUiHarness({ appHost: 'localhost', portal: { lang: 'ru' } });
    await seedDeals(h);
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
  });

  /** The app in a 600 px frame as the portal's admin, on the page the nav link opens. */
  async function openInNarrowFrame(nav: string, ready: string) {
    const page = await (
      await browser.newContext({ viewport: { width: 600, height: 900 } })
    ).newPage();
    await page.goto(`${h.portal.url}/app?user=1`);
    const f = page.frameLocator('iframe.b24emu-frame');
    await f.locator('#figures').waitFor();
    await f.locator(nav).click();
    await f.locator(ready).waitFor();
    return { page, f };
  }

  it('fits a 600 px frame in Russian, the last error readable', async () => {
    const { page, f } = await openInNarrowFrame('#nav-events', '#events');
    const app = appFrameOf(page, h.appUrl, '/ui/events');
    const m = JSON.parse(
      await app.evaluate<string>(`JSON.stringify({
        scroll: document.documentElement.scrollWidth,
        client: document.documentElement.clientWidth,
        error: document.querySelector('#events tr[data-status="failed"] td.muted').getBoundingClientRect().width,
        // Line boxes of the first event name's text (ONCRM<wbr>DEAL<wbr>UPDATE: three text
        // nodes): at most one each when it breaks only between its words.
        nameLines: [...document.querySelector('#events td.event .event-code').childNodes]
          .filter((n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim())
          .reduce((lines, n) => {
            const r = document.createRange();
            r.selectNodeContents(n);
            return lines + r.getClientRects().length;
          }, 0),
      })`),
    ) as { scroll: number; client: number; error: number; nameLines: number };
    expect(m.scroll).toBeLessThanOrEqual(m.client);
    // "ONC RM DEAL UPDA TE": broken inside its words, the column squeezed to a few letters.
    expect(m.nameLines).toBeLessThanOrEqual(3);
    // A column a few words wide, not a letter or two.
    expect(m.error).toBeGreaterThan(80);
    await page.close();
  });

  it('ticks every row of the page from the header and retries them from above the list', async () => {
    const { page, f } = await openInNarrowFrame('#nav-events', '#events');
    const rows = await f.locator('#events input.pick').count();
    expect(rows).toBeGreaterThan(1);
    await f.locator('#pick-all').check();
    expect(await f.locator('#events input.pick:checked').count()).toBe(rows);
    await f.locator('#pick-all').uncheck();
    expect(await f.locator('#events input.pick:checked').count()).toBe(0);
    await f.locator('#pick-all').check();
    // The button is in view without scrolling past the list.
    const app = appFrameOf(page, h.appUrl, '/ui/events');
    const top = Number(
      await app.evaluate<string>(
        `String(document.querySelector('#retry-selected').getBoundingClientRect().top)`,
      ),
    );
    expect(top).toBeLessThan(900);
    await f.locator('#retry-selected').click();
    await f.locator('#retried').waitFor();
    expect(await f.locator('#retried').textContent()).toContain(String(rows));
    await page.close();
  });
});
