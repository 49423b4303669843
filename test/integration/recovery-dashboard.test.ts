import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { formatBitrixDate } from '../emulator/crm-store.js';
import { seedDeals, startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui/ui-client.js';

/** Loss recovery on the dashboard: the figures, the last gap, an admin's sweep. */
describe('loss recovery on the dashboard', () => {
  let h: UiHarness;
  let admin: UiSession;
  let deals: Awaited<ReturnType<typeof seedDeals>>;
  beforeAll(async () => {
    h = await startUiHarness();
    h.t.clock.set(Date.now());
    deals = await seedDeals(h);
    admin = await openSession(h);
  });
  afterAll(async () => {
    await h.close();
  });

  const db = () => h.t.deps.db;

  async function sweepDone(): Promise<Record<string, unknown>> {
    for (let i = 0; i < 400; i++) {
      const row = await db()('recovery_gaps').orderBy('id', 'desc').first();
      if (row && row.status !== 'running') return row as Record<string, unknown>;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error('the sweep did not finish');
  }

  it('lets an admin sweep the portal (CSRF-protected) and shows the gap and its coverage', async () => {
    const before = await getPage(h, '/ui', admin.cookie);
    expect(before.html).toContain('id="no-gap"');
    expect(before.html).toContain('id="fig-recovered"><b>0</b>');
    expect(before.html).toContain('id="sweep-form"');

    // A change whose delivery never arrived: the new deal went to WON on the portal only.
    const fresh = h.portal.deals.get(deals.fresh) as Record<string, unknown>;
    fresh.STAGE_ID = 'WON';
    fresh.DATE_MODIFY = formatBitrixDate(Date.now() + 60_000);

    const noCsrf = await postForm(h, '/ui/recovery/sweep', { hours: '24' }, admin.cookie);
    expect(noCsrf.status).toBe(403);
    const csrf = csrfOf(before.html);
    const badHours = await postForm(
      h,
      '/ui/recovery/sweep',
      { hours: '5', _csrf: csrf },
      admin.cookie,
    );
    expect(badHours.status).toBe(400);
    expect(badHours.html).toContain('id="sweep-error"');

    const started = await postForm(
      h,
      '/ui/recovery/sweep',
      { hours: '24', _csrf: csrf },
      admin.cookie,
    );
    expect(started.status).toBe(200);
    expect(started.html).toContain('id="sweep-started"');
    const gap = await sweepDone();
    expect(gap).toMatchObject({ trigger: 'ui', status: 'done', member_id: h.portal.memberId });
    expect(Number(gap.listed)).toBe(3);
    expect(Number(gap.enqueued)).toBe(1);
    expect(gap.requested_by).toBe('ui:user 1');
    await h.drain();
    expect(h.sink.requests.filter((r) => r.url.startsWith('/invoices'))).toHaveLength(2);

    const after = await getPage(h, '/ui', admin.cookie);
    expect(after.html).toContain('id="fig-recovered"><b>1</b>');
    expect(after.html).toContain('<span id="recovered-sweep">1</span>');
    expect(after.html).toMatch(
      /id="last-gap" data-status="done" data-listed="3" data-enqueued="1"/,
    );
    expect(after.html).toContain('Coverage: <span class="gap-listed">3</span> entities checked');
    // Nothing of the sweep's other portals, nor how many it swept: that counts the installs.
    expect(after.html).not.toMatch(/portals swept|\d+ \/ \d+ portals/);
    expect(after.html).toContain('requested here');
    const log = await getPage(h, '/ui/events', admin.cookie);
    expect(log.html.match(/data-source="sweep"/g)).toHaveLength(1);
  });

  it('does not offer or accept a sweep from a user who is not an admin', async () => {
    const reader = await openSession(h, { userId: 2 });
    const page = await getPage(h, '/ui', reader.cookie);
    expect(page.status).toBe(200);
    expect(page.html).toContain('id="recovery"');
    expect(page.html).not.toContain('id="sweep-form"');
    const res = await postForm(
      h,
      '/ui/recovery/sweep',
      { hours: '24', _csrf: csrfOf(page.html) },
      reader.cookie,
    );
    expect(res.status).toBe(403);
  });

  it('shows loss recovery in Russian', async () => {
    const ru = await openSession(h, { lang: 'ru' });
    const page = await getPage(h, '/ui', ru.cookie);
    expect(page.html).toContain('Восстановление потерь');
    expect(page.html).toContain('Последний перерыв');
    expect(page.html).toContain('Найти потерянные события');
  });
});

/**
 * A sweep an admin starts from the dashboard is the server's own (services.recovery): the
 * app's shutdown waits for it instead of closing the database under it.
 */
describe('a dashboard sweep at shutdown', () => {
  it('is finished or interrupted before the services have stopped', async () => {
    const h = await startUiHarness();
    try {
      h.t.clock.set(Date.now());
      await seedDeals(h);
      const admin = await openSession(h);
      const page = await getPage(h, '/ui', admin.cookie);
      // Bitrix24 answers the sweep's first list call with a rate-limit error: it waits 1 s.
      h.portal.failNext('crm.deal.list', { status: 503, error: 'QUERY_LIMIT_EXCEEDED' });
      const started = await postForm(
        h,
        '/ui/recovery/sweep',
        { hours: '24', _csrf: csrfOf(page.html) },
        admin.cookie,
      );
      expect(started.html).toContain('id="sweep-started"');
      const running = await h.t.deps.db('recovery_gaps').orderBy('id', 'desc').first();
      expect(running).toMatchObject({ trigger: 'ui', status: 'running' });
      // Stop while the sweep waits out the rate limit, not before its first page: a stop
      // that came first would interrupt it with no call made, and prove nothing.
      const listCalls = () => h.portal.calls.filter((c) => c.method === 'crm.deal.list').length;
      for (let i = 0; i < 200 && listCalls() === 0; i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(listCalls()).toBe(1);

      await h.services.recovery.stop();
      const gap = await h.t.deps.db('recovery_gaps').where({ id: running.id }).first();
      expect(gap.status).not.toBe('running');
      expect(listCalls()).toBeGreaterThan(1);
    } finally {
      await h.close();
    }
  });
});
