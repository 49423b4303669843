import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Page } from 'playwright-core';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi } from '../helpers/framed-ui.js';
import type { UiHarness } from '../helpers/ui-harness.js';

/**
 * A frame entry the app could not check now (the portal's REST budget busy, or the portal
 * not answering) shows a page that has Bitrix24 open the frame again by itself, so the
 * user gets in without doing anything, instead of a dead "try again shortly".
 */
describeInChromium('a frame entry that could not be checked now', (executablePath) => {
  let ui: FramedUi | undefined;
  let h: UiHarness;
  let page: Page;

  beforeAll(async () => {
    ui = await startFramedUi(executablePath);
    ({ h, page } = ui);
  });
  afterAll(async () => {
    await ui?.close();
  });

  it('retries by itself and lets the user in', async () => {
    h.portal.failNext('profile', {
      status: 503,
      error: 'QUERY_LIMIT_EXCEEDED',
      description: 'Too many requests',
    });
    await page.goto(`${h.portal.url}/app?user=1`);
    const frame = page.frameLocator('iframe.b24emu-frame');
    await frame.locator('#entry-retry').waitFor();
    await frame.locator('#figures').waitFor({ timeout: 15_000 });
    expect(h.portal.calls.filter((c) => c.method === 'profile').length).toBeGreaterThanOrEqual(2);
  });
});
