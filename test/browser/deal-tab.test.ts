import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi } from '../helpers/framed-ui.js';

/** The deal tab in the emulated deal card, as a manager (not an admin) sees it. */
describeInChromium('the deal tab in the deal card', (executablePath) => {
  let ui: FramedUi;
  beforeAll(async () => {
    ui = await startFramedUi(executablePath);
  });
  afterAll(async () => {
    await ui?.close();
  });

  const frame = () => ui.page.frameLocator('iframe.b24emu-frame');

  it('shows the new status of an event that was still processing when the tab opened', async () => {
    const { h, page } = ui;
    const deal = await h.portal.addDeal({ TITLE: 'Pending order', STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    // Stored, not processed yet.
    await h.portal.whenIdle();
    await h.services.intake.drain();
    await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
    const newest = frame().locator('#deal-events tr[data-id]').first();
    await expect(newest.locator('.badge').first().getAttribute('class')).resolves.toMatch(
      /b-received|b-processing/,
    );
    await expect(frame().locator('#deal-refreshing').getAttribute('role')).resolves.toBe('status');
    await h.services.worker.drain();
    // No reload, no click: the tab shows the outcome by itself.
    await newest.locator('.b-processed').waitFor({ timeout: 15_000 });
    await expect(newest.textContent()).resolves.toContain('Won deal: invoice');
    await frame().locator('#deal-refreshing').waitFor({ state: 'detached' });
  });
});
