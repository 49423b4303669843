import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedDeals, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

const rowIds = (html: string): number[] =>
  [...html.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
const rowEvents = (html: string): string[] =>
  [...html.matchAll(/<tr data-id="\d+" data-status="\w+" data-event="(\w+)"/g)].map((m) => m[1]!);

describe('the event log a manager reads', () => {
  let h: UiHarness;
  let admin: UiSession;
  let reader: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    h = await startUiHarness();
    deals = await seedDeals(h);
    admin = await openSession(h);
    reader = await openSession(h, { userId: 2 });
  });
  afterAll(async () => {
    await h.close();
  });

  const eventId = async (dealId: string, event: string): Promise<number> =>
    Number(
      (await h.t.deps.db('events').where({ entity_id: dealId, event }).first('id')).id as number,
    );

  it('says why a filter finds nothing when its dates cannot match or cannot be read', async () => {
    const swapped = await getPage(h, '/ui/events?from=2026-12-05&to=2026-12-01', admin.cookie);
    expect(swapped.html).toContain('id="filter-problems"');
    expect(swapped.html).toContain('&#34;From&#34; is after &#34;To&#34;: no event can match.');
    const garbled = await getPage(h, '/ui/events?from=yesterday', admin.cookie);
    expect(garbled.html).toContain('A date could not be read and was left out of the filter');
    // Control: a range that reads is said nothing about.
    const fine = await getPage(h, '/ui/events?from=2026-12-01&to=2026-12-05', admin.cookie);
    expect(fine.html).not.toContain('id="filter-problems"');
  });

  it('hides the app lifecycle events by default and shows them on the switch', async () => {
    const stored = await h.t.deps.db('events').where({ event: 'ONAPPINSTALL' }).count({ n: '*' });
    expect(Number(stored[0]?.n)).toBeGreaterThan(0);
    const page = await getPage(h, '/ui/events', admin.cookie);
    expect(rowEvents(page.html).length).toBeGreaterThan(0);
    expect(rowEvents(page.html)).not.toContain('ONAPPINSTALL');
    const all = await getPage(h, '/ui/events?all=1', admin.cookie);
    expect(rowEvents(all.html)).toContain('ONAPPINSTALL');
    expect(all.html).toMatch(/id="show-all" checked/);
  });

  it('filters by the rule an event matched and by outcome', async () => {
    const won = await getPage(
      h,
      `/ui/events?rule=${encodeURIComponent('Won deal: invoice')}`,
      admin.cookie,
    );
    expect(rowIds(won.html)).toEqual([await eventId(deals.won, 'ONCRMDEALUPDATE')]);
    const failed = await getPage(h, '/ui/events?outcome=failed', admin.cookie);
    expect(rowIds(failed.html)).toEqual([await eventId(deals.lost, 'ONCRMDEALUPDATE')]);
    const nothing = await getPage(h, '/ui/events?outcome=nothing', admin.cookie);
    expect(rowEvents(nothing.html)).toEqual(['ONCRMDEALADD', 'ONCRMDEALADD', 'ONCRMDEALADD']);
  });

  it('links each entity to its card on the portal', async () => {
    const page = await getPage(h, `/ui/events?entity=${deals.won}`, admin.cookie);
    const origin = new URL(h.portal.url).origin;
    expect(page.html).toContain(
      `href="${origin}/crm/deal/details/${deals.won}/" class="crm-link" data-path="/crm/deal/details/${deals.won}/"`,
    );
  });

  it('retries the selected rows for an admin with the CSRF token, and only those', async () => {
    const page = await getPage(h, '/ui/events', admin.cookie);
    const ids = [
      await eventId(deals.won, 'ONCRMDEALUPDATE'),
      await eventId(deals.lost, 'ONCRMDEALUPDATE'),
    ];
    const noToken = await postForm(h, '/ui/events/retry', { ids: ids.map(String) }, admin.cookie);
    expect(noToken.status).toBe(403);
    // The button is above the list, beside a box that ticks every row of the page.
    expect(page.html.indexOf('id="retry-selected"')).toBeGreaterThan(0);
    expect(page.html.indexOf('id="retry-selected"')).toBeLessThan(page.html.indexOf('id="events"'));
    expect(page.html).toContain('id="pick-all" aria-label="Select all on this page"');
    const readerPage = await getPage(h, '/ui/events', reader.cookie);
    expect(readerPage.html).not.toContain('id="retry-selected"');
    expect(readerPage.html).not.toContain('id="pick-all"');
    const asReader = await postForm(
      h,
      '/ui/events/retry',
      { ids: ids.map(String), _csrf: csrfOf(readerPage.html) },
      reader.cookie,
    );
    expect(asReader.status).toBe(403);
    const sent = h.sink.requests.length;
    const before = await getPage(h, `/ui/events/${ids[0]}`, admin.cookie);
    expect(before.html).not.toContain('id="replayed-at"');
    const res = await postForm(
      h,
      '/ui/events/retry',
      { ids: ids.map(String), outcome: 'failed', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(res.status).toBe(303);
    const location = new URL(res.headers.get('location') ?? '', h.appUrl);
    expect(location.searchParams.get('retried')).toBe('2');
    expect(location.searchParams.get('outcome')).toBe('failed');
    // The job queued again has not started: its row says when it was queued, no range.
    const queued = await getPage(h, `/ui/events/${ids[1]}`, admin.cookie);
    const rows = queued.html.slice(queued.html.indexOf('id="timeline"')).split('</table>')[0]!;
    const pending = rows.split(/<tr[ >]/).find((r) => r.includes('b-pending'));
    expect(pending).toBeDefined();
    expect(pending).not.toContain('→');
    await h.drain();
    // The invoice already succeeded, so only the failed step is sent again.
    expect(h.sink.requests.slice(sent).map((r) => r.url)).toEqual(['/fail']);
    // The event's page says when it was replayed, beside its receipt.
    const after = await getPage(h, `/ui/events/${ids[0]}`, admin.cookie);
    expect(after.html).toMatch(
      /<tr id="replayed-at"><th>Replayed<\/th><td><time datetime="[^"]+"><span class="day">\d{4}-\d\d-\d\d<\/span> <span class="hour">\d/,
    );
  });

  it('sends a retry of no rows back to the same log page, saying what to do', async () => {
    const page = await getPage(h, '/ui/events?outcome=failed', admin.cookie);
    const sent = h.sink.requests.length;
    const none = await postForm(
      h,
      '/ui/events/retry',
      { outcome: 'failed', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(none.status).toBe(303);
    const location = new URL(none.headers.get('location') ?? '', h.appUrl);
    expect(location.pathname).toBe('/ui/events');
    expect(location.searchParams.get('outcome')).toBe('failed');
    const back = await getPage(h, `${location.pathname}${location.search}`, admin.cookie);
    expect(back.status).toBe(200);
    expect(back.html).toContain('id="retry-refused"');
    expect(back.html).toContain('tick the events to retry (up to 200)');
    // The log is there with its filter and navigation.
    expect(back.html).toContain('id="retry-selected-form"');
    expect(back.html).toMatch(/<option value="failed"\s+selected/);
    // More rows than one retry may take are refused the same way; nothing was queued.
    const many = await postForm(
      h,
      '/ui/events/retry',
      { ids: Array.from({ length: 201 }, (_, i) => String(i + 1)), _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(many.headers.get('location')).toContain('retryRefused=201');
    await h.drain();
    expect(h.sink.requests.length).toBe(sent);
  });

  it('exports the filtered log as CSV without any secret', async () => {
    const csv = await getPage(h, '/ui/events.csv?outcome=failed', admin.cookie);
    expect(csv.status).toBe(200);
    expect(csv.headers.get('content-type')).toContain('text/csv');
    const lines = csv.html
      .replace(/^\ufeff/, '')
      .trim()
      .split('\r\n');
    expect(lines[0]).toBe(
      'id,received_at,event,entity_type,entity_id,card_url,status,attempts,processed_at,source,last_error',
    );
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(`/crm/deal/details/${deals.lost}/,failed,`);
    const row = await h.t.deps.db('portals').where({ member_id: h.portal.memberId }).first();
    const secrets = [row.access_token_enc, row.refresh_token_enc]
      .filter(Boolean)
      .map((v: string) => h.t.deps.box.decrypt(v));
    secrets.push(h.portal.applicationToken, h.t.deps.config.sessionSecret);
    const all = await getPage(h, '/ui/events.csv?all=1', admin.cookie);
    expect(all.html.split('\r\n').length).toBeGreaterThan(6);
    for (const s of secrets) expect(all.html.includes(s)).toBe(false);
  });

  it('gives the dashboard charts a text alternative', async () => {
    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.html).toMatch(
      /<canvas id="chart-day" height="180" role="img" aria-label="Events, last 24 h \(per hour\): received \d+, failed 1">/,
    );
    const table = /<details class="chart-table" id="chart-day-table">([\s\S]*?)<\/details>/.exec(
      page.html,
    )?.[1];
    expect(table?.match(/<tr><td>/g)).toHaveLength(24);
  });
});
