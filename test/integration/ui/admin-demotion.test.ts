import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import type { PortalRow } from '../../../db/stores/portals.js';
import { base, csrfOf, getPage, openSession, postForm } from './ui-client.js';

/**
 * A portal owner takes a user's admin rights away in Bitrix24: the app's session of that
 * user stops acting as an admin within minutes (server/ui/admin-check.ts), not at the end
 * of its rolling 2-hour life, and page views in between cost no REST call.
 */
/** server/ui/admin-check.ts ADMIN_RECHECK_MS: "within minutes". */
const ADMIN_RECHECK_MS = 5 * 60_000;

describe("an admin's rights taken away in Bitrix24", () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const adminChecks = () => h.portal.calls.filter((c) => c.method === 'user.admin').length;
  const saveAlerts = async (cookie: string) => {
    const csrf = csrfOf((await getPage(h, '/ui/alerts', cookie)).html);
    return (await postForm(h, '/ui/alerts', { telegram: '12345', _csrf: csrf }, cookie)).status;
  };

  it('are asked again after a few minutes, and the session goes on as a reader', async () => {
    const s = await openSession(h, { userId: 1 });
    const before = adminChecks();
    expect(await saveAlerts(s.cookie)).toBe(200);
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(200);
    // Page views within the interval cost nothing.
    expect(adminChecks()).toBe(before);

    h.portal.setUserAdmin(1, false);
    h.t.clock.advance(ADMIN_RECHECK_MS);
    expect(await saveAlerts(s.cookie)).toBe(403);
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(403);
    expect(adminChecks()).toBe(before + 1);
    // The reader's session stays: reading goes on, asked once per interval (a promotion).
    expect((await getPage(h, '/ui', s.cookie)).status).toBe(200);
    h.t.clock.advance(ADMIN_RECHECK_MS);
    expect((await getPage(h, '/ui', s.cookie)).status).toBe(200);
    expect((await getPage(h, '/ui', s.cookie)).status).toBe(200);
    expect(adminChecks()).toBe(before + 2);
  });

  it('come within the interval to a user made an admin in Bitrix24, without reopening', async () => {
    h.portal.setUserAdmin(1, false);
    const s = await openSession(h, { userId: 1 });
    expect(await saveAlerts(s.cookie)).toBe(403);
    h.portal.setUserAdmin(1, true);
    h.t.clock.advance(ADMIN_RECHECK_MS);
    expect(await saveAlerts(s.cookie)).toBe(200);
  });

  it('stay with an admin the portal still confirms, asked once per interval', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    const before = adminChecks();
    h.t.clock.advance(ADMIN_RECHECK_MS);
    expect(await saveAlerts(s.cookie)).toBe(200);
    expect(await saveAlerts(s.cookie)).toBe(200);
    expect(adminChecks()).toBe(before + 1);
  });

  it('end within the interval even when the app is opened again with the same AUTH_ID', async () => {
    h.portal.setUserAdmin(1, true);
    const auth = h.portal.issueUserAuth(1);
    await openSession(h, { userId: 1, authId: auth.accessToken });
    h.portal.setUserAdmin(1, false);
    h.t.clock.advance(ADMIN_RECHECK_MS - 60_000);
    // Let in on the portal's answer of 4 minutes ago (no new call)…
    const again = await openSession(h, { userId: 1, authId: auth.accessToken });
    expect(await saveAlerts(again.cookie)).toBe(200);
    // …which is due again 5 minutes after the portal gave it, not after this entry.
    h.t.clock.advance(60_000);
    expect(await saveAlerts(again.cookie)).toBe(403);
    h.portal.setUserAdmin(1, true);
  });

  it('tell a user who never was an admin that the page is for admins, not that rights went', async () => {
    const manager = await openSession(h, { userId: 2 });
    const page = await getPage(h, '/ui/replay', manager.cookie);
    expect(page.status).toBe(403);
    expect(page.html).toContain(
      'Only the portal&#39;s administrators can open this page or do this.',
    );
    expect(page.html).not.toContain('does not confirm that you are an administrator');
    const ru = await openSession(h, { userId: 2, lang: 'ru' });
    expect((await getPage(h, '/ui/rules/export', ru.cookie)).html).toContain(
      'Открыть эту страницу или сделать это могут только администраторы портала.',
    );
  });

  it('refuse a save with what happened and what to do, giving back what was typed', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    const csrf = csrfOf((await getPage(h, '/ui/rules', s.cookie)).html);
    h.portal.setUserAdmin(1, false);
    h.t.clock.advance(ADMIN_RECHECK_MS);
    // The JSON editor's form, typed by hand and sent after the rights were withdrawn.
    const typed = '{"rules": [{"name": "Typed <by> hand", "on": ["ONCRMDEALADD"]}]}';
    const page = await postForm(h, '/ui/rules', { map: typed, _csrf: csrf }, s.cookie);
    expect(page.status).toBe(403);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    expect(page.html).toContain('does not confirm that you are an administrator');
    expect(page.html).toContain('Reopen the application from Bitrix24');
    expect(page.html).toContain('Typed &lt;by&gt; hand');
    expect(page.html).not.toContain('<code translate="no">_csrf</code>');
    // A post without the session's CSRF token (a stranger's page) gets the words, not its text.
    const foreign = await postForm(h, '/ui/rules', { map: 'Injected words' }, s.cookie);
    expect(foreign.status).toBe(403);
    expect(foreign.html).toContain('Reopen the application from Bitrix24');
    expect(foreign.html).not.toContain('Injected words');
    // The rule builder saves with fetch: a JSON refusal in the same words, its page kept.
    const res = await fetch(`${base(h)}/ui/rules/builder/save`, {
      method: 'POST',
      headers: {
        'content-type': 'application/x-www-form-urlencoded',
        accept: 'application/json',
        cookie: s.cookie,
      },
      body: new URLSearchParams({ rule: '{}', _csrf: csrf }).toString(),
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: string }).error).toContain(
      'Reopen the application from Bitrix24',
    );
    h.portal.setUserAdmin(1, true);
  });

  it('end, saying to reopen the app, when the kept token cannot be opened (another key)', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    const csrf = csrfOf((await getPage(h, '/ui/retention', s.cookie)).html);
    const sid = decodeURIComponent(s.cookie.split('=')[1] ?? '')
      .slice(2)
      .split('.')[0];
    const row = (await h.t.deps.db('sessions').where({ sid }).first('sess')) as { sess: string };
    const sess = JSON.parse(row.sess) as { b24Admin: { token: string } };
    sess.b24Admin.token = 'sealed-with-a-key-this-instance-does-not-have';
    await h.t.deps
      .db('sessions')
      .where({ sid })
      .update({ sess: JSON.stringify(sess) });
    h.t.clock.advance(ADMIN_RECHECK_MS);
    const refused = await postForm(h, '/ui/retention', { days: '45', _csrf: csrf }, s.cookie);
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('Reopen the application from Bitrix24');
  });

  it('are not taken on trust while the portal cannot be asked', async () => {
    const s = await openSession(h, { userId: 1 });
    const csrf = csrfOf((await getPage(h, '/ui/retention', s.cookie)).html);
    h.t.clock.advance(ADMIN_RECHECK_MS);
    const busy = {
      status: 503,
      error: 'QUERY_LIMIT_EXCEEDED',
      description: 'Too many requests',
    };
    h.portal.failNext('user.admin', busy);
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(403);
    // A save meanwhile is refused saying to send it again, with what was typed.
    h.portal.failNext('user.admin', busy);
    const refused = await postForm(h, '/ui/retention', { days: '45', _csrf: csrf }, s.cookie);
    expect(refused.status).toBe(403);
    expect(refused.html).toContain('could not confirm your administrator rights just now');
    expect(refused.html).toContain('>45</textarea>');
    // Asked again on the next request, which the portal answers.
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(200);
  });
});

/**
 * AUTH_ID lives an hour (b24restdocs settings/oauth/auto-renewal.md): an admin who keeps the
 * app open longer stays an admin, the session renewing the user's pair with the REFRESH_ID
 * posted beside it; only a definite answer ends the rights.
 */
describe("an admin's session past its token's hour", () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness({ sharedClock: true });
  });
  afterAll(async () => {
    await h.close();
  });

  const HOUR = 3600_000;
  const saveAlerts = async (cookie: string) => {
    const csrf = csrfOf((await getPage(h, '/ui/alerts', cookie)).html);
    return (await postForm(h, '/ui/alerts', { telegram: '12345', _csrf: csrf }, cookie)).status;
  };
  const refreshesOf = (refreshToken: string) =>
    h.emu.oauthCalls.filter(
      (c) => c.grantType === 'refresh_token' && c.refreshToken === refreshToken,
    );

  it('still saves: the expired AUTH_ID is renewed, and the new pair is kept', async () => {
    h.portal.setUserAdmin(1, true);
    const auth = h.portal.issueUserAuth(1);
    const s = await openSession(h, {
      userId: 1,
      authId: auth.accessToken,
      refreshId: auth.refreshToken,
    });
    h.t.clock.advance(HOUR + 60_000);
    expect(await saveAlerts(s.cookie)).toBe(200);
    const first = refreshesOf(auth.refreshToken);
    expect(first.map((c) => c.status)).toEqual([200]);
    // Another hour: the rotated refresh token is used (the first is spent), still an admin.
    h.t.clock.advance(HOUR + 60_000);
    expect(await saveAlerts(s.cookie)).toBe(200);
    expect(h.emu.oauthCalls.filter((c) => c.status !== 200)).toEqual([]);
  });

  it('still saves in a second frame opened with the same pair, renewed minutes apart', async () => {
    // Bitrix24 posts the same AUTH_ID and REFRESH_ID into every frame of a user for the
    // token's hour: the app page and a deal tab are two sessions holding one pair. The first
    // to renew it spends the refresh token; the other, renewing later, must not be demoted.
    h.portal.setUserAdmin(1, true);
    const auth = h.portal.issueUserAuth(1);
    const pair = { userId: 1, authId: auth.accessToken, refreshId: auth.refreshToken };
    const app = await openSession(h, pair);
    const tab = await openSession(h, pair);
    h.t.clock.advance(HOUR + 60_000);
    expect(await saveAlerts(app.cookie)).toBe(200);
    h.t.clock.advance(3 * 60_000);
    expect(await saveAlerts(tab.cookie)).toBe(200);
    // The spent refresh token was never sent twice.
    expect(refreshesOf(auth.refreshToken)).toHaveLength(1);
    // Both go on past the next hour, each renewal made once.
    h.t.clock.advance(HOUR + 60_000);
    expect(await saveAlerts(tab.cookie)).toBe(200);
    h.t.clock.advance(4 * 60_000);
    expect(await saveAlerts(app.cookie)).toBe(200);
    expect(h.emu.oauthCalls.filter((c) => c.status !== 200)).toEqual([]);
  });

  it("never spends the portal's refresh token, once an admin's frame pair became the portal's", async () => {
    // A portal in needs_reauth resumes when an admin opens the app: the frame's pair becomes
    // the portal's own. Were the session to renew it too, whichever came second would meet
    // invalid_grant; for the portal that is needs_reauth again, its events paused.
    h.portal.setUserAdmin(1, true);
    const db = h.t.deps.db;
    const memberId = h.portal.memberId;
    await db('portals').where({ member_id: memberId }).update({ status: 'needs_reauth' });
    h.t.deps.portals.invalidate(memberId);
    const auth = h.portal.issueUserAuth(1);
    const pair = { userId: 1, authId: auth.accessToken, refreshId: auth.refreshToken };
    const s = await openSession(h, pair);
    // A deal tab opened meanwhile with the same pair (let in on the entry cache).
    const tab = await openSession(h, pair);
    const row = async () =>
      (await db('portals').where({ member_id: memberId }).first()) as PortalRow;
    expect((await row()).status).toBe('installed');
    h.t.clock.advance(HOUR + 60_000);
    await saveAlerts(s.cookie);
    await saveAlerts(tab.cookie);
    // The portal's own REST calls renew its pair and go on.
    await expect(h.t.deps.bitrix.call(await row(), 'crm.deal.list', {})).resolves.toBeDefined();
    expect((await row()).status).toBe('installed');
    expect(refreshesOf(auth.refreshToken).map((c) => c.status)).toEqual([200]);
  });

  it('goes on as a reader once the OAuth server refuses the refresh (invalid_grant)', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    h.t.clock.advance(HOUR + 60_000);
    expect(await saveAlerts(s.cookie)).toBe(200);
    // The user's authorization is over (reused or revoked refresh token): a reader.
    h.t.clock.advance(HOUR + 60_000);
    h.emu.failNextToken({ status: 400, error: 'invalid_grant', description: 'Invalid grant' });
    expect(await saveAlerts(s.cookie)).toBe(403);
    expect(h.emu.oauthCalls.at(-1)).toMatchObject({ grantType: 'refresh_token', status: 400 });
    expect((await getPage(h, '/ui', s.cookie)).status).toBe(200);
  });

  it('is a reader for one request only while the OAuth server does not answer', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    h.t.clock.advance(HOUR + 60_000);
    h.emu.failNextToken({ status: 503, error: 'temporarily_unavailable' });
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(403);
    expect(await saveAlerts(s.cookie)).toBe(200);
  });

  it('asks again a minute later, not on every page, when the OAuth server refuses the app', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    h.t.clock.advance(HOUR + 60_000);
    h.emu.failNextToken({ status: 400, error: 'invalid_client' });
    const calls = () => h.emu.oauthCalls.length;
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(403);
    const after = calls();
    expect((await getPage(h, '/ui/replay', s.cookie)).status).toBe(403);
    expect(calls()).toBe(after);
    // Not a definite answer: the session is still an admin's, asked again after a minute.
    h.t.clock.advance(60_000);
    expect(await saveAlerts(s.cookie)).toBe(200);
  });

  it('ends within 5 minutes for an admin demoted after the hour', async () => {
    h.portal.setUserAdmin(1, true);
    const s = await openSession(h, { userId: 1 });
    h.t.clock.advance(HOUR + 60_000);
    expect(await saveAlerts(s.cookie)).toBe(200);
    h.portal.setUserAdmin(1, false);
    h.t.clock.advance(ADMIN_RECHECK_MS);
    expect(await saveAlerts(s.cookie)).toBe(403);
    h.portal.setUserAdmin(1, true);
  });
});
