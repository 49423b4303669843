import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, rowOf, type UiSession } from './ui-client.js';

/**
 * Events of one record run one at a time, in arrival order (db/stores/jobs.ts `claimable`):
 * while the first event of a deal retries against a destination that is down, the later ones
 * wait. The log and the deal tab showed them as plain `received`, and a first user took that
 * for the app hanging.
 */
describe('an event that waits for an earlier event of the same deal', () => {
  let h: UiHarness;
  let en: UiSession;
  let ru: UiSession;
  let dealId: string;
  let first: number;
  let second: number;
  beforeAll(async () => {
    // The portal's clock is the test's: the second change gets a later `ts` (an identical
    // delivery within the same second would be counted as a repeat).
    h = await startUiHarness({ sharedClock: true });
    const tab = { path: '/placement/deal-tab', placement: 'CRM_DEAL_DETAIL_TAB' };
    en = await openSession(h, { userId: 2, ...tab });
    ru = await openSession(h, { userId: 2, lang: 'ru', ...tab });
    const deal = await h.portal.addDeal({ TITLE: 'Held order', STAGE_ID: 'NEW' });
    dealId = deal.id;
    await h.drain();
    // The accounting system is down: the WON update's invoice fails and waits for a retry.
    h.sink.handle(() => ({ status: 503, body: { error: 'accounting is down for maintenance' } }));
    await h.portal.updateDeal(dealId, { STAGE_ID: 'WON' });
    await h.drain();
    // A later change of the same deal: stored, and held behind the first.
    h.t.clock.advance(2_000);
    await h.portal.updateDeal(dealId, { TITLE: 'Held order, renamed' });
    await h.drain();
    const updates = (await h.t.deps
      .db('events')
      .where({ entity_type: 'deal', entity_id: dealId, event: 'ONCRMDEALUPDATE' })
      .orderBy('id')
      .select('id', 'status')) as Array<{ id: number; status: string }>;
    expect(updates.map((e) => e.status)).toEqual(['received', 'received']);
    [first, second] = updates.map((e) => Number(e.id)) as [number, number];
  });
  afterAll(async () => {
    await h.close();
  });

  it('says so in the deal tab, naming the earlier event, its status and its last error', async () => {
    const tab = await getPage(h, `/ui/deal/${dealId}`, en.cookie);
    expect(tab.status).toBe(200);
    const row = rowOf(tab.html, second);
    expect(row).toContain('Waits for an event of this deal queued before it to finish');
    expect(row).toContain(`data-held-behind="${first}"`);
    expect(row).toMatch(
      new RegExp(`href="[^"]*/ui/events/${first}[^"]*" class="held-link">#${first}<`),
    );
    // It waits for its retry: "retrying", not the "received" of an untouched event.
    expect(row).toContain('<span class="badge b-received" data-retrying="1">retrying</span>');
    expect(row).toMatch(/Last error: <span translate="no">[^<]*HTTP 503 from POST/);
    // The first one holds the line: it waits for its retry, not for another event.
    expect(rowOf(tab.html, first)).not.toContain('held');
  });

  it('says so in Russian in the deal tab of a Russian portal', async () => {
    const tab = await getPage(h, `/ui/deal/${dealId}`, ru.cookie);
    const row = rowOf(tab.html, second);
    expect(row).toContain(
      'Ждёт, пока завершится событие этой сделки, поставленное в очередь раньше',
    );
    expect(row).toContain(`#${first}</a>, получено `);
    expect(row).toContain('Последняя ошибка: ');
    // The earlier event's error in Russian too, as its own row says it.
    expect(row).toMatch(/Последняя ошибка: <span translate="no">[^<]*: ответ HTTP 503 на /);
  });

  it('says so in the event log and on the event page, linked to the earlier event', async () => {
    const log = await getPage(h, `/ui/events?etype=deal&entity=${dealId}`, en.cookie);
    const row = rowOf(log.html, second);
    expect(row).toContain('Waits for an event of the same record queued before it to finish');
    expect(row).toContain(`class="held-link">#${first}<`);
    expect(row).toContain('HTTP 503 from POST');
    expect(rowOf(log.html, first)).not.toContain('held-link');
    const page = await getPage(h, `/ui/events/${second}`, ru.cookie);
    expect(page.html).toMatch(
      /<td id="held">[\s\S]*Ждёт, пока завершится событие той же записи, поставленное в очередь раньше/,
    );
    expect(page.html).toContain(`class="held-link">#${first}<`);
  });

  it('no longer says so once the earlier event is done', async () => {
    h.sink.handle(() => ({ status: 201, body: { id: 'INV-7' } }));
    h.t.clock.advance(60 * 60_000);
    await h.drain();
    const tab = await getPage(h, `/ui/deal/${dealId}`, en.cookie);
    expect(rowOf(tab.html, first)).toContain('b-processed');
    expect(tab.html).not.toContain('data-held-behind');
  });
});
