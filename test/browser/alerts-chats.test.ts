import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { chromium, type Browser } from 'playwright-core';
import { CHROMIUM_ARGS } from '../helpers/chromium.js';
import { describeInChromium } from '../helpers/browser-suite.js';
import { appFrameOf } from '../helpers/framed-ui.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { startTelegramStandin, type TelegramStandin } from '../helpers/telegram-standin.js';
import { rememberTelegramUsername } from '../../db/stores/telegram-chats.js';

/**
 * The Alerts page's "Telegram chats of this portal" in the portal frame, narrow and wide: a
 * private chat is linked whose id the app remembers with a long `@name` (up to 64 characters,
 * none to wrap at; a chat that was public once), and the row still reads as one line of text
 * per cell rather than a column one letter wide.
 */
describeInChromium('linked Telegram chats on the Alerts page', (executablePath) => {
  let h: UiHarness;
  let tg: TelegramStandin;
  let browser: Browser;
  const name = '@a_very_long_channel_name_of_the_sales_department_2026';
  const chatId = '-1001234567890123';
  beforeAll(async () => {
    tg = await startTelegramStandin();
    h = await startUiHarness({
      appHost: 'localhost',
      env: { TELEGRAM_BOT_TOKEN: tg.token, TELEGRAM_API_URL: tg.url },
    });
    await rememberTelegramUsername(h.t.deps.db, chatId, name.slice(1), h.t.clock.now().getTime());
    browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  });
  afterAll(async () => {
    await browser?.close();
    await h?.close();
    await tg?.close();
  });

  for (const width of [600, 1000]) {
    it(`links a chat known by a long @name and lists it readably at ${width} px`, async () => {
      const page = await (await browser.newContext({ viewport: { width, height: 900 } })).newPage();
      await page.goto(`${h.portal.url}/app?user=1`);
      const f = page.frameLocator('iframe.b24emu-frame');
      await f.locator('#figures').waitFor();
      await f.locator('#nav-alerts').click();
      await f.locator('#link-chat-id').fill(chatId);
      await f.locator('#send-code').click();
      await f.locator('#link-form').waitFor();
      const code = /(\d{4} \d{4})/.exec(tg.sent.at(-1)!.text)![1]!;
      await f.locator('#link-code').fill(code);
      await f.locator('#link-chat').click();
      await f.locator('#linked-chats').waitFor();
      const app = appFrameOf(page, h.appUrl, '/ui');
      const m = JSON.parse(
        await app.evaluate<string>(`JSON.stringify((() => {
          const cells = [...document.querySelectorAll('#linked-chats tr:first-child td')];
          const line = parseFloat(getComputedStyle(cells[1]).lineHeight) || 20;
          return {
            heights: cells.map((c) => {
              const r = document.createRange();
              r.selectNodeContents(c);
              return r.getBoundingClientRect().height / line;
            }),
            scroll: document.documentElement.scrollWidth,
            client: document.documentElement.clientWidth,
          };
        })())`),
      ) as { heights: number[]; scroll: number; client: number };
      // Unlinked again first, so that the next width links it anew.
      await f.locator('#linked-chats button').click();
      await f.locator('#no-linked-chats').waitFor();
      expect(m.scroll).toBeLessThanOrEqual(m.client);
      // The time it was linked fits on one line; the chat may wrap, to a few lines at most.
      expect(m.heights[1]).toBeLessThan(2);
      expect(m.heights[0]).toBeLessThan(5);
      await page.close();
    });
  }
});
