import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeInChromium } from '../helpers/browser-suite.js';
import { appFrameOf, startFramedUi, type FramedUi } from '../helpers/framed-ui.js';
import { seedDealEvent } from '../helpers/seed-db.js';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { eraseEntityData } from '../../server/retention/erase.js';

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

  /** A deal moved to WON whose update is stored but not processed yet. */
  async function wonDealWaiting(title: string) {
    const { h } = ui;
    const deal = await h.portal.addDeal({ TITLE: title, STAGE_ID: 'NEW' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.portal.whenIdle();
    await h.services.intake.drain();
    return deal;
  }

  /** Counts the tab's reads of deal `id` (requests sent, or finished), until `stop()`. */
  function countReads(id: number | string, on: 'request' | 'requestfinished') {
    const count = (r: { url(): string }) => {
      if (r.url().includes(`/ui/deal/${id}`)) reads.n++;
    };
    const reads = {
      n: 0,
      stop: () =>
        on === 'request' ? ui.page.off('request', count) : ui.page.off('requestfinished', count),
    };
    if (on === 'request') ui.page.on('request', count);
    else ui.page.on('requestfinished', count);
    return reads;
  }

  it('stops reading itself and says why once the session has ended, instead of promising updates', async () => {
    const { h, page } = ui;
    const deal = await wonDealWaiting('Order of a closed session');
    const reads = countReads(deal.id, 'request');
    try {
      await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
      await frame().locator('#deal-refreshing').waitFor();
      // The session ends (expired, or the app was reinstalled) while the event still waits.
      await h.t.deps.db('sessions').delete();
      await frame()
        .locator('#deal-refreshing', { hasText: 'The session has ended' })
        .waitFor({ timeout: 10_000 });
      const after = reads.n;
      // More than one period of the refresh: no read follows the refusal.
      await page.waitForTimeout(4_000);
      expect(reads.n).toBe(after);
    } finally {
      reads.stop();
      await h.services.worker.drain();
    }
  });

  /**
   * The tab reads itself for 10 minutes at most; it then said nothing and went on promising
   * updates. The page's clock is Playwright's, run forward one period at a time.
   */
  it('says that it stopped reading itself after 10 minutes', async () => {
    const { h, page } = ui;
    const deal = await wonDealWaiting('Order left waiting');
    await page.clock.install();
    const reads = countReads(deal.id, 'requestfinished');
    try {
      await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
      await frame().locator('#deal-refreshing').waitFor();
      reads.n = 0;
      const paused = frame().locator('#deal-refreshing', { hasText: 'stopped updating' });
      for (let i = 0; i < 400 && reads.n < 200; i++) {
        const before = reads.n;
        await page.clock.runFor(3_000);
        for (let w = 0; w < 200 && reads.n === before; w++) await page.waitForTimeout(2);
      }
      await expect(paused.textContent({ timeout: 5_000 })).resolves.toContain('reopen the deal');
      // It read itself every 3 s for 10 minutes (the read that opened the page not counted).
      expect(reads.n).toBe(200);
      await page.clock.runFor(30_000);
      await page.waitForTimeout(100);
      expect(reads.n).toBe(200);
    } finally {
      reads.stop();
      await h.services.worker.drain();
    }
  });

  /** An event erased while its page waited for it said "the session has ended". */
  it("says that a waiting event's page no longer exists once the event is erased", async () => {
    const { h, page } = ui;
    const deal = await wonDealWaiting('Order erased while waiting');
    try {
      await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
      await frame().locator('#deal-events tr[data-id]').first().waitFor();
      const app = () => appFrameOf(page, h.appUrl, '/ui/');
      await Promise.all([
        app().waitForNavigation(),
        frame().locator('#deal-events tr[data-id] a').first().click(),
      ]);
      await frame().locator('#event-refreshing').waitFor();
      const portal = await findPortalByMemberId(h.t.deps.db, h.portal.memberId);
      await eraseEntityData(h.t.deps, portal!, { type: 'deal', id: deal.id });
      await expect(
        frame()
          .locator('#event-refreshing', { hasText: 'no longer in the log' })
          .textContent({ timeout: 10_000 }),
      ).resolves.toContain('erased');
    } finally {
      await h.services.worker.drain();
    }
  });

  it('shows the new status of an event that was still processing when the tab opened', async () => {
    const { h, page } = ui;
    const deal = await wonDealWaiting('Pending order');
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

  it('keeps the keyboard on the event link it was on when the tab reads itself again', async () => {
    const { h, page } = ui;
    const deal = await wonDealWaiting('Order read by keyboard');
    await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
    const newest = frame().locator('#deal-events tr[data-id]').first();
    const link = newest.locator('a[href*="/ui/events/"]').first();
    const href = await link.getAttribute('href');
    await link.focus();
    await h.services.worker.drain();
    await newest.locator('.b-processed').waitFor({ timeout: 15_000 });
    // Before, the refresh replaced the rows and the keyboard fell back to the page's top.
    const app = appFrameOf(page, h.appUrl, '/ui/');
    await expect(
      app.evaluate<string | null>('document.activeElement.getAttribute("href")'),
    ).resolves.toBe(href);
  });

  /**
   * A tab with no events had no refresh at all: a manager who opened a quiet deal and moved
   * it saw "No events" until reopening the card.
   */
  it('shows the first event of a deal that had none when the tab opened, then its outcome', async () => {
    const { h, page } = ui;
    const deal = await h.portal.addDeal({ TITLE: 'Quiet order', STAGE_ID: 'NEW' });
    await h.drain();
    // Its creation erased (an erasure request): the deal has no events in the log.
    const portal = await findPortalByMemberId(h.t.deps.db, h.portal.memberId);
    await eraseEntityData(h.t.deps, portal!, { type: 'deal', id: deal.id });
    await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
    await frame().locator('#no-events').waitFor();
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.portal.whenIdle();
    await h.services.intake.drain();
    // No reload, no click: the event shows up, then its outcome.
    const newest = frame().locator('#deal-events tr[data-id]').first();
    await newest.waitFor({ timeout: 15_000 });
    await h.services.worker.drain();
    // Skipped: the erasure took the deal's earlier stage with it, so "becomes WON" cannot tell.
    await newest.locator('.b-skipped').waitFor({ timeout: 15_000 });
    await expect(frame().locator('#no-events').count()).resolves.toBe(0);
  });

  /**
   * A tab whose events were all done stopped reading itself: a manager who moved the deal
   * with the card open saw nothing of it until reopening the card.
   */
  it('shows a new event of a deal whose events were all done when the tab opened', async () => {
    const { h, page } = ui;
    const deal = await h.portal.addDeal({ TITLE: 'Settled order', STAGE_ID: 'NEW' });
    await h.drain();
    await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
    const rows = frame().locator('#deal-events tr[data-id]');
    await rows.first().waitFor();
    const before = await rows.count();
    await expect(frame().locator('#deal-refreshing').count()).resolves.toBe(0);
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.portal.whenIdle();
    await h.services.intake.drain();
    // No reload, no click: within one idle period (10 s) the event shows, then its outcome.
    await frame()
      .locator(`#deal-events tr[data-id]:nth-child(${before + 1})`)
      .waitFor({ timeout: 15_000 });
    await h.services.worker.drain();
    await rows.first().locator('.b-processed').waitFor({ timeout: 15_000 });
    await expect(rows.first().textContent()).resolves.toContain('Won deal: invoice');
  });

  /** A deal whose events are all done, its tab open on the page's clock, its reads counted. */
  async function openSettledTab(title: string) {
    const { h, page } = ui;
    const deal = await h.portal.addDeal({ TITLE: title, STAGE_ID: 'NEW' });
    await h.drain();
    await page.clock.install();
    const reads = countReads(deal.id, 'requestfinished');
    await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
    await frame().locator('#deal-events tr[data-id]').first().waitFor();
    return reads;
  }

  it('says that it stopped checking for new events after 10 minutes of none', async () => {
    const { page } = ui;
    const reads = await openSettledTab('Order left open');
    try {
      await expect(frame().locator('#deal-watching').isHidden()).resolves.toBe(true);
      reads.n = 0;
      // The first read after 3 s, then one every 10 s: 1 + 59 reads in 10 minutes.
      for (let i = 0; i < 200 && reads.n < 60; i++) {
        const was = reads.n;
        await page.clock.runFor(i === 0 ? 3_000 : 10_000);
        for (let w = 0; w < 200 && reads.n === was; w++) await page.waitForTimeout(2);
      }
      const note = frame().locator('#deal-watching');
      await expect(note.textContent({ timeout: 5_000 })).resolves.toContain('stopped checking');
      await expect(note.isVisible()).resolves.toBe(true);
      expect(reads.n).toBe(60);
      await page.clock.runFor(60_000);
      await page.waitForTimeout(100);
      expect(reads.n).toBe(60);
    } finally {
      reads.stop();
    }
  });

  it('reads nothing while the tab is out of sight, and again as soon as it is seen', async () => {
    const { h, page } = ui;
    const reads = await openSettledTab('Order out of sight');
    try {
      const app = appFrameOf(page, h.appUrl, '/ui/');
      const setHidden = (hidden: boolean) =>
        app.evaluate(
          `Object.defineProperty(document, 'hidden', { value: ${hidden}, configurable: true });
          document.dispatchEvent(new Event('visibilitychange'));`,
        );
      await setHidden(true);
      reads.n = 0;
      await page.clock.runFor(120_000);
      await page.waitForTimeout(200);
      expect(reads.n).toBe(0);
      await setHidden(false);
      for (let w = 0; w < 200 && reads.n === 0; w++) await page.waitForTimeout(10);
      expect(reads.n).toBe(1);
      // Control: seen, it reads on its idle period again.
      await page.clock.runFor(10_000);
      for (let w = 0; w < 200 && reads.n === 1; w++) await page.waitForTimeout(10);
      expect(reads.n).toBe(2);
    } finally {
      reads.stop();
    }
  });

  it('keeps a long error without spaces inside the frame on the tab and the event page', async () => {
    const { h, page } = ui;
    const db = h.t.deps.db;
    const at = h.t.clock.now().getTime();
    // A remote answer without spaces (minified JSON, base64): nothing to wrap at.
    const blob = `HTTP 400 from POST https://erp.example/api: ${'QUJD'.repeat(60)}`;
    const eventId = await seedDealEvent(db, h.portal.memberId, {
      dealId: '1',
      status: 'failed',
      lastError: blob,
      job: { status: 'dead', lastError: blob, runAt: at },
      at,
    });
    await page.setViewportSize({ width: 700, height: 900 });
    await page.goto(`${h.portal.url}/crm/deal/details/1/?user=2`);
    await frame().locator(`tr[data-id="${eventId}"]`).waitFor();
    const widths = `(() => [document.documentElement.scrollWidth, document.documentElement.clientWidth])()`;
    const app = () => appFrameOf(page, h.appUrl, '/ui/');
    const [tabWide, tabFrame] = (await app().evaluate(widths)) as number[];
    expect(tabWide).toBeLessThanOrEqual(tabFrame!);
    await Promise.all([
      app().waitForNavigation(),
      frame().locator(`tr[data-id="${eventId}"] a`).first().click(),
    ]);
    await frame().locator('#timeline').waitFor();
    const [pageWide, pageFrame] = (await app().evaluate(widths)) as number[];
    expect(pageWide).toBeLessThanOrEqual(pageFrame!);
  });
});
