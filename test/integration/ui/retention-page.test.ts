import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { addIntakeRefusals } from '../../../server/intake/refusals.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

/** The portal's own retention (db/README.md#retention) and the dashboard's storage line. */
describe('retention settings page', () => {
  let h: UiHarness;
  let admin: UiSession;
  beforeAll(async () => {
    h = await startUiHarness({ env: { RETENTION_DAYS: '30', RETENTION_FAILED_DAYS: '90' } });
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
  });

  const stored = async () =>
    (await h.t.deps
      .db('settings')
      .where({ scope: h.portal.memberId, key: 'retention' })
      .first('value')) as { value: string } | undefined;

  it('shows the configured figures in effect until the portal sets its own', async () => {
    const page = await getPage(h, '/ui/retention', admin.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toContain('data-days="30" data-failed-days="90"');
    expect(page.html).toContain('placeholder="30 (server default)"');
    expect(await stored()).toBeUndefined();
  });

  it('saves an admin’s figures per portal, and an empty field falls back to the default', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/retention', admin.cookie)).html);
    const res = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '7', failedDays: '60', confirm: '1' },
      admin.cookie,
    );
    expect(res.status).toBe(200);
    expect(res.html).toContain('id="saved"');
    expect(res.html).toContain('<p id="effective" data-days="7" data-failed-days="60"');
    expect(JSON.parse((await stored())!.value)).toEqual({ days: 7, failedDays: 60 });
    const dash = await getPage(h, '/ui', admin.cookie);
    expect(dash.html).toContain('7 d / 60 d');
    // The database holds every portal's events: its size is the operator's, not a portal's.
    expect(dash.html).not.toMatch(/db-size|Database size/);

    const back = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '', failedDays: '', confirm: '1' },
      admin.cookie,
    );
    expect(back.html).toContain('data-days="30" data-failed-days="90"');
    expect(back.html).not.toContain('id="failed-shorter"');
    expect(await stored()).toBeUndefined();
    // Back to the server's figures: no word of deleting what cannot be brought back.
    expect(back.html).toContain('Saved: this portal follows the server&#39;s figures.');
    expect(back.html).not.toContain('cannot be brought back');
  });

  it('says when failed events would be kept for less time than the others', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/retention', admin.cookie)).html);
    const res = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '7', failedDays: '3', confirm: '1' },
      admin.cookie,
    );
    expect(res.html).toContain('data-days="7" data-failed-days="3"');
    expect(res.html).toContain('id="failed-shorter"');
    expect(res.html).toContain('cannot be brought back');
    const back = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '', failedDays: '', confirm: '1' },
      admin.cookie,
    );
    expect(back.html).not.toContain('id="failed-shorter"');
  });

  it('writes the days in Russian on a Russian page', async () => {
    const ru = await openSession(h, { lang: 'ru' });
    const dash = await getPage(h, '/ui', ru.cookie);
    expect(dash.html).toContain('30 дн. / 90 дн.');
    const page = await getPage(h, '/ui/retention', ru.cookie);
    expect(page.html).toContain('30 дн. /');
    expect(page.html).not.toMatch(/\d d\b/);
  });

  it('refuses a figure that is not a whole number of days and keeps what was stored', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/retention', admin.cookie)).html);
    await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '10', failedDays: '', confirm: '1' },
      admin.cookie,
    );
    for (const bad of ['-1', '1.5', 'ten', '99999']) {
      const res = await postForm(
        h,
        '/ui/retention',
        { _csrf: csrf, days: bad, failedDays: '', confirm: '1' },
        admin.cookie,
      );
      expect([bad, res.status]).toEqual([bad, 400]);
      expect(res.html).toContain('id="retention-error"');
      expect(res.html).toContain(
        bad === '99999'
          ? '<span class="error" id="days-error">At most 30 days'
          : '<span class="error" id="days-error">Whole days only',
      );
      // What was typed stays in the field.
      expect(res.html).toContain(`value="${bad}"`);
    }
    expect(JSON.parse((await stored())!.value)).toEqual({ days: 10 });
  });

  it("keeps a portal's figures within the server's: less time, not longer nor for ever", async () => {
    const page = await getPage(h, '/ui/retention', admin.cookie);
    expect(page.html).toContain(
      'This server keeps events 30 days at most, failed events 90 days: the portal may keep them for less time, not longer.',
    );
    const csrf = csrfOf(page.html);
    await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '10', failedDays: '', confirm: '1' },
      admin.cookie,
    );
    for (const [days, failedDays] of [
      ['31', ''],
      ['0', ''],
      ['', '91'],
      ['', '0'],
    ] as const) {
      const res = await postForm(
        h,
        '/ui/retention',
        { _csrf: csrf, days, failedDays },
        admin.cookie,
      );
      expect([days, failedDays, res.status]).toEqual([days, failedDays, 400]);
      expect(res.html).toContain('id="retention-error"');
      // Said beside the field it is about (after its label, not in its name), which is marked
      // and takes the keyboard (data-focus: autofocus is refused in a cross-origin frame).
      const id = days ? 'days' : 'failed-days';
      expect(res.html).toContain(
        `aria-invalid="true" aria-describedby="${id}-error" data-focus></label>`,
      );
      expect(res.html).toContain(
        `</label><span class="error" id="${id}-error">At most ${days ? 30 : 90} days on this server`,
      );
    }
    expect(JSON.parse((await stored())!.value)).toEqual({ days: 10 });
    // At the ceiling itself, saved.
    const top = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '30', failedDays: '90', confirm: '1' },
      admin.cookie,
    );
    expect(top.status).toBe(200);
    // Figures stored before the ceiling (keep for ever, a year) run as the server's.
    await h.t.deps
      .db('settings')
      .where({ scope: h.portal.memberId, key: 'retention' })
      .update({ value: JSON.stringify({ days: 0, failedDays: 365 }) });
    const capped = await getPage(h, '/ui/retention', admin.cookie);
    expect(capped.html).toContain('<p id="effective" data-days="30" data-failed-days="90"');
    await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '10', failedDays: '', confirm: '1' },
      admin.cookie,
    );
  });

  it('asks before keeping less, which deletes for good, and saves once confirmed', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/retention', admin.cookie)).html);
    const before = (await stored())?.value;
    // 10 days now: 5 keeps less. Before, it was saved at once.
    const asked = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '5', failedDays: '' },
      admin.cookie,
    );
    expect(asked.status).toBe(200);
    expect(asked.html).toContain('id="confirm-shorter"');
    expect(asked.html).toContain('5 days for events');
    expect(asked.html).not.toContain('id="saved"');
    expect((await stored())?.value).toBe(before);
    const done = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '5', failedDays: '', confirm: '1' },
      admin.cookie,
    );
    expect(done.html).toContain('id="saved"');
    expect(JSON.parse((await stored())!.value)).toEqual({ days: 5 });
    // Keeping more (back to 10) deletes nothing: saved at once.
    const more = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrf, days: '10', failedDays: '' },
      admin.cookie,
    );
    expect(more.html).toContain('id="saved"');
    expect(JSON.parse((await stored())!.value)).toEqual({ days: 10 });
  });

  it('lets a non-admin read the page but not change it', async () => {
    const reader = await openSession(h, { userId: 2 });
    const page = await getPage(h, '/ui/retention', reader.cookie);
    expect(page.status).toBe(200);
    expect(page.html).not.toContain('id="save-retention"');
    const res = await postForm(
      h,
      '/ui/retention',
      { _csrf: csrfOf(page.html), days: '1' },
      reader.cookie,
    );
    expect(res.status).toBe(403);
    expect(JSON.parse((await stored())!.value)).toEqual({ days: 10 });
  });

  it('shows the oldest kept event on the dashboard', async () => {
    await h.portal.addDeal({ TITLE: 'Order', STAGE_ID: 'NEW' });
    await h.drain();
    const oldest = (await h.t.deps
      .db('events')
      .where('member_id', h.portal.memberId)
      .min({ t: 'received_at' })
      .first()) as { t: number };
    const dash = await getPage(h, '/ui', admin.cookie);
    expect(dash.html).toContain(`data-oldest="${Number(oldest.t)}"`);
  });

  it('tells the portal’s users of deliveries refused over its storage budget, for a day', async () => {
    const db = h.t.deps.db;
    expect((await getPage(h, '/ui', admin.cookie)).html).not.toContain('id="intake-refused"');
    // As the intake notes them: once a minute per portal, with the count since.
    const at = h.t.clock.now().getTime();
    await addIntakeRefusals(db, h.portal.memberId, 3, at);
    await addIntakeRefusals(db, h.portal.memberId, 2, at + 60_000);
    const dash = await getPage(h, '/ui', admin.cookie);
    expect(dash.html).toContain('id="intake-refused" data-count="5"');
    expect(dash.html).toContain('5 deliveries from Bitrix24 were refused in the last 24 hours');
    const ru = await getPage(h, '/ui', (await openSession(h, { lang: 'ru' })).cookie);
    expect(ru.html).toContain('отклонено доставок от Битрикс24: 5');
    // A day after the last one it is gone; a new one counts from 1 again.
    h.t.clock.advance(25 * 3600_000);
    const later = await openSession(h);
    const next = await getPage(h, '/ui', later.cookie);
    expect(next.html).toContain('id="storage"');
    expect(next.html).not.toContain('id="intake-refused"');
    await addIntakeRefusals(db, h.portal.memberId, 1, h.t.clock.now().getTime());
    expect((await getPage(h, '/ui', later.cookie)).html).toContain(
      'id="intake-refused" data-count="1"',
    );
  });
});
