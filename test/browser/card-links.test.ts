import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi } from '../helpers/framed-ui.js';
import type { UiHarness } from '../helpers/ui-harness.js';

/**
 * The log's links to a record's card, clicked inside the emulated portal page: the portal's
 * slider opens the card (BX24.openPath, b24restdocs sdk/bx24-js-sdk/additional-functions/
 * bx24-open-path.md), the log staying in the frame. A quote's card is a smart-process route
 * (/crm/type/7/details/ID/; the app linked /crm/quote/details/ID/, a page no portal has, and
 * kept it out of the slider). Where the portal cannot open the slider (the mobile app answers
 * METHOD_NOT_SUPPORTED_ON_DEVICE) the card opens in a new tab instead of nothing.
 */
describeInChromium('links to a record’s card in the Bitrix24 frame', (executablePath) => {
  let ui: FramedUi | undefined;
  let h: UiHarness;
  let page: Page;
  let quoteId: string;

  beforeAll(async () => {
    ui = await startFramedUi(executablePath, {
      env: { B24_EVENTS: 'ONCRMDEALADD,ONCRMDEALUPDATE,ONCRMQUOTEADD' },
    });
    ({ h, page } = ui);
    quoteId = (await h.portal.addQuote({ TITLE: 'Offer for Won order' })).id;
    await h.drain();
  });
  afterAll(async () => {
    await ui?.close();
  });

  const openLog = async (query = ''): Promise<void> => {
    await page.goto(`${h.portal.url}/app?user=1${query}`);
    const f = page.frameLocator('iframe.b24emu-frame');
    await f.locator('#nav-events').click();
    await f.locator('a.crm-link').first().waitFor();
  };
  const link = (path: string) =>
    page.frameLocator('iframe.b24emu-frame').locator(`a.crm-link[href$="${path}"]`).first();

  it('opens a deal’s and a quote’s card in the portal’s slider', async () => {
    await openLog();
    const dealPath = await page
      .frameLocator('iframe.b24emu-frame')
      .locator('a.crm-link[data-path^="/crm/deal/details/"]')
      .first()
      .getAttribute('data-path');
    expect(dealPath).toMatch(/^\/crm\/deal\/details\/\d+\/$/);
    await page
      .frameLocator('iframe.b24emu-frame')
      .locator(`a.crm-link[data-path="${dealPath}"]`)
      .first()
      .click();
    const slider = page.locator('#b24emu-slider');
    await slider.waitFor();
    expect(await slider.getAttribute('data-path')).toMatch(
      new RegExp(`^${dealPath!.replace(/\//g, '\\/')}\\?from=rest_placement&from_app=`),
    );
    expect(page.context().pages()).toHaveLength(1);
    await page.locator('#b24emu-slider-close').click();
    await slider.waitFor({ state: 'detached' });

    const quotePath = `/crm/type/7/details/${quoteId}/`;
    await link(quotePath).click();
    await slider.waitFor();
    expect(await slider.getAttribute('data-path')).toContain(`${quotePath}?from=rest_placement`);
    expect(page.context().pages()).toHaveLength(1);
    await page.locator('#b24emu-slider-close').click();
  });

  it('opens the card in a new tab where the portal has no slider (the mobile app)', async () => {
    await openLog('&device=mobile');
    const deal = page
      .frameLocator('iframe.b24emu-frame')
      .locator('a.crm-link[data-path^="/crm/deal/details/"]')
      .first();
    const dealPath = await deal.getAttribute('data-path');
    const popup = page.context().waitForEvent('page');
    await deal.click();
    const tab = await popup;
    expect(tab.url()).toBe(`${h.portal.url}${dealPath}`);
    expect(await page.locator('#b24emu-slider').count()).toBe(0);
    await tab.close();
  });
});
