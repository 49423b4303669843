import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { describeInChromium } from '../helpers/browser-suite.js';
import { startFramedUi, type FramedUi } from '../helpers/framed-ui.js';

/**
 * The deal tab reads itself again while events wait and swaps in what it read: an event that
 * arrives behind one that keeps failing shows, without a reload, that it waits for that one.
 */
describeInChromium('the deal tab with an event held behind an earlier one', (executablePath) => {
  let ui: FramedUi;
  beforeAll(async () => {
    // The portal's clock is the test's, so the second change gets a later `ts` at once.
    ui = await startFramedUi(executablePath, { sharedClock: true });
  });
  afterAll(async () => {
    await ui?.close();
  });

  const frame = () => ui.page.frameLocator('iframe.b24emu-frame');

  it('shows which earlier event a new event of the deal waits for, as it arrives', async () => {
    const { h, page } = ui;
    const deal = await h.portal.addDeal({ TITLE: 'Order behind a failing one', STAGE_ID: 'NEW' });
    await h.drain();
    h.sink.handle(() => ({ status: 503, body: { error: 'down' } }));
    await h.portal.updateDeal(deal.id, { STAGE_ID: 'WON' });
    await h.drain();
    const first = Number(
      (await h.t.deps.db('events').where({ entity_id: deal.id, status: 'received' }).first('id'))
        .id,
    );
    await page.goto(`${h.portal.url}/crm/deal/details/${deal.id}/?user=2`);
    await frame().locator(`tr[data-id="${first}"] .next-attempt`).waitFor();
    // A later change of the deal arrives while the tab is open.
    h.t.clock.advance(2_000);
    await h.portal.updateDeal(deal.id, { TITLE: 'Order behind a failing one, renamed' });
    await h.drain();
    const held = frame().locator(`.held[data-held-behind="${first}"]`);
    await held.waitFor({ timeout: 15_000 });
    await expect(held.textContent()).resolves.toContain(
      'Waits for an event of this deal queued before it to finish',
    );
    await expect(held.locator('a.held-link').textContent()).resolves.toBe(`#${first}`);
    await expect(held.locator('.badge').getAttribute('class')).resolves.toContain('b-received');
    h.sink.handle(() => ({ status: 201, body: { id: 'INV-1' } }));
    h.t.clock.advance(60 * 60_000);
    await h.drain();
  });
});
