import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { PROBE_REFUSALS_GUARDED as ENTRY_REFUSALS_GUARDED } from '../../../server/install/probe-guard.js';
import { frameRequest, startUiHarness, type UiHarness } from '../../helpers/ui-harness.js';
import { openSession } from './ui-client.js';

/**
 * A stranger who knows a portal's member_id and domain posts frame entries with made-up
 * AUTH_IDs. Each is checked with the portal (server/ui/frame-entry.ts), on the portal's REST
 * budget; once its AUTH_IDs are refused often, those checks take only the lower half of the
 * budget, so the portal's own work (its rules' REST calls) never waits behind them.
 */
describe('frame entries with made-up AUTH_IDs', () => {
  let h: UiHarness;
  beforeAll(async () => {
    h = await startUiHarness();
  });
  afterAll(async () => {
    await h.close();
  });

  // A stranger does not know the application token Bitrix24 posts into its users' frames.
  const forged = (i: number) => {
    const { url, init } = frameRequest(h, {
      authId: `made-up-token-${i}-${'x'.repeat(24)}`,
      applicationToken: null,
    });
    return fetch(url, init).then((r) => r.status);
  };
  const profileCalls = () => h.portal.calls.filter((c) => c.method === 'profile').length;

  it("never book the portal's REST budget ahead of its own work", async () => {
    const memberId = h.portal.memberId;
    const limiter = h.t.deps.bitrix.limiter;
    const before = profileCalls();
    // Refused one by one first: each was asked of the portal (the control that they cost).
    for (let i = 0; i < ENTRY_REFUSALS_GUARDED; i++) expect(await forged(i)).toBe(401);
    expect(profileCalls() - before).toBe(ENTRY_REFUSALS_GUARDED);

    // Then a flood, 120 at once.
    const statuses = await Promise.all(Array.from({ length: 120 }, (_, i) => forged(100 + i)));
    expect(statuses.every((s) => s === 401 || s === 503)).toBe(true);
    expect(statuses).toContain(503);
    // The portal's bucket stayed within its lower half, so a call of its own goes at once.
    const { burst } = limiter.limitsOf(memberId);
    expect(limiter.level(memberId)).toBeLessThanOrEqual(burst / 2);
    expect(await limiter.tryAcquire(memberId, 0)).toBe(0);
  });

  it('lets a real user in while the flood goes on', async () => {
    // The bucket is at its guarded half: made-up entries are turned away at once… (Which of
    // them is not fixed: the bucket drains on the wall clock, about 2 a second, and on a busy
    // machine these 40 take long enough to let one or two through to the portal.)
    const statuses = await Promise.all(Array.from({ length: 40 }, (_, i) => forged(300 + i)));
    expect(statuses.every((st) => st === 401 || st === 503)).toBe(true);
    expect(statuses.filter((st) => st === 503).length).toBeGreaterThanOrEqual(20);
    // …but a user whose frame carries the portal's application token is checked on the
    // portal's whole budget, as before the flood.
    const s = await openSession(h);
    expect(s.location).toMatch(/^\/ui\?s=/);
  });

  it('lets a user whose AUTH_ID the portal confirmed lately in again, without asking it', async () => {
    // Bitrix24 posts the same AUTH_ID into the user's frames for its hour; real captured
    // payloads carry no APPLICATION_TOKEN, so the token gives this user no lane of its own.
    h.t.clock.advance(60_000);
    const auth = h.portal.issueUserAuth(2);
    const user = { userId: 2, authId: auth.accessToken, applicationToken: null };
    expect((await openSession(h, user)).location).toMatch(/^\/ui\?s=/);
    for (let i = 0; i < ENTRY_REFUSALS_GUARDED; i++) expect(await forged(500 + i)).toBe(401);
    await Promise.all(Array.from({ length: 60 }, (_, i) => forged(600 + i)));
    expect(await forged(700)).toBe(503);
    const before = profileCalls();
    expect((await openSession(h, { ...user, placement: 'CRM_DEAL_DETAIL_TAB' })).location).toMatch(
      /^\/ui\?s=/,
    );
    expect(profileCalls()).toBe(before);
  });

  it('lets a real user in once the flood is over', async () => {
    h.t.clock.advance(60_000);
    const s = await openSession(h);
    expect(s.location).toMatch(/^\/ui\?s=/);
  });

  it('guards entries that carry the application token once those are refused often too', async () => {
    h.t.clock.advance(60_000);
    const memberId = h.portal.memberId;
    const limiter = h.t.deps.bitrix.limiter;
    // Someone with a frame of the portal (so its application token) floods in turn.
    const insider = (i: number) => {
      const { url, init } = frameRequest(h, { authId: `made-up-token-${i}-${'y'.repeat(24)}` });
      return fetch(url, init).then((r) => r.status);
    };
    for (let i = 0; i < ENTRY_REFUSALS_GUARDED; i++) expect(await insider(i)).toBe(401);
    // The flood takes nothing above the lower half of the bucket.
    const before = limiter.level(memberId);
    const statuses = await Promise.all(Array.from({ length: 120 }, (_, i) => insider(100 + i)));
    expect(statuses).toContain(503);
    const half = limiter.limitsOf(memberId).burst / 2;
    expect(limiter.level(memberId)).toBeLessThanOrEqual(Math.max(before, half));
  });
});
