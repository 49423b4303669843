import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, updatePortal, type PortalRow } from '../../db/stores/portals.js';
import { PausedError } from '../../server/lib/retry-errors.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { eventBody } from '../helpers/event-builder.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';
import { runLifecycleJobs } from '../helpers/lifecycle-jobs.js';
import { storedText } from '../helpers/stored-text.js';

describe('portal tokens and isolation', () => {
  let h: InstallHarness;
  let portal: EmulatedPortal;
  const row = async (p: EmulatedPortal = portal) =>
    (await findPortalByMemberId(h.t.deps.db, p.memberId)) as PortalRow;
  const refreshes = () => h.emu.oauthCalls.filter((c) => c.grantType === 'refresh_token');
  const post = (body: string) =>
    fetch(`${h.appUrl}/b24/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });

  /** Every token the emulator handed out or saw: in calls, refreshes and deliveries. */
  function issuedTokens(p: EmulatedPortal): string[] {
    const seen = new Set<string>([p.applicationToken]);
    for (const c of p.calls) if (c.auth) seen.add(c.auth);
    for (const c of h.emu.oauthCalls) if (c.refreshToken) seen.add(c.refreshToken);
    for (const d of p.deliveries) {
      for (const m of d.body.matchAll(
        /(?:access_token|refresh_token|application_token)%5D=([^&]+)/g,
      )) {
        seen.add(decodeURIComponent(m[1]!));
      }
    }
    return [...seen].filter((t) => t.length >= 16);
  }

  beforeEach(async () => {
    h = await startInstallHarness();
    portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
  });
  afterEach(async () => {
    await h.close();
  });

  it('makes exactly one refresh for 20 concurrent calls on an expired token', async () => {
    const stored = await row();
    portal.expireAccessTokens();
    const before = refreshes().length;
    const answers = await Promise.all(
      Array.from({ length: 20 }, () => h.t.deps.bitrix.call<{ ID: string }>(stored, 'profile')),
    );
    expect(answers.every((a) => a.ID === '1')).toBe(true);
    expect(refreshes().length - before).toBe(1);
    // The rotated pair is the stored one (encrypted), and it is what the retries used.
    const fresh = await row();
    expect(fresh.access_token_enc).not.toBe(stored.access_token_enc);
    const latest = portal.calls[portal.calls.length - 1]!;
    expect(latest.auth).toBe(h.t.deps.box.decrypt(fresh.access_token_enc!));
  });

  it('marks the portal needs_reauth on invalid_grant and pauses its calls', async () => {
    portal.expireAccessTokens();
    portal.revokeRefreshTokens();
    await expect(h.t.deps.bitrix.call(await row(), 'profile')).rejects.toBeInstanceOf(PausedError);
    expect((await row()).status).toBe('needs_reauth');
    // Later calls pause at once, without another refresh attempt.
    const n = refreshes().length;
    await expect(h.t.deps.bitrix.call(await row(), 'profile')).rejects.toBeInstanceOf(PausedError);
    expect(refreshes().length).toBe(n);
    // A reinstall brings it back.
    expect((await portal.install()).status).toBe(200);
    expect((await row()).status).toBe('installed');
    expect(await h.t.deps.bitrix.call(await row(), 'profile')).toMatchObject({ ID: '1' });
  });

  it('never writes a token in clear to the database file or the logs', async () => {
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    portal.expireAccessTokens();
    await h.t.deps.bitrix.call(await row(), 'profile');
    await portal.addDeal({ TITLE: 'secret check' });
    await h.services.intake.drain();
    const tokens = issuedTokens(portal);
    expect(tokens.length).toBeGreaterThan(5);
    const raw = await storedText(h.t);
    const logs = h.t.logs.text();
    for (const t of tokens) {
      expect(raw.includes(t)).toBe(false);
      expect(logs.includes(t)).toBe(false);
    }
  });

  it('does not accept an event of portal B for portal A, nor B’s token for A', async () => {
    const other = await h.addPortal();
    expect((await other.install()).status).toBe(200);
    // A's member_id with B's application token.
    const res = await post(
      eventBody({
        portal: {
          memberId: portal.memberId,
          domain: portal.domain,
          applicationToken: other.applicationToken,
        },
      }),
    );
    expect(res.status).toBe(401);
    // REST calls for A go to A only, with A's tokens.
    const bCalls = other.calls.length;
    await h.t.deps.bitrix.call(await row(portal), 'profile');
    expect(other.calls.length).toBe(bCalls);
    const aTokens = new Set(portal.calls.map((c) => c.auth));
    expect(other.calls.some((c) => c.auth !== null && aTokens.has(c.auth))).toBe(false);
  });

  /** As if the installer frame had not carried APPLICATION_TOKEN (older portals). */
  async function forgetApplicationToken() {
    await updatePortal(h.t.deps.db, (await row()).id, {
      application_token_digest: null,
      updated_at: 1,
    });
    h.t.deps.portals.invalidate(portal.memberId);
  }

  const installPost = (applicationToken: string, accessToken: string) =>
    post(
      eventBody({
        portal: { memberId: portal.memberId, domain: portal.domain, applicationToken },
        event: 'ONAPPINSTALL',
        data: { VERSION: '9', ACTIVE: 'Y', INSTALLED: 'Y', LANGUAGE_ID: 'en' },
        accessToken,
      }),
    );

  it('answers 401 to an ONAPPINSTALL for A with another application token once A’s is known', async () => {
    const before = (await row()).application_token_digest;
    const res = await installPost('e'.repeat(32), portal.issueUserAuth(1).accessToken);
    expect(res.status).toBe(401);
    expect(await h.t.deps.db('jobs').where({ type: 'lifecycle' })).toHaveLength(0);
    expect((await row()).application_token_digest).toBe(before);
  });

  it('rejects an ONAPPINSTALL for A that carries B’s admin token, keeping A’s application token unset', async () => {
    const other = await h.addPortal();
    expect((await other.install()).status).toBe(200);
    await forgetApplicationToken();
    const res = await installPost('e'.repeat(32), other.issueUserAuth(1).accessToken);
    expect(res.status).toBe(200);
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const [ev] = await h.t.deps.db('events').where({ event: 'ONAPPINSTALL' });
    expect(ev).toMatchObject({ status: 'rejected', auth_enc: null });
    expect((await row()).application_token_digest).toBeNull();
  });

  it('rejects an ONAPPINSTALL proven only by a non-admin’s token', async () => {
    await forgetApplicationToken();
    const res = await installPost('d'.repeat(32), portal.issueUserAuth(2).accessToken);
    expect(res.status).toBe(200);
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const [ev] = await h.t.deps.db('events').where({ event: 'ONAPPINSTALL' });
    expect(ev.status).toBe('rejected');
    expect((await row()).application_token_digest).toBeNull();
  });

  it('rejects an ONAPPINSTALL proven by an admin token of ANOTHER app on the same portal', async () => {
    await forgetApplicationToken();
    const foreign = portal.issueForeignAppAuth(1);
    const res = await installPost(foreign.applicationToken, foreign.accessToken);
    expect(res.status).toBe(200);
    await h.services.intake.drain();
    const callsBefore = portal.calls.length;
    await runLifecycleJobs(h.t.deps);
    // Control: the token was tried on the portal, and `profile` alone accepted it.
    const tried = portal.calls.slice(callsBefore).map((c) => [c.method, c.status]);
    expect(tried).toEqual([
      ['profile', 200],
      ['app.info', 200],
    ]);
    const [ev] = await h.t.deps.db('events').where({ event: 'ONAPPINSTALL' });
    expect(ev).toMatchObject({ status: 'rejected', reject_reason: 'token_unproven' });
    expect((await row()).application_token_digest).toBeNull();
  });

  it('learns the application token from a proven ONAPPINSTALL and then verifies the events that waited', async () => {
    await forgetApplicationToken();
    await portal.finishInstall();
    await portal.addDeal({ TITLE: 'early' });
    await h.services.intake.drain();
    const statuses = async () =>
      (await h.t.deps.db('events').orderBy('id')).map((e: { event: string; status: string }) => [
        e.event,
        e.status,
      ]);
    expect(await statuses()).toEqual([
      ['ONAPPINSTALL', 'unverified'],
      ['ONCRMDEALADD', 'unverified'],
    ]);
    await runLifecycleJobs(h.t.deps);
    expect(await statuses()).toEqual([
      ['ONAPPINSTALL', 'processed'],
      ['ONCRMDEALADD', 'received'],
    ]);
    expect((await row()).application_token_digest).toBe(
      h.t.deps.box.digest(portal.applicationToken),
    );
  });
});
