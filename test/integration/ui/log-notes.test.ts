import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedDeals, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, rowOf, type UiSession } from './ui-client.js';
import { eventBody } from '../../helpers/event-builder.js';

/**
 * A skipped event's note (no rule matched, why a rule was not run) sat under "Last error"
 * beside the failures, and a first user read every skipped event as one more failure.
 */
describe('the note of a skipped event, told from an error', () => {
  let h: UiHarness;
  let en: UiSession;
  let ru: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  let skipped: number;
  let failed: number;
  beforeAll(async () => {
    h = await startUiHarness();
    deals = await seedDeals(h);
    // No rule watches this change: skipped, with the app's note of why.
    await h.portal.updateDeal(deals.fresh, { STAGE_ID: 'PREPARATION' });
    await h.drain();
    const id = async (dealId: string, status: string) =>
      Number(
        (
          await h.t.deps
            .db('events')
            .where({ entity_id: dealId, event: 'ONCRMDEALUPDATE', status })
            .first('id')
        ).id,
      );
    skipped = await id(deals.fresh, 'skipped');
    failed = await id(deals.lost, 'failed');
    en = await openSession(h, { userId: 2 });
    ru = await openSession(h, { userId: 2, lang: 'ru' });
  });
  afterAll(async () => {
    await h.close();
  });

  it('shows a note as a note and an error as an error in the event log', async () => {
    const log = await getPage(h, '/ui/events?etype=deal', en.cookie);
    expect(log.html).not.toContain('<th>Last error</th>');
    expect(log.html).toContain('<th>Details</th>');
    const note = rowOf(log.html, skipped);
    expect(note).toMatch(
      /<span class="detail detail-note"><span class="detail-kind">Note:<\/span> <span translate="no"(?: title="[^"]*")?>no rule to run \(/,
    );
    expect(note).not.toContain('Error:');
    const error = rowOf(log.html, failed);
    expect(error).toMatch(
      /<span class="detail detail-error"><span class="detail-kind">Error:<\/span> <span translate="no">[^<]*HTTP 400/,
    );
    expect(error).not.toContain('Note:');
  });

  it('shows a note as a note in the deal tab and on the event page, in Russian too', async () => {
    const tab = await getPage(h, `/ui/deal/${deals.fresh}`, ru.cookie);
    expect(rowOf(tab.html, skipped)).toMatch(
      /<span class="detail-kind">Примечание:<\/span> <span translate="no"(?: title="[^"]*")?>нет правил для запуска \(/,
    );
    const lost = await getPage(h, `/ui/deal/${deals.lost}`, ru.cookie);
    expect(rowOf(lost.html, failed)).toContain('<span class="detail-kind">Ошибка:</span>');
    const page = await getPage(h, `/ui/events/${skipped}`, en.cookie);
    expect(page.html).toMatch(/<tr><th>Note<\/th><td><pre id="last-error" class="detail-note"/);
    const failedPage = await getPage(h, `/ui/events/${failed}`, en.cookie);
    expect(failedPage.html).toMatch(/<tr><th>Last error<\/th><td><pre id="last-error"/);
  });

  it("says a skipped event's run finished, not that the event is done (a new user's walk)", async () => {
    const timeline = (html: string) =>
      html.slice(html.indexOf('id="timeline"')).split('</table>')[0]!;
    const page = await getPage(h, `/ui/events/${skipped}`, en.cookie);
    expect(timeline(page.html)).toContain('<span class="badge b-done">finished</span>');
    expect(timeline(page.html)).not.toContain('>done<');
    expect(page.html).toContain('id="timeline-hint"');
    // Its runs are counted from 1, not numbered by their jobs' ids.
    const jobs = await h.t.deps.db('jobs').where({ event_id: skipped }).orderBy('id').pluck('id');
    expect(jobs.length).toBeGreaterThan(0);
    const shown = [...timeline(page.html).matchAll(/<tr data-job="(\d+)"><td>(\d+)<\/td>/g)];
    expect(shown.map((m) => [m[1], m[2]])).toEqual(
      jobs.map((id, i) => [String(id), String(i + 1)]),
    );
    const ruPage = await getPage(h, `/ui/events/${skipped}`, ru.cookie);
    expect(timeline(ruPage.html)).toContain('<span class="badge b-done">завершён</span>');
    expect(timeline(ruPage.html)).not.toContain('готово');
  });

  it("names the fields and the portal's stages the note compared, where it said codes", async () => {
    const stored = (await h.t.deps.db('events').where({ id: skipped }).first('last_error'))
      .last_error as string;
    // Control: the stored note holds the codes the evaluator compared. (The emulated portal
    // has several pipelines; these stages are the default one's, named without it.)
    expect(stored).toContain('STAGE_ID is "PREPARATION", not "WON"');
    const page = await getPage(h, `/ui/events/${skipped}`, en.cookie);
    expect(page.html).toContain(
      'Stage is &#34;Document preparation&#34;, not &#34;Deal successful&#34;',
    );
    expect(page.html).not.toContain('STAGE_ID is');
    const tab = await getPage(h, `/ui/deal/${deals.fresh}`, ru.cookie);
    expect(rowOf(tab.html, skipped)).toContain('Стадия = &#34;Document preparation&#34;, а не');
    // A rule's reason on the page of the event it ran for.
    const won = (await h.t.deps
      .db('events')
      .where({ entity_id: deals.won, event: 'ONCRMDEALUPDATE' })
      .first('id')) as { id: number | string };
    const wonPage = await getPage(h, `/ui/events/${won.id}`, en.cookie);
    expect(wonPage.html).toContain('Stage became &#34;Deal successful&#34; (was &#34;New&#34;)');
    const log = await getPage(h, '/ui/events?etype=deal', en.cookie);
    // Clipped in the table, whole in the cell's title.
    const row = rowOf(log.html, skipped);
    expect(row).toMatch(/<span translate="no" title="no rule to run \([^"]*\)">[^<]*…<\/span>/);
    expect(rowOf(log.html, skipped)).toContain('Stage is &#34;Document preparation&#34;');
  });

  it('names an activity (no card to link to) in the reader’s language, and filters by it', async () => {
    const res = await fetch(`${h.appUrl}${h.t.deps.manifest.handlers.events}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: eventBody({ portal: h.portal, event: 'ONCRMACTIVITYADD', id: 77 }),
    });
    expect(res.status).toBe(200);
    await h.services.intake.drain();
    const log = await getPage(h, '/ui/events?etype=activity', en.cookie);
    expect(log.html).toContain('<option value="activity" selected>Activity</option>');
    expect(log.html).toMatch(/<td>Activity 77<\/td>/);
    // Only the activity's event: the filter is not ignored.
    expect(log.html).not.toMatch(/>Deal \d+</);
    const ruLog = await getPage(h, '/ui/events?etype=activity', ru.cookie);
    expect(ruLog.html).toMatch(/<td>Дело 77<\/td>/);
  });

  it('shows the codes while the portal cannot say its stages, and does not ask it at every view', async () => {
    const batches = () => h.portal.calls.filter((c) => c.method === 'batch').length;
    // The stage list read above is kept 5 minutes; past that the tab reads it again.
    h.t.clock.advance(6 * 60_000);
    h.portal.failNext('batch', { status: 400, error: 'INVALID_REQUEST' });
    const before = batches();
    const first = await getPage(h, `/ui/deal/${deals.fresh}`, en.cookie);
    expect(rowOf(first.html, skipped)).toContain('Stage is &#34;PREPARATION&#34;');
    const tried = batches() - before;
    expect(tried).toBe(1); // control: it did ask, and was refused
    for (let i = 0; i < 3; i++) await getPage(h, `/ui/deal/${deals.fresh}`, en.cookie);
    expect(batches() - before).toBe(tried);
    // A minute later it asks again, and names the stages once the portal answers.
    h.t.clock.advance(61_000);
    const later = await getPage(h, `/ui/deal/${deals.fresh}`, en.cookie);
    expect(batches() - before).toBeGreaterThan(tried);
    expect(rowOf(later.html, skipped)).toContain('Stage is &#34;Document preparation');
  });
});
