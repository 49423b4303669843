import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawnServer, type SpawnedServer } from '../helpers/spawn-server.js';
import { spawnedAppEnv } from '../helpers/install-harness.js';
import { onPg } from '../helpers/pg.js';
import { startUiHarness, type UiHarness } from '../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui/ui-client.js';

/** server/ui/admin-check.ts ADMIN_RECHECK_MS: an admin's rights are asked again after 5 minutes. */
const ADMIN_RECHECK_MS = 5 * 60_000;

/**
 * Two instances of the app (two real server processes) behind a load balancer, on one
 * PostgreSQL database, re-checking an admin's rights after the user's token expired: each
 * renews the user's pair, and Bitrix24 spends a refresh token at its first use
 * (server/ui/user-renewal.ts). PostgreSQL pass only: on SQLite one process serves.
 */
(onPg() ? describe : describe.skip)('two instances re-checking one admin (PostgreSQL)', () => {
  let h: UiHarness;
  let a: SpawnedServer;
  let b: SpawnedServer;

  beforeAll(async () => {
    h = await startUiHarness();
    const env = {
      ...spawnedAppEnv(h, h.t.dir),
      ...h.t.dbEnv,
      APP_URL: h.appUrl,
      LOG_LEVEL: 'warn',
    };
    [a, b] = await Promise.all([spawnServer(env), spawnServer(env)]);
  }, 60_000);
  afterAll(async () => {
    await Promise.all([a?.stop(), b?.stop()]);
    await h?.close();
  });

  /** The harness as seen through one instance. */
  const via = (s: SpawnedServer): UiHarness => ({ ...h, appUrl: s.url });
  const sidOf = (s: UiSession) =>
    decodeURIComponent(s.cookie.split('=')[1] ?? '')
      .slice(2)
      .split('.')[0];
  /** The session's rights were last confirmed 6 minutes ago: the next request asks again. */
  const checkDue = async (s: UiSession) => {
    const db = h.t.deps.db;
    const row = (await db('sessions')
      .where({ sid: sidOf(s) })
      .first('sess')) as { sess: string };
    const sess = JSON.parse(row.sess) as { b24Admin: { checkedAt: number } };
    sess.b24Admin.checkedAt = Date.now() - ADMIN_RECHECK_MS - 60_000;
    await db('sessions')
      .where({ sid: sidOf(s) })
      .update({ sess: JSON.stringify(sess) });
  };
  /** The replay page is an admin's: 200 for an admin, 403 for a reader. */
  const replay = (s: SpawnedServer, session: UiSession) =>
    getPage(via(s), '/ui/replay', session.cookie).then((p) => p.status);
  const refreshesOf = (refreshToken: string) =>
    h.emu.oauthCalls.filter(
      (c) => c.grantType === 'refresh_token' && c.refreshToken === refreshToken,
    );

  /** An admin's session opened through instance A, with the pair Bitrix24 posted. */
  const adminSessionOnA = async () => {
    h.portal.setUserAdmin(1, true);
    const auth = h.portal.issueUserAuth(1);
    const s = await openSession(via(a), {
      userId: 1,
      authId: auth.accessToken,
      refreshId: auth.refreshToken,
    });
    return { auth, s };
  };

  it('keeps an admin whose two frames renew the same expired pair on two instances at once', async () => {
    h.portal.setUserAdmin(1, true);
    const auth = h.portal.issueUserAuth(1);
    const pair = { userId: 1, authId: auth.accessToken, refreshId: auth.refreshToken };
    // The app page reached instance A, a deal tab with the same pair instance B.
    const app = await openSession(via(a), pair);
    const tab = await openSession(via(b), { ...pair, placement: 'CRM_DEAL_DETAIL_TAB' });
    h.portal.expireAccessTokens();
    await checkDue(app);
    await checkDue(tab);
    const failedBefore = h.emu.oauthCalls.filter((c) => c.status !== 200).length;
    expect(await Promise.all([replay(a, app), replay(b, tab)])).toEqual([200, 200]);
    // One renewal for both: the spent refresh token was never sent twice.
    expect(refreshesOf(auth.refreshToken).map((c) => c.status)).toEqual([200]);
    expect(h.emu.oauthCalls.filter((c) => c.status !== 200)).toHaveLength(failedBefore);
    // Both stay admins, on either instance.
    expect(await Promise.all([replay(b, app), replay(a, tab)])).toEqual([200, 200]);
  });

  it('keeps an admin whose one session re-checks on both instances at once', async () => {
    const { auth, s } = await adminSessionOnA();
    h.portal.expireAccessTokens();
    await checkDue(s);
    expect(await Promise.all([replay(a, s), replay(b, s)])).toEqual([200, 200]);
    expect(refreshesOf(auth.refreshToken).map((c) => c.status)).toEqual([200]);
    expect(await Promise.all([replay(b, s), replay(a, s)])).toEqual([200, 200]);
  });

  it('makes a reader, on both instances, of an admin whose authorization was revoked', async () => {
    const { auth, s } = await adminSessionOnA();
    // Control: the user's refresh tokens no longer work (invalid_grant).
    h.portal.expireAccessTokens();
    h.portal.revokeRefreshTokens();
    await checkDue(s);
    expect(await Promise.all([replay(a, s), replay(b, s)])).toEqual([403, 403]);
    expect(refreshesOf(auth.refreshToken).map((c) => c.status)).toContain(400);
    // A reader from now on, reading still.
    expect(await Promise.all([replay(b, s), replay(a, s)])).toEqual([403, 403]);
    expect((await getPage(via(b), '/ui', s.cookie)).status).toBe(200);
  });
});
