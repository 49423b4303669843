import { chromium, type Browser, type Frame, type Page } from 'playwright-core';
import { BROWSER_STEP_TIMEOUT_MS, CHROMIUM_ARGS } from './chromium.js';
import { seedDeals, startUiHarness, type UiHarness } from './ui-harness.js';

/** The app on an emulated portal with seeded deals, and a Chromium page to open it in. */
export interface FramedUi {
  h: UiHarness;
  browser: Browser;
  /** 1100×900: the portal page, which frames the app on localhost (another site). */
  page: Page;
  close(): Promise<void>;
}

export async function startFramedUi(
  executablePath: string,
  opts: Omit<NonNullable<Parameters<typeof startUiHarness>[0]>, 'appHost'> = {},
): Promise<FramedUi> {
  const h = await startUiHarness({ ...opts, appHost: 'localhost' });
  await seedDeals(h);
  const browser = await chromium.launch({ executablePath, args: CHROMIUM_ARGS });
  const page = await (
    await browser.newContext({ viewport: { width: 1100, height: 900 } })
  ).newPage();
  page.setDefaultTimeout(BROWSER_STEP_TIMEOUT_MS);
  return {
    h,
    browser,
    page,
    async close() {
      await browser.close();
      await h.close();
    },
  };
}

/** The app's frame inside the emulated portal page: the frame whose URL starts with `prefix`. */
export function appFrameOf(page: Page, appUrl: string, prefix = '/'): Frame {
  const f = page.frames().find((x) => x.url().startsWith(`${appUrl}${prefix}`));
  if (!f) throw new Error('no app frame');
  return f;
}
