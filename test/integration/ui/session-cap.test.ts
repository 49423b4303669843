import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SESSIONS_PER_USER } from '../../../server/ui/session.js';
import { startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { getPage, openSession, type UiSession } from './ui-client.js';

/**
 * Each frame entry starts a session of two hours, and an AUTH_ID the portal confirmed is let
 * in again for five minutes without asking it: one user posting it in a loop stored a row per
 * post (3,000 in 33 s, a security review) in the database all portals share. A user keeps
 * SESSIONS_PER_USER live sessions; the oldest end.
 */
describe('sessions per user', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  const rows = async () =>
    Number(((await h.t.deps.db('sessions').count({ n: '*' }))[0] as { n: unknown }).n);

  it('keeps a user’s newest sessions only, with one AUTH_ID posted again and again', async () => {
    const auth = h.portal.issueUserAuth(2);
    const before = await rows();
    const other = await openSession(h, { userId: 1 }); // another user's, kept
    const sessions: UiSession[] = [];
    for (let i = 0; i < SESSIONS_PER_USER + 15; i++) {
      h.t.clock.advance(1000); // the one confirmed a second before is let in without asking
      sessions.push(
        await openSession(h, { userId: 2, authId: auth.accessToken, refreshId: auth.refreshToken }),
      );
    }
    // Control: every post was let in (a session each).
    expect(new Set(sessions.map((s) => s.cookie)).size).toBe(SESSIONS_PER_USER + 15);
    expect((await rows()) - before).toBe(SESSIONS_PER_USER + 1);
    // The newest work; the oldest (the nearest expiry: the least recently used) ended and
    // ask to reopen the app; the other user's stays.
    expect((await getPage(h, '/ui', sessions.at(-1)!.cookie)).status).toBe(200);
    expect((await getPage(h, '/ui', sessions[0]!.cookie)).status).toBe(401);
    expect((await getPage(h, '/ui', other.cookie)).status).toBe(200);
  }, 60_000);

  it('never ends the session it is starting, with every session stamped in one millisecond', async () => {
    const auth = h.portal.issueUserAuth(3);
    for (let i = 0; i < SESSIONS_PER_USER + 10; i++) {
      // The clock stands still: all expiries tie, ranked by their random ids.
      const s = await openSession(h, {
        userId: 3,
        authId: auth.accessToken,
        refreshId: auth.refreshToken,
      });
      expect((await getPage(h, '/ui', s.cookie)).status).toBe(200);
    }
    const owned = await h.t.deps.db('sessions').where({ owner: `${h.portal.memberId}:3` });
    expect(owned).toHaveLength(SESSIONS_PER_USER);
  }, 60_000);
});
