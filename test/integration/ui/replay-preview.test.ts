import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { REPLAY_PREVIEW_CAP } from '../../../server/ui/pages/replay-page.js';
import { findPortalByMemberId } from '../../../db/stores/portals.js';
import { generateEvents } from '../../helpers/bulk-events.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { csrfOf, getPage, openSession, postForm, type UiSession } from './ui-client.js';

describe('the replay preview of a long range', () => {
  let h: UiHarness;
  let admin: UiSession;
  beforeAll(async () => {
    h = await startUiHarness();
    admin = await openSession(h);
    const portal = (await findPortalByMemberId(h.t.deps.db, h.portal.memberId))!;
    await generateEvents(h.t.deps.db, [
      {
        portalId: portal.id,
        memberId: portal.member_id,
        status: 'processed',
        receivedAt: h.t.clock.now().getTime() - 60_000,
        count: REPLAY_PREVIEW_CAP + 1,
      },
    ]);
  });
  afterAll(async () => {
    await h.close();
  });

  /**
   * A replay from the page took any number of events, and its progress page counted them all
   * every 2 s in one synchronous query: at 500,000 events 116–300 ms of the main thread a
   * poll, and writing their ids held the main connection for 1.2 s.
   */
  it('says "more than" the cap instead of counting every event, and sends a longer range to the CLI', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/replay', admin.cookie)).html);
    const range = { from: '2026-11-27', to: '2026-11-27', _csrf: csrf };
    const preview = await postForm(h, '/ui/replay/preview', range, admin.cookie);
    expect(preview.status).toBe(200);
    expect(preview.html).toContain(
      `<b id="replay-count" data-capped="true">more than ${REPLAY_PREVIEW_CAP}</b>`,
    );
    expect(preview.html).not.toContain('id="confirm"');
    expect(preview.html).toContain('id="replay-too-many"');
    expect(preview.html).toContain('npx b24hooks replay');
    // Nor is it run by a form posted straight to the run: nothing is queued.
    const jobs = async () => Number((await h.t.deps.db('jobs').count({ n: '*' }))[0]!.n);
    const before = await jobs();
    const run = await postForm(h, '/ui/replay/run', range, admin.cookie);
    expect(run.status).toBe(400);
    expect(run.html).toContain('at most 10,000 events');
    expect(await jobs()).toBe(before);
    expect(Number((await h.t.deps.db('replay_runs').count({ n: '*' }))[0]!.n)).toBe(0);
    // Control: a filter with fewer events than the cap is counted exactly.
    const failed = await postForm(
      h,
      '/ui/replay/preview',
      { ...range, status: 'failed' },
      admin.cookie,
    );
    expect(failed.html).toMatch(/id="replay-count">0</);
    expect(failed.html).not.toContain('id="replay-typo"');
  });

  it('says a range that ends before it starts, instead of counting 0 events', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/replay', admin.cookie)).html);
    const swapped = await postForm(
      h,
      '/ui/replay/preview',
      { from: '2026-11-28', to: '2026-11-26', _csrf: csrf },
      admin.cookie,
    );
    expect(swapped.status).toBe(400);
    expect(swapped.html).toContain('id="replay-error"');
    expect(swapped.html).toContain('&#34;From&#34; is after &#34;To&#34;: no event can match.');
    expect(swapped.html).not.toContain('id="replay-count"');
    // Nor may it be run by a form posted straight to the run.
    const run = await postForm(
      h,
      '/ui/replay/run',
      { from: '2026-11-28', to: '2026-11-26', _csrf: csrf },
      admin.cookie,
    );
    expect(run.status).toBe(400);
  });

  it('refuses an event it cannot read, instead of replaying every event of the range', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/replay', admin.cookie)).html);
    for (const path of ['/ui/replay/preview', '/ui/replay/run']) {
      const res = await postForm(
        h,
        path,
        { from: '2026-11-27', to: '2026-11-27', event: 'A deal was won', _csrf: csrf },
        admin.cookie,
      );
      expect([path, res.status]).toEqual([path, 400]);
      expect(res.html).toContain('The event could not be read');
    }
    // What the log says an event means is read as its code.
    const meant = await postForm(
      h,
      '/ui/replay/preview',
      { from: '2026-11-27', to: '2026-11-27', event: 'A deal was changed', _csrf: csrf },
      admin.cookie,
    );
    expect(meant.status).toBe(200);
    expect(meant.html).toContain('ONCRMDEALUPDATE');
  });

  it('names the event a mistyped name was meant to be, and goes back with the filter and the tick', async () => {
    const csrf = csrfOf((await getPage(h, '/ui/replay', admin.cookie)).html);
    const typed = {
      from: '2026-11-27',
      to: '2026-11-27',
      event: 'ONCRMDEALUPDTE',
      rerunSucceeded: '1',
      _csrf: csrf,
    };
    const preview = await postForm(h, '/ui/replay/preview', typed, admin.cookie);
    expect(preview.html).toMatch(/id="replay-count">0</);
    expect(preview.html).toContain(
      'No event has that name; did you mean <b translate="no">ONCRMDEALUPDATE</b>?',
    );
    const back = /<a href="([^"]+)" id="replay-back">/
      .exec(preview.html)![1]!
      .replaceAll('&amp;', '&');
    const form = await getPage(h, back, admin.cookie);
    expect(form.html).toMatch(/name="event"[^>]*value="ONCRMDEALUPDATE"/);
    expect(form.html).toMatch(/id="rerun" checked/);
  });
});
