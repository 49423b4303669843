import { afterAll, beforeAll, expect, it } from '@jest/globals';
import type { Frame, Page } from 'playwright-core';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi, appFrameOf } from '../helpers/framed-ui.js';
import type { UiHarness } from '../helpers/ui-harness.js';

/**
 * The frame in the emulated portal page follows the height of the app's content after
 * every change, not only at load (BX24.fitWindow once cut growing pages off).
 */
describeInChromium('the Bitrix24 frame height', (executablePath) => {
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

  const appFrame = (): Frame => appFrameOf(page, h.appUrl, '/ui');
  /** The app's content height, measured inside the frame. */
  const contentHeight = () =>
    appFrame().evaluate<number>('Math.ceil(document.body.getBoundingClientRect().height)');
  /** Waits until the iframe element in the portal page is as tall as `height` (±2 px). */
  const frameHeightBecomes = (height: number) =>
    page.waitForFunction(
      `Math.abs(document.querySelector('iframe.b24emu-frame').getBoundingClientRect().height - ${height}) <= 2`,
      undefined,
      { timeout: 10_000 },
    );
  const frameHeight = () =>
    page.evaluate<number>(
      `document.querySelector('iframe.b24emu-frame').getBoundingClientRect().height`,
    );

  it('fits the frame to the page at load, shorter than the default 600 px included', async () => {
    await page.goto(`${h.portal.url}/app?user=1`);
    await page.frameLocator('iframe.b24emu-frame').locator('#figures').waitFor();
    // The alerts page is short: the frame shrinks to it (fitWindow alone only grows).
    await page.frameLocator('iframe.b24emu-frame').locator('#nav-alerts').click();
    await page.frameLocator('iframe.b24emu-frame').locator('#alerts-form').waitFor();
    const height = await contentHeight();
    expect(height).toBeLessThan(600);
    await frameHeightBecomes(height);
    // As wide as the portal gives it: BX24.resizeWindow('100%', h) made it 100 px wide.
    const widths = await page.evaluate<{ frame: number; room: number }>(`(() => {
      const f = document.querySelector('iframe.b24emu-frame');
      const box = getComputedStyle(f.parentElement);
      const padding = parseFloat(box.paddingLeft) + parseFloat(box.paddingRight);
      return { frame: f.getBoundingClientRect().width, room: f.parentElement.clientWidth - padding };
    })()`);
    expect(widths.room).toBeGreaterThan(500);
    expect(Math.abs(widths.frame - widths.room)).toBeLessThanOrEqual(2);
  });

  it('grows and shrinks with the content after load', async () => {
    const before = await contentHeight();
    await frameHeightBecomes(before);
    // A page that grows after load, like the log after a filter or the replay progress.
    await appFrame().evaluate(`(() => {
      const d = document.createElement('div');
      d.id = 'grown';
      d.style.height = '1500px';
      document.querySelector('.wrap').appendChild(d);
    })()`);
    const grown = await contentHeight();
    expect(grown).toBeGreaterThanOrEqual(before + 1500);
    await frameHeightBecomes(grown);
    await appFrame().evaluate(`document.getElementById('grown').remove()`);
    await frameHeightBecomes(before);
    expect(Math.abs((await frameHeight()) - before)).toBeLessThanOrEqual(2);
  });

  it('follows the replay page while its progress changes the content', async () => {
    await page.frameLocator('iframe.b24emu-frame').locator('#nav-replay').click();
    const f = page.frameLocator('iframe.b24emu-frame');
    await f.locator('#replay-form').waitFor();
    await f.locator('input[name=from]').fill('2026-11-27');
    await f.locator('input[name=to]').fill('2026-11-27');
    await f.locator('#preview').click();
    await f.locator('#confirm').click();
    await f.locator('#replay-queued').waitFor();
    await frameHeightBecomes(await contentHeight());
    await h.drain();
    await f.locator('#replay-state[data-done="true"]').waitFor({ timeout: 10_000 });
    await frameHeightBecomes(await contentHeight());
  });
});
