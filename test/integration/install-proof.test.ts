import { afterEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId, type PortalRow } from '../../db/stores/portals.js';
import { effectiveMapWithSource, getRuleMap, saveRuleMap } from '../../server/rules/map-store.js';
import type { EventMap } from '../../server/rules/model.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { frameEntry } from '../helpers/frame-session.js';
import {
  installPortal,
  startInstallHarness,
  type InstallHarness,
} from '../helpers/install-harness.js';
import { runLifecycleJobs } from '../helpers/lifecycle-jobs.js';
import { eventBody } from '../helpers/event-builder.js';
import { syncBindings, TOKEN_TEST_EVERY_MS } from '../../server/install/bindings.js';
import { UNVERIFIED_TTL_MS } from '../../server/intake/unverified-cap.js';
import { insertJobs, releaseStaleJobs } from '../../db/stores/jobs.js';

/**
 * Install proof (issues 17 and 19): an install counts only when the OAuth server confirms it
 * with our client credentials; installs without SERVER_ENDPOINT use the zone's server; an
 * outage of the OAuth server defers the confirmation to ONAPPINSTALL; tokens of another app
 * prove nothing; the default rule map is not a portal's scope.
 */
describe('install proof', () => {
  let h: InstallHarness;
  afterEach(async () => {
    await h?.close();
  });

  const row = async (p: EmulatedPortal) =>
    (await findPortalByMemberId(h.t.deps.db, p.memberId)) as PortalRow | undefined;

  /** An installer POST from `from`'s admin that names `memberId` (any portal's). */
  async function postInstall(
    from: EmulatedPortal,
    opts: { memberId?: string; accessToken?: string; refreshToken?: string } = {},
  ) {
    const auth = from.issueUserAuth(1);
    const { url, body } = frameEntry(h.appUrl, from, {
      path: h.t.deps.manifest.handlers.install,
      memberId: opts.memberId ?? from.memberId,
      authId: opts.accessToken ?? auth.accessToken,
    });
    const form = new URLSearchParams(body);
    form.set('REFRESH_ID', opts.refreshToken ?? auth.refreshToken);
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: form.toString(),
    });
    return { status: res.status, text: await res.text() };
  }

  it('installs from the older installer POST (no SERVER_ENDPOINT, no APPLICATION_TOKEN) through the zone’s OAuth server', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    const res = await portal.install({ form: 'legacy' });
    expect(res.status).toBe(200);
    const stored = (await row(portal))!;
    expect(stored).toMatchObject({
      status: 'installed',
      server_endpoint: `${h.emu.oauthUrl}/rest/`,
      application_token_digest: null,
    });
    expect(stored.install_confirmed_at).not.toBeNull();
    // Confirmed by the zone's server with our credentials.
    expect(h.emu.oauthCalls).toEqual([
      expect.objectContaining({ grantType: 'refresh_token', clientSecretOk: true, status: 200 }),
    ]);
    // ONAPPINSTALL then proves the application token, and events flow.
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    expect((await row(portal))!.application_token_digest).toBe(
      h.t.deps.box.digest(portal.applicationToken),
    );
    const [install] = await h.t.deps.db('events').where({ event: 'ONAPPINSTALL' });
    expect(install.status).toBe('processed');
  });

  /** An older-form install whose ONAPPINSTALL is lost (the app was down at installFinish). */
  async function installLosingOnAppInstall(portal: EmulatedPortal) {
    expect((await portal.install({ form: 'legacy' })).status).toBe(200);
    await h.pauseApp();
    await portal.finishInstall();
    h.resumeApp();
    expect((await row(portal))!.application_token_digest).toBeNull();
  }
  /** The portal's deliveries so far stored, and the due lifecycle (proof) jobs run. */
  async function settleProof(portal: EmulatedPortal) {
    await portal.whenIdle();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
  }
  const eventsOf = async (event: string) =>
    (await h.t.deps.db('events').where({ event }).orderBy('id')) as Array<{
      id: number;
      status: string;
      reject_reason: string | null;
    }>;

  it('learns the application token from an ONAPPTEST it asks for when ONAPPINSTALL was lost and the installer POST had none', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    // While the token is not known, ONAPPTEST is bound; nothing asks for it before
    // installFinish (Bitrix24 sends no event before it).
    expect(portal.bindings.map((b) => b.event)).toContain('ONAPPTEST');
    expect(portal.calls.map((c) => c.method)).not.toContain('event.test');
    // A deal's event waits, unverified; its proof job finds nothing to prove and asks.
    await portal.addDeal({ TITLE: 'Waiting for the token' });
    await portal.whenIdle();
    await h.services.intake.drain();
    expect((await eventsOf('ONCRMDEALADD')).map((e) => e.status)).toEqual(['unverified']);
    await runLifecycleJobs(h.t.deps);
    expect(portal.calls.filter((c) => c.method === 'event.test')).toHaveLength(1);
    await settleProof(portal);
    expect((await row(portal))!.application_token_digest).toBe(
      h.t.deps.box.digest(portal.applicationToken),
    );
    expect((await eventsOf('ONAPPTEST')).map((e) => e.status)).toEqual(['processed']);
    // The deal's event is verified and goes on as any other.
    expect((await eventsOf('ONCRMDEALADD'))[0]!.status).not.toBe('unverified');
    // The next sync, the token known, takes the binding away.
    await syncBindings(h.t.deps, (await row(portal))!);
    expect(portal.bindings.map((b) => b.event)).not.toContain('ONAPPTEST');
  });

  it('rejects a forged ONAPPTEST, and asks again after a failed event.test, at most every few minutes', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    portal.failNext('event.test', { status: 500, error: 'INTERNAL_SERVER_ERROR' });
    await portal.addDeal({ TITLE: 'Waiting for the token' });
    await settleProof(portal);
    // A stranger's ONAPPTEST: the portal's member_id, made-up tokens.
    const forged = eventBody({
      portal: { ...portal, applicationToken: 'made-up-application-token' },
      event: 'ONAPPTEST',
      data: { QUERY: {}, LANGUAGE_ID: 'en' },
      accessToken: 'made-up-access-token',
    });
    const res = await fetch(`${h.appUrl}${h.t.deps.manifest.handlers.events}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: forged,
    });
    expect(res.status).toBe(200);
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    expect((await row(portal))!.application_token_digest).toBeNull();
    expect((await eventsOf('ONAPPTEST')).map((e) => [e.status, e.reject_reason])).toEqual([
      ['rejected', 'token_unproven'],
    ]);
    // Asked once so far (it failed); not again within TOKEN_TEST_EVERY_MS, then again.
    const asked = () => portal.calls.filter((c) => c.method === 'event.test').length;
    expect(asked()).toBe(1);
    await portal.addDeal({ TITLE: 'Still waiting' });
    await settleProof(portal);
    expect(asked()).toBe(1);
    h.t.clock.advance(TOKEN_TEST_EVERY_MS);
    await portal.addDeal({ TITLE: 'Waiting longer' });
    await settleProof(portal);
    expect(asked()).toBe(2);
    await settleProof(portal);
    expect((await row(portal))!.application_token_digest).toBe(
      h.t.deps.box.digest(portal.applicationToken),
    );
    expect((await eventsOf('ONCRMDEALADD')).every((e) => e.status !== 'unverified')).toBe(true);
  });

  it('asks again after a failed event.test by itself, and expires what waited an hour, on a portal where nothing else arrives', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    portal.failNext('event.test', { status: 503, error: 'QUERY_LIMIT_EXCEEDED' });
    await portal.addDeal({ TITLE: 'The only event for hours' });
    await settleProof(portal);
    const asked = () => portal.calls.filter((c) => c.method === 'event.test').length;
    expect(asked()).toBe(1);
    // The proof job looks again by itself: no other delivery is needed. (Before, it ended,
    // and the deal's event waited unverified for good.)
    const [proof] = await h.t.deps.db('jobs').where({ type: 'lifecycle', status: 'pending' });
    expect(proof).toMatchObject({ attempts: 0, entity_key: expect.stringMatching(/^proof:/) });
    h.t.clock.advance(TOKEN_TEST_EVERY_MS);
    await runLifecycleJobs(h.t.deps);
    expect(asked()).toBe(2);
    // This time the portal sends the ONAPPTEST, but say it is lost too: after an hour the
    // deal's event is expired, and the proof job ends.
    await portal.whenIdle();
    await h.t.deps.db('events').where({ event: 'ONAPPTEST' }).delete();
    h.t.clock.advance(UNVERIFIED_TTL_MS);
    await runLifecycleJobs(h.t.deps);
    expect((await eventsOf('ONCRMDEALADD')).map((e) => [e.status, e.reject_reason])).toEqual([
      ['rejected', 'unverified_expired'],
    ]);
    expect(await h.t.deps.db('jobs').where({ type: 'lifecycle', status: 'pending' })).toEqual([]);
  });

  it('rejects an uninstalled portal’s deliveries that wait for proof, with their tokens', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    await portal.addDeal({ TITLE: 'Waits for a token nothing will prove' });
    await portal.whenIdle();
    await h.services.intake.drain();
    const [waiting] = await eventsOf('ONCRMDEALADD');
    expect(waiting!.status).toBe('unverified');
    // Withdrawn or uninstalled: its deliveries are refused from now on, and no proof comes.
    await h.t.deps
      .db('portals')
      .where({ member_id: portal.memberId })
      .update({ status: 'uninstalled' });
    h.t.deps.portals.invalidate(portal.memberId);
    await runLifecycleJobs(h.t.deps);
    const after = (await h.t.deps.db('events').where({ id: waiting!.id }).first()) as {
      status: string;
      reject_reason: string | null;
      auth_enc: string | null;
    };
    // Before: still unverified an hour later and for good, the user's tokens kept.
    expect([after.status, after.reject_reason, after.auth_enc]).toEqual([
      'rejected',
      'portal_uninstalled',
      null,
    ]);
  });

  it('learns the token when a delivery arrives while the proof job runs (the worker): the job ends and the next one runs', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    await portal.addDeal({ TITLE: 'Waiting for the token' });
    await portal.whenIdle();
    await h.services.intake.drain();
    // The proof job's ask takes a while; a second deal's delivery arrives meanwhile and
    // queues the portal's next proof job (the running one is not pending).
    portal.delayNext('event.test', 400);
    const running = h.services.worker.drain();
    await new Promise((r) => setTimeout(r, 100));
    await portal.addDeal({ TITLE: 'Arrives during the proof' });
    await portal.whenIdle();
    await h.services.intake.drain();
    const during = await h.t.deps.db('jobs').where({ type: 'lifecycle' }).orderBy('id');
    expect(during.map((j) => j.status)).toEqual(['running', 'pending']);
    await running;
    await portal.whenIdle();
    await h.services.intake.drain();
    await h.services.worker.drain();
    // Before, the running job could not be pending again beside the new one (the unique
    // index): it stayed running, and held the new one back, for good.
    expect(await h.t.deps.db('jobs').where({ status: 'running' })).toEqual([]);
    expect((await row(portal))!.application_token_digest).toBe(
      h.t.deps.box.digest(portal.applicationToken),
    );
    expect((await eventsOf('ONCRMDEALADD')).map((e) => e.status)).not.toContain('unverified');
  });

  it('ends a proof job left running by a process that died when the portal has a newer one, and releases the rest', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    await portal.addDeal({ TITLE: 'Waiting for the token' });
    await settleProof(portal);
    const db = h.t.deps.db;
    const now = h.t.clock.now().getTime();
    // The follow-up proof job was claimed by a process that died; then a delivery queued
    // the portal's next one. Another job of that process was running too.
    const [left] = await db('jobs').where({ type: 'lifecycle', status: 'pending' });
    await db('jobs')
      .where({ id: left.id })
      .update({ status: 'running', locked_at: now - 60_000, locked_by: 'gone' });
    await portal.addDeal({ TITLE: 'After the crash' });
    await portal.whenIdle();
    await h.services.intake.drain();
    await insertJobs(
      db,
      [
        {
          type: 'alert',
          event_id: null,
          portal_id: null,
          entity_key: null,
          payload: '{}',
          max_attempts: 3,
          run_at: now,
        },
      ],
      now,
    );
    const other = await db('jobs').where({ type: 'alert' }).first();
    await db('jobs')
      .where({ id: other.id })
      .update({ status: 'running', locked_at: now - 60_000, locked_by: 'gone' });
    const pendingProof = () =>
      db('jobs').where({ type: 'lifecycle', status: 'pending' }).whereLike('entity_key', 'proof:%');
    expect(await pendingProof()).toHaveLength(1);
    // Before, the release failed on the unique index: no stale job went back, ever.
    expect(await releaseStaleJobs(db, now - 1000, now)).toBe(2);
    expect((await db('jobs').where({ id: left.id }).first()).status).toBe('done');
    expect((await db('jobs').where({ id: other.id }).first()).status).toBe('pending');
    expect(await pendingProof()).toHaveLength(1);
  });

  it('confirms an install the OAuth server has not confirmed with an ONAPPTEST it asks for', async () => {
    // ONAPPTEST carries a refresh token as ONAPPINSTALL does (test/emulator/known-names.ts
    // cites the core): the app took it for one that could never prove such an install, did
    // not ask, and the install waited unconfirmed for ever once its ONAPPINSTALL was lost.
    h = await startInstallHarness();
    const portal = await h.addPortal();
    await installLosingOnAppInstall(portal);
    await h.t.deps
      .db('portals')
      .where({ member_id: portal.memberId })
      .update({ install_confirmed_at: null });
    h.t.deps.portals.invalidate(portal.memberId);
    await portal.addDeal({ TITLE: 'Waiting' });
    await settleProof(portal);
    expect(portal.calls.filter((c) => c.method === 'event.test')).toHaveLength(1);
    await settleProof(portal);
    expect((await eventsOf('ONAPPTEST')).map((e) => e.status)).toEqual(['processed']);
    // Confirmed by the exchange of the delivered refresh token with our credentials.
    expect((await row(portal))!.install_confirmed_at).not.toBeNull();
    expect(h.emu.oauthCalls.at(-1)).toMatchObject({ grantType: 'refresh_token' });
    expect((await row(portal))!.application_token_digest).toBe(
      h.t.deps.box.digest(portal.applicationToken),
    );
    expect((await eventsOf('ONCRMDEALADD'))[0]!.status).not.toBe('unverified');
  });

  it('refuses a zone default that is not in B24_OAUTH_SERVERS, sending the secret nowhere', async () => {
    h = await startInstallHarness({ B24_OAUTH_ZONE_SERVERS: '*=https://oauth.bitrix.info' });
    const portal = await h.addPortal();
    const res = await portal.install({ form: 'legacy' });
    expect(res.status).toBe(403);
    expect(res.body).toContain('B24_OAUTH_SERVERS');
    expect(h.emu.oauthCalls).toHaveLength(0);
    expect(await row(portal)).toBeUndefined();
  });

  it('tells the admin to ask the operator when the OAuth server refuses our client secret', async () => {
    // (A mistyped client id is refused before: app.info names the app the token was issued
    // to, another than B24_CLIENT_ID.)
    h = await startInstallHarness({ B24_CLIENT_SECRET: 'mistyped-secret' });
    const portal = await h.addPortal();
    const res = await portal.install();
    expect(res.status).toBe(401);
    expect(res.body).toContain('B24_CLIENT_ID and B24_CLIENT_SECRET');
    expect(res.body).not.toContain('did not confirm the authorization');
    // Control: the server was asked, and refused (invalid_client).
    expect(h.emu.oauthCalls.map((c) => c.status)).toEqual([400]);
    expect(await row(portal)).toBeUndefined();
    const logged = h.t.logs.lines.join('\n');
    expect(logged).toContain('B24_CLIENT_ID / B24_CLIENT_SECRET not those of the app registration');
    expect(logged).not.toContain('mistyped-secret');
  });

  it('keeps the frame’s tokens when the OAuth server answers 5xx, and confirms them on ONAPPINSTALL', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    h.emu.failNextToken({ status: 503, error: 'INTERNAL_SERVER_ERROR' });
    expect((await portal.install()).status).toBe(200);
    expect((await row(portal))!.install_confirmed_at).toBeNull();
    expect(h.emu.oauthCalls.map((c) => c.status)).toEqual([503]);

    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const confirmed = (await row(portal))!;
    expect(confirmed.install_confirmed_at).not.toBeNull();
    expect(confirmed.status).toBe('installed');
    expect(h.emu.oauthCalls.map((c) => c.status)).toEqual([503, 200]);
  });

  it('confirms an older-form install taken during an OAuth outage with the ONAPPINSTALL’s own tokens', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    h.emu.failNextToken({ status: 502, error: 'BAD_GATEWAY' });
    expect((await portal.install({ form: 'legacy' })).status).toBe(200);
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const stored = (await row(portal))!;
    expect(stored.install_confirmed_at).not.toBeNull();
    expect(stored.application_token_digest).toBe(h.t.deps.box.digest(portal.applicationToken));
  });

  it('refuses an install under another portal’s member_id: the OAuth server names the real one', async () => {
    h = await startInstallHarness();
    const victim = await h.addPortal();
    const attacker = await h.addPortal();
    const res = await postInstall(attacker, { memberId: victim.memberId });
    expect(res.status).toBe(403);
    expect(res.text).toContain('belongs to another portal');
    expect(await row(victim)).toBeUndefined();
    // The victim can still install.
    expect((await victim.install()).status).toBe(200);
  });

  it('refuses every install without B24_CLIENT_ID / B24_CLIENT_SECRET, naming them, and calls no portal', async () => {
    h = await startInstallHarness({ B24_CLIENT_ID: '', B24_CLIENT_SECRET: '' });
    const victim = await h.addPortal();
    const attacker = await h.addPortal();
    const res = await postInstall(attacker, { memberId: victim.memberId });
    expect(res.status).toBe(503);
    expect(res.text).toContain('B24_CLIENT_ID');
    expect(res.text).toContain('B24_CLIENT_SECRET');
    expect(res.text).toContain('B24_INSECURE_DEV_INSTALL');
    expect(attacker.calls).toHaveLength(0);
    expect(await row(victim)).toBeUndefined();
    // An honest install is refused the same way.
    expect((await victim.install()).status).toBe(503);
    expect(await h.t.deps.db('portals')).toHaveLength(0);
  });

  it('accepts installs without credentials only in the explicit insecure development mode', async () => {
    h = await startInstallHarness({
      B24_CLIENT_ID: '',
      B24_CLIENT_SECRET: '',
      B24_INSECURE_DEV_INSTALL: '1',
    });
    const portal = await h.addPortal();
    expect((await portal.install()).status).toBe(200);
    expect((await row(portal))!.status).toBe('installed');
    expect(h.emu.oauthCalls).toHaveLength(0);
    expect(h.t.logs.text()).toContain('INSECURE DEVELOPMENT INSTALL');
  });

  it('refuses an install with an admin token that another app on the same portal holds', async () => {
    h = await startInstallHarness();
    const portal = await h.addPortal();
    const foreign = portal.issueForeignAppAuth(1);
    const res = await postInstall(portal, {
      accessToken: foreign.accessToken,
      refreshToken: foreign.refreshToken,
    });
    expect(res.status).toBe(401);
    expect(res.text).toContain('another application');
    // Control: `profile` did accept the token; `app.info` named the other app.
    expect(portal.calls.map((c) => [c.method, c.status])).toEqual([
      ['profile', 200],
      ['app.info', 200],
    ]);
    expect(await row(portal)).toBeUndefined();
  });

  it('refuses frame entry with an admin token that another app on the same portal holds', async () => {
    h = await startInstallHarness();
    const { portal } = await installPortal(h);
    const enter = async (authId?: string) => {
      const { url, body } = frameEntry(h.appUrl, portal, { authId });
      return fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body,
        redirect: 'manual',
      });
    };
    // Control: our own admin token opens the app.
    expect((await enter()).status).toBe(303);
    const res = await enter(portal.issueForeignAppAuth(1).accessToken);
    expect(res.status).toBe(401);
    const last = portal.calls.slice(-2).map((c) => [c.method, c.status]);
    expect(last).toEqual([
      ['profile', 200],
      ['app.info', 200],
    ]);
  });

  it('keeps the default rule map apart from a portal whose member_id is `default`', async () => {
    h = await startInstallHarness();
    const { portal } = await installPortal(h, { memberId: 'default' });
    const other = await installPortal(h);
    const map = (name: string): EventMap => ({
      rules: [{ name, on: ['ONCRMDEALADD'], when: [], actions: [] }],
    });
    const now = h.t.deps.clock.now();
    await saveRuleMap(h.t.deps.db, undefined, map('everyone'), now);
    await saveRuleMap(h.t.deps.db, portal.memberId, map('portal named default'), now);
    expect((await getRuleMap(h.t.deps.db, undefined))?.rules[0]?.name).toBe('everyone');
    const seen = await effectiveMapWithSource(h.t.deps.db, other.portal.memberId);
    expect(seen).toMatchObject({ source: 'default' });
    expect(seen.map.rules[0]?.name).toBe('everyone');
    const own = await effectiveMapWithSource(h.t.deps.db, 'default');
    expect(own).toMatchObject({ source: 'portal' });
    expect(own.map.rules[0]?.name).toBe('portal named default');
  });
});
