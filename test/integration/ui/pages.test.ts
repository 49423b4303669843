import { createRequire } from 'node:module';
import { claimTelegramChat } from '../../../db/stores/telegram-chats.js';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { seedDeals, startUiHarness, uiTestMap, type UiHarness } from '../../helpers/ui-harness.js';
import { seedPortal } from '../../helpers/event-builder.js';
import { findPortalByMemberId } from '../../../db/stores/portals.js';
import { insertJobs } from '../../../db/stores/jobs.js';
import { saveDestination } from '../../../db/stores/destinations.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';
import { getRuleMap, saveRuleMap } from '../../../server/rules/map-store.js';
import { saveMapSealed } from '../../../server/rules/saved-map.js';

describe('the pages of an installed portal with events', () => {
  let h: UiHarness;
  let admin: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    h = await startUiHarness();
    deals = await seedDeals(h);
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
  });

  const eventId = async (dealId: string, event: string) =>
    Number(
      (
        await h.t.deps
          .db('events')
          .where({ entity_id: dealId, event })
          .orderBy('id', 'desc')
          .first('id')
      ).id,
    );

  it('shows the figures and per-rule success on the dashboard', async () => {
    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toMatch(/id="fig-failed" href="[^"]*"><b>1<\/b>/);
    // Each status figure opens its events in the log, and the log lists as many (the app's
    // own install event among the processed ones: the figures count it).
    for (const status of ['failed', 'processed']) {
      const tile = new RegExp(
        `<a class="tile" id="fig-${status}" href="([^"]+)"><b>(\\d+)</b>`,
      ).exec(page.html);
      expect(tile).not.toBeNull();
      const log = await getPage(h, tile![1]!.replaceAll('&amp;', '&'), admin.cookie);
      const rows = log.html.match(new RegExp(`<tr data-id="\\d+" data-status="${status}"`, 'g'));
      expect(rows?.length ?? 0).toBe(Number(tile![2]));
    }
    expect(page.html).toContain('id="figures-note"');
    expect(page.html).toContain('Won deal: invoice');
    expect(page.html).toContain('Lost deal: notify');
    expect(page.html).toContain('id="chart-data"');
    // The per-rule figures count steps (a 2-step rule run 4 times: 8), so they say so; they
    // read as rule runs beside the SLA table's events and the figure of failed events.
    expect(page.html).toContain(
      '<th>Steps succeeded</th><th>Steps failed (a retry may follow)</th><th>Share of steps that succeeded</th>',
    );
  });

  it("lists the destinations down that this portal's jobs wait for, and no other portal's", async () => {
    const db = h.t.deps.db;
    const now = h.t.clock.now().getTime();
    const mine = (await findPortalByMemberId(db, h.portal.memberId))!;
    const other = await seedPortal(h.t.deps);
    for (const [key, portalId] of [
      ['http:accounting.example:443', mine.id],
      ['http:secret-of-another.example', other.row.id],
    ] as const) {
      await saveDestination(db, {
        key,
        state: 'open',
        failures: 5,
        cooldown_ms: 30_000,
        opened_at: now,
        retry_at: now + 30_000,
        last_error: 'timed out',
        updated_at: now,
      });
      const job = {
        type: 'process_event' as const,
        event_id: null,
        portal_id: portalId,
        entity_key: null,
        payload: null,
        max_attempts: 3,
        run_at: now + 30_000,
      };
      await insertJobs(db, [job, job], now);
      await db('jobs')
        .where({ portal_id: portalId, run_at: now + 30_000 })
        .update({ waiting_for: key });
    }
    try {
      const page = await getPage(h, '/ui', admin.cookie);
      expect(page.html).toContain(
        'data-destination="http:accounting.example:443" data-waiting="2"',
      );
      // A count in words that agree with it, in either language ("1 jobs wait" before), and
      // the host without the portal's internal id.
      expect(page.html).toContain(
        '<span class="badge b-failed" translate="no">accounting.example:443</span></td><td>jobs waiting: 2</td>',
      );
      expect(page.html).not.toContain('secret-of-another');
    } finally {
      await db('jobs')
        .where('run_at', now + 30_000)
        .delete();
      await db('destinations').delete();
    }
  });

  it('filters the log by status, event, entity and text, newest first', async () => {
    const failed = await getPage(h, '/ui/events?status=failed', admin.cookie);
    expect(failed.html.match(/data-status="failed"/g)).toHaveLength(1);
    expect(failed.html).not.toContain('data-status="processed"');
    const byEntity = await getPage(h, `/ui/events?entity=${deals.won}`, admin.cookie);
    const ids = [...byEntity.html.matchAll(/<tr data-id="(\d+)"/g)].map((m) => Number(m[1]));
    expect(ids.length).toBe(2);
    // A processed event's Details say what ran (they were empty): the won deal's invoice step.
    expect(byEntity.html).toMatch(
      /data-status="processed"[\s\S]*?<span class="steps-done">1 step succeeded<\/span>/,
    );
    // A skipped one keeps its note, and says no step.
    expect(byEntity.html.match(/class="steps-done"/g)).toHaveLength(1);
    expect(ids[0]).toBeGreaterThan(ids[1]!);
    const adds = await getPage(h, '/ui/events?event=ONCRMDEALADD', admin.cookie);
    expect(adds.html.match(/<tr data-id=/g)).toHaveLength(3);
    const text = await getPage(h, '/ui/events?q=rejected+by+the+test', admin.cookie);
    expect(text.html.match(/<tr data-id=/g)).toHaveLength(1);
    // What a text search reads is said beside its results (large bodies: by their error).
    expect(text.html).toContain('id="text-search-scope"');
    expect(text.html).toContain('up to 16 KB of it');
    expect(adds.html).not.toContain('id="text-search-scope"');
    const none = await getPage(h, '/ui/events?from=2020-01-01&to=2020-01-02', admin.cookie);
    expect(none.html).toContain('id="no-events"');
  });

  it("names the app's own events and says whose they are, with service events shown", async () => {
    const page = await getPage(h, '/ui/events?event=ONAPPINSTALL&all=1', admin.cookie);
    expect(page.html).toContain('data-event="ONAPPINSTALL"');
    expect(page.html).toContain(
      '<td class="event">The app was installed<div class="muted event-code" translate="no">',
    );
    // Its record: the app (it was shown as "app").
    expect(page.html).toMatch(/<td>The app <\/td>/);
  });

  it('pages the log by id', async () => {
    const total = Number(
      (
        (await h.t.deps.db('events').where('portal_id', '>', 0).count({ n: '*' }).first()) as {
          n: number;
        }
      ).n,
    );
    expect(total).toBeGreaterThan(5);
    const first = await getPage(h, '/ui/events', admin.cookie);
    expect(first.html).not.toContain('id="older"');
    // Each event as a CRM manager reads it, its code under it.
    expect(first.html).toContain(
      '<td class="event">A deal was changed<div class="muted event-code" translate="no">ONCRM<wbr>DEAL<wbr>UPDATE</div>',
    );
    const newest = Number(/<tr data-id="(\d+)"/.exec(first.html)?.[1]);
    const page2 = await getPage(h, `/ui/events?before=${newest}`, admin.cookie);
    expect(page2.html).not.toContain(`data-id="${newest}"`);
    expect(page2.html).toContain('id="newest"');
    expect(first.html).not.toContain('id="newer"');
    // "Newer" goes back up one page: to the rows above this one.
    const newer = /<a href="([^"]+)" id="newer">/.exec(page2.html)?.[1]?.replace(/&amp;/g, '&');
    expect(newer).toMatch(/[?&]after=\d+/);
    const back = await getPage(h, newer!, admin.cookie);
    expect(back.html).toContain(`data-id="${newest}"`);
    expect(back.html).not.toContain('id="newer"');
  });

  it('shows an event with its attempts and action runs, and retries it for an admin', async () => {
    const id = await eventId(deals.lost, 'ONCRMDEALUPDATE');
    const page = await getPage(h, `/ui/events/${id}`, admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toMatch(
      /<h1>Event #\d+ · A deal was changed <span class="muted event-code" translate="no">ONCRMDEALUPDATE<\/span>/,
    );
    expect(page.html).toContain('Lost deal: notify');
    // The rule whose step failed says so beside its name; "matched" read as "it worked".
    expect(page.html).toMatch(
      /<li><b translate="no"><bdi>Lost deal: notify<\/bdi><\/b>\s*<span class="badge b-failed">a step failed<\/span>/,
    );
    // Its runs are the processing's history, not "Timeline", the CRM's word for a record's feed.
    expect(page.html).toContain('<h2>Processing history</h2>');
    // Each step where it goes, as the rules page says it, not only its type.
    expect(page.html).toMatch(
      / · Step 1 \(<bdi translate="no">notify<\/bdi>\) · POST to 127\.0\.0\.1:\d+\s/,
    );
    expect(page.html).toContain('rejected by the test sink');
    expect(page.html).toContain('[masked]');
    const sent = h.sink.requests.length;
    const res = await postForm(
      h,
      `/ui/events/${id}/retry`,
      { _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toContain('retried=1');
    // The notice says what a retry sends: a processed event's succeeded steps are not sent
    // again, and "queued again" alone read as if they were.
    const after = await getPage(h, res.headers.get('location')!, admin.cookie);
    expect(after.html).toContain(
      'The event was queued again. Steps that already succeeded are not sent again.',
    );
    await h.drain();
    expect(h.sink.requests.length).toBe(sent + 1);
    // The link stays in the address bar: once the retry has run, a reload says so, not
    // "queued again" above a retry that failed again.
    const reloaded = await getPage(h, res.headers.get('location')!, admin.cookie);
    expect(reloaded.html).not.toContain('The event was queued again.');
    expect(reloaded.html).toContain('id="notice">The retry has run:');
  });

  it('does not show another portal event', async () => {
    const page = await getPage(h, '/ui/events/999999', admin.cookie);
    expect(page.status).toBe(404);
  });

  it('answers a page that is not there with the app menu, in the user’s language', async () => {
    // The frame has no back button: an error page keeps the menu and a way to the dashboard.
    for (const path of ['/ui/events/999999', '/ui/no-such-page']) {
      const page = await getPage(h, path, admin.cookie);
      expect([path, page.status]).toEqual([path, 404]);
      expect(page.headers.get('content-type')).toContain('text/html');
      expect(page.html).toContain('id="nav-dashboard"');
      expect(page.html).toMatch(/<p class="error" id="error-message" role="alert">Not found<\/p>/);
    }
    const ru = await openSession(h, { lang: 'ru' });
    const inRu = await getPage(h, '/ui/no-such-page', ru.cookie);
    expect(inRu.html).toMatch(/id="error-message" role="alert">Не найдено<\/p>/);
    expect(inRu.html).toContain('<html lang="ru">');
    // Control: without a session (not a page of the app) the answer stays plain text.
    const bare = await fetch(`${h.appUrl}/no-such-path`);
    expect([bare.status, bare.headers.get('content-type')]).toEqual([
      404,
      'text/plain; charset=utf-8',
    ]);
  });

  it('lists a deal tab with its events and action runs', async () => {
    const page = await getPage(h, `/ui/deal/${deals.won}`, admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html.match(/<tr data-id=/g)).toHaveLength(2);
    expect(page.html).toContain('Won deal: invoice');
    expect(page.html).toContain('b-succeeded');
  });

  it('previews a replay, then replays only after confirmation', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/replay', admin.cookie)).html);
    const range = { from: '2026-11-27', to: '2026-11-27', event: 'ONCRMDEALUPDATE' };
    const jobsBefore = await h.t.deps.db('jobs').count({ n: '*' }).first();
    const preview = await postForm(
      h,
      '/ui/replay/preview',
      { ...range, _csrf: csrf },
      admin.cookie,
    );
    expect(preview.status).toBe(200);
    expect(preview.html).toMatch(/id="replay-count">2</);
    expect(await h.t.deps.db('jobs').count({ n: '*' }).first()).toEqual(jobsBefore);
    // A delivery in the range arrives between the preview and the confirmation: the run
    // replays the two it counted, not three.
    const asOf = /name="asOf" value="(\d+)"/.exec(preview.html)?.[1];
    expect(Number(asOf)).toBe(h.t.clock.now().getTime());
    h.t.clock.advance(1000);
    await h.portal.updateDeal(deals.fresh, { TITLE: 'Changed meanwhile' });
    await h.drain();
    const inRange = await h.t.deps
      .db('events')
      .where({ event: 'ONCRMDEALUPDATE' })
      .count({ n: '*' });
    expect(Number(inRange[0]?.n)).toBe(3); // control: it is in the range
    const sent = h.sink.requests.length;
    const run = await postForm(
      h,
      '/ui/replay/run',
      { ...range, asOf: asOf!, _csrf: csrf },
      admin.cookie,
    );
    expect(run.status).toBe(303);
    const progress = await getPage(h, run.headers.get('location') ?? '', admin.cookie);
    expect(progress.html).toMatch(/id="replay-queued">2</);
    await h.drain();
    // Only the failed step runs again; the invoice that succeeded is not sent twice.
    expect(h.sink.requests.slice(sent).map((r) => r.url)).toEqual(['/fail']);
  });

  it('validates the map with JSON paths and saves a valid one as the portal map', async () => {
    const page = await getPage(h, '/ui/rules', admin.cookie);
    const csrf = csrfOf(page.html);
    const bad = await postForm(
      h,
      '/ui/rules',
      {
        map: '{"rules":[{"name":"x","on":["ONCRMDEALADD"],"actions":[{"type":"http","url":5}]}]}',
        _csrf: csrf,
      },
      admin.cookie,
    );
    expect(bad.status).toBe(400);
    expect(bad.html).toContain('$.rules[0].actions[0]');
    // A step outside the app's scopes would get insufficient_scope: refused at save.
    const outside = await postForm(
      h,
      '/ui/rules',
      {
        map: JSON.stringify({
          rules: [
            {
              name: 'x',
              on: ['ONCRMDEALADD'],
              actions: [{ type: 'bitrix', method: 'im.notify.system.add', params: {} }],
            },
          ],
        }),
        _csrf: csrf,
      },
      admin.cookie,
    );
    expect(outside.status).toBe(400);
    expect(outside.html).toContain('needs the Bitrix24 scope &#34;im&#34;');
    const good = await postForm(
      h,
      '/ui/rules',
      { map: JSON.stringify({ rules: [] }), _csrf: csrf },
      admin.cookie,
    );
    expect(good.status).toBe(200);
    expect(good.html).toContain('id="saved"');
    expect(
      await h.t.deps.db('settings').where({ scope: h.portal.memberId, key: 'rules' }).first(),
    ).toBeTruthy();
  });

  it('compares wanted and bound events and re-syncs', async () => {
    const sms = { type: 'sms' as const, to: '+15550001111', text: 'x' };
    await saveRuleMap(
      h.t.deps.db,
      h.portal.memberId,
      {
        rules: [
          { name: 'New deal', on: ['ONCRMDEALADD'], actions: [sms] },
          { name: 'Deal moved', on: ['ONCRMDEALUPDATE'], actions: [sms] },
          { name: 'Off', on: ['ONCRMDEALADD'], actions: [sms], enabled: false },
        ],
      },
      h.t.clock.now(),
    );
    const page = await getPage(h, '/ui/subscriptions', admin.cookie);
    // Each event names the enabled rules that listen to it.
    expect(page.html).toMatch(
      /data-event="ONCRMDEALADD"[^]*?<td class="muted used-by" translate="no"><bdi>New deal<\/bdi><\/td>/,
    );
    expect(page.html).toContain(
      'data-event="ONCRMDEALUPDATE" data-chosen="true" data-actual="true"',
    );
    // The app's own bindings are named under the table, not offered as unticked rows.
    const own = /<p class="muted" id="subs-app-own">([^<]*)<span translate="no">([^<]*)</.exec(
      page.html,
    );
    expect(own?.[2]?.split(', ')).toEqual(
      expect.arrayContaining(['ONAPPINSTALL', 'ONAPPUPDATE', 'ONAPPUNINSTALL']),
    );
    const offline = h.portal.bindings.some((b) => b.event === 'ONOFFLINEEVENT');
    expect(own?.[2]?.includes('ONOFFLINEEVENT')).toBe(offline);
    expect(page.html).not.toContain('data-event="ONOFFLINEEVENT"');
    expect(page.html).not.toContain('data-event="ONAPPINSTALL"');
    // Unticking an event a rule listens to is asked first: nothing is saved or unbound.
    const bindingsBefore = h.portal.bindings.map((b) => b.event).sort();
    const asked = await postForm(
      h,
      '/ui/subscriptions',
      { save: '1', events: ['ONCRMDEALUPDATE', 'ONCRMLEADADD'], _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(asked.status).toBe(200);
    expect(asked.html).not.toContain('id="synced"');
    const confirm = /<div class="warn" id="subs-confirm"[^]*?<\/div>/.exec(asked.html)?.[0] ?? '';
    // Each rule on its own line: rule names hold commas.
    expect(confirm).toContain(
      '<code>ONCRMDEALADD</code><ul><li translate="no"><bdi>New deal</bdi></li></ul>',
    );
    expect(confirm).not.toContain('ONCRMDEALUPDATE');
    expect(asked.html).toContain('<input type="hidden" name="confirmed" value="ONCRMDEALADD">');
    // The question has two answers only: "Re-sync bindings" (which would bind every ticked
    // event again) is not offered under "Save and unbind them".
    expect(asked.html).toContain('id="subs-cancel"');
    expect(asked.html).not.toContain('id="resync"');
    expect(page.html).toContain('id="resync"'); // control: the page itself offers it
    // An event unticked on the confirmation page itself is named before it goes too.
    const more = await postForm(
      h,
      '/ui/subscriptions',
      { save: '1', confirmed: 'ONCRMDEALADD', events: ['ONCRMLEADADD'], _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(more.html).not.toContain('id="synced"');
    expect(more.html).toMatch(/id="subs-confirm"[^]*<code>ONCRMDEALUPDATE<\/code>/);
    // The admin's ticks are kept on the page, and nothing changed on the portal.
    expect(asked.html).toContain('data-event="ONCRMLEADADD" data-chosen="true"');
    expect(asked.html).toContain('data-event="ONCRMDEALADD" data-chosen="false"');
    expect(h.portal.bindings.map((b) => b.event).sort()).toEqual(bindingsBefore);
    const res = await postForm(
      h,
      '/ui/subscriptions',
      {
        save: '1',
        confirmed: 'ONCRMDEALADD',
        events: ['ONCRMDEALUPDATE', 'ONCRMLEADADD'],
        _csrf: csrfOf(page.html),
      },
      admin.cookie,
    );
    expect(res.html).toContain('id="synced"');
    expect(h.portal.bindings.map((b) => b.event)).toEqual(
      expect.arrayContaining(['ONCRMDEALUPDATE', 'ONCRMLEADADD']),
    );
    expect(h.portal.bindings.map((b) => b.event)).not.toContain('ONCRMDEALADD');
    // Unticked, ONCRMDEALADD stops a rule: said at once, naming it (not the disabled one).
    const silenced = /<div class="warn" id="subs-silenced"[^]*?<\/div>/.exec(res.html)?.[0] ?? '';
    expect(silenced).toContain('These rules will not fire until their events are ticked');
    expect(silenced).toContain('New deal');
    expect(silenced).toContain('(ONCRMDEALADD)');
    expect(silenced).not.toContain('Deal moved');
    expect(silenced).not.toContain('Off');
    // Ticked again: no warning.
    const again = await postForm(
      h,
      '/ui/subscriptions',
      {
        save: '1',
        events: ['ONCRMDEALUPDATE', 'ONCRMDEALADD'],
        _csrf: csrfOf(page.html),
      },
      admin.cookie,
    );
    expect(again.html).toContain('id="synced"');
    expect(again.html).not.toContain('id="subs-silenced"');
    // Bound again: what happened meanwhile was not sent, and the sweep is where to find it.
    expect(again.html).toMatch(
      /<p class="warn" id="subs-rebound">Bound again\.[^<]*<span translate="no">ONCRMDEALADD<\/span>\. <a href="[^"]*#sweep-form">/,
    );
    await saveRuleMap(h.t.deps.db, h.portal.memberId, { rules: [] }, h.t.clock.now());
  });

  it('stores alert channels per portal and queues a test alert', async () => {
    const page = await getPage(h, '/ui/alerts', admin.cookie);
    // Before anything is typed, the page says what this server cannot send (a walk learnt
    // it only after saving a chat).
    if (!(await h.t.deps.db('settings').where({ key: 'alerts' }).first())) {
      expect(page.html).toContain('id="no-telegram-yet"');
      expect(page.html).toContain('This server does not send e-mail (no SMTP_URL)');
    }
    const res = await postForm(
      h,
      '/ui/alerts',
      { telegram: 'not a chat', email: 'ops@example.com', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(res.status).toBe(400);
    // An address inside the server's network is no portal's to send to.
    const internal = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-100123', email: 'root@mail.internal', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(internal.status).toBe(400);
    expect(internal.html).toContain('E-mail: not a public mail domain');
    const ok = await postForm(
      h,
      '/ui/alerts',
      { telegram: '-100123', email: 'ops@example.com', _csrf: csrfOf(page.html) },
      admin.cookie,
    );
    expect(ok.html).toContain('value="-100123"');
    // "Saved." alone read as "alerts will come": this server has neither a Telegram bot nor
    // SMTP, so the page says beside the form that neither is sent, and why.
    expect(ok.html).toContain('id="no-telegram"');
    expect(ok.html).toContain('id="no-email"');
    expect(ok.html).not.toContain('id="no-telegram-yet"');
    // A chat another portal of the app holds, or the operator's own, is refused.
    await claimTelegramChat(h.t.deps.db, '-100999', 1_000_000, h.t.clock.now().getTime());
    for (const chat of ['-100999', String(h.t.deps.config.telegram.chatId ?? '')].filter(Boolean)) {
      const taken = await postForm(
        h,
        '/ui/alerts',
        { telegram: chat, email: 'ops@example.com', _csrf: csrfOf(page.html) },
        admin.cookie,
      );
      expect(taken.status).toBe(400);
      expect(taken.html).toMatch(/used by another portal|server&#39;s alert chat/);
    }
    const test = await postForm(h, '/ui/alerts/test', { _csrf: csrfOf(page.html) }, admin.cookie);
    expect(test.status).toBe(200);
    expect(test.html).toContain('id="test-sent"');
    // This server has neither a Telegram bot nor SMTP: the admin, who has just saved a chat
    // and an address, is told why nothing went out and what the server needs.
    expect(h.t.deps.config.telegram.botToken).toBeFalsy();
    expect(test.html).toContain('Nothing was sent');
    expect(test.html).toContain('TELEGRAM_BOT_TOKEN');
    expect(test.html).toContain('SMTP_URL');
  });

  it('reads and compiles its templates once, whatever NODE_ENV says', async () => {
    expect(process.env.NODE_ENV).not.toBe('production');
    // The instance Express loads (with require), whose loader every template read goes through.
    const ejs = createRequire(import.meta.url)('ejs') as {
      fileLoader: (f: string) => string;
      clearCache: () => void;
    };
    ejs.clearCache();
    const load = ejs.fileLoader;
    const read: string[] = [];
    ejs.fileLoader = (file: string) => {
      read.push(file);
      return load(file);
    };
    try {
      expect((await getPage(h, '/ui', admin.cookie)).status).toBe(200);
      // The control: with its cache cleared, the first view read the page and its partials.
      expect(read.length).toBeGreaterThan(0);
      read.length = 0;
      expect((await getPage(h, '/ui', admin.cookie)).status).toBe(200);
      expect(read).toEqual([]);
    } finally {
      ejs.fileLoader = load;
    }
  });

  it('says a step whose URL holds a credential by its host, as the rules page does (found in review)', async () => {
    const own = (await getRuleMap(h.t.deps.db, h.portal.memberId)) ?? uiTestMap(h.sink.url);
    const map = {
      rules: [
        ...own.rules,
        {
          name: 'Sealed hook',
          on: ['ONCRMDEALUPDATE'],
          when: [{ field: 'TITLE', equals: 'Sealed' }],
          actions: [
            {
              type: 'http' as const,
              method: 'POST' as const,
              url: `${h.sink.url}/hook?token=abcdefgh12345`,
            },
          ],
        },
      ],
    };
    await saveMapSealed(h.t.deps, h.portal.memberId, map);
    const deal = await h.portal.addDeal({ TITLE: 'Plain' });
    await h.drain();
    await h.portal.updateDeal(deal.id, { TITLE: 'Sealed' });
    await h.drain();
    const id = await eventId(deal.id, 'ONCRMDEALUPDATE');
    const page = await getPage(h, `/ui/events/${id}`, admin.cookie);
    // Stored sealed ({"$enc"}): described from the map as the rules page shows it, masked.
    expect(page.html).toMatch(/ · Step 1 · POST to 127\.0\.0\.1:\d+\s/);
    expect(page.html).not.toContain('a stored address');
    expect(page.html).not.toContain('abcdefgh12345');
  });
});

describe('the dashboard beside a backlog of one', () => {
  let h: UiHarness;
  let admin: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    h = await startUiHarness();
    deals = await seedDeals(h);
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
  });

  it('says an event waits under a second, not "–", beside a backlog of one', async () => {
    await h.portal.updateDeal(deals.fresh, { TITLE: 'Waiting a moment' });
    await h.portal.whenIdle(); // delivered and stored, not processed
    const page = await getPage(h, '/ui', admin.cookie);
    expect(page.html).toContain('id="fig-backlog"><b>1</b>');
    expect(page.html).toContain('id="fig-oldest"><b>under 1 s</b>');
    await h.drain();
    const after = await getPage(h, '/ui', admin.cookie);
    expect(after.html).toContain('id="fig-backlog"><b>0</b>');
    expect(after.html).toContain('id="fig-oldest"><b>–</b>');
  });
});

describe('the subscriptions page with loss recovery on', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness({ env: { B24_OFFLINE_EVENTS: 'on' } });
  });
  afterAll(async () => {
    await h.close();
  });

  it("names ONOFFLINEEVENT among the app's own bindings, not as a row an admin left unticked", async () => {
    const admin = await openSession(h);
    // Control: the app bound it on the portal.
    expect(h.portal.bindings.map((b) => b.event)).toContain('ONOFFLINEEVENT');
    const page = await getPage(h, '/ui/subscriptions', admin.cookie);
    expect(page.html).not.toContain('data-event="ONOFFLINEEVENT"');
    expect(page.html).toMatch(/id="subs-app-own">[^<]*<span translate="no">[^<]*ONOFFLINEEVENT</);
  });
});
