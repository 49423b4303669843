import { afterEach, beforeEach, describe, expect, it } from '@jest/globals';
import { runCli } from '../../server/cli/run.js';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import { encodePhpForm } from '../emulator/php-form.js';
import { startRecordingReceiver } from '../emulator/recording-receiver.js';
import type { EmulatedPortal } from '../emulator/portal-api.js';
import { eventBody } from '../helpers/event-builder.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';
import { runLifecycleJobs } from '../helpers/lifecycle-jobs.js';
import { translateMessage } from '../../server/ui/i18n-messages.js';
import { PROBE_REFUSALS_GUARDED } from '../../server/install/probe-guard.js';

const APP_EVENTS = [
  'ONAPPINSTALL',
  'ONAPPUPDATE',
  'ONAPPUNINSTALL',
  'ONCRMDEALADD',
  'ONCRMDEALUPDATE',
];

describe('install flow against the emulator', () => {
  let h: InstallHarness;
  let portal: EmulatedPortal;
  const events = () => h.t.deps.db('events').orderBy('id');
  const stored = () => findPortalByMemberId(h.t.deps.db, portal.memberId);
  /** Posts a delivery to the events URL, as Bitrix24 or anyone else would. */
  const postEvent = (body: string) =>
    fetch(`${h.appUrl}/b24/events`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });

  async function portalsJson() {
    let out = '';
    const code = await runCli(
      ['portals', '--json'],
      {
        DATA_DIR: h.t.dir,
        SESSION_SECRET: h.t.deps.config.sessionSecret,
        TOKEN_ENCRYPTION_KEY: h.t.deps.config.tokenEncryptionKey.toString('hex'),
        ...h.t.dbEnv,
      },
      { out: (s) => (out += s), err: () => undefined },
    );
    expect(code).toBe(0);
    return JSON.parse(out) as Array<Record<string, unknown>>;
  }

  /** What the installer frame would POST, with chosen overrides (a forged install). */
  function installForm(over: Record<string, string> = {}, query: Record<string, string> = {}) {
    const auth = portal.issueUserAuth(1);
    const q = new URLSearchParams({
      DOMAIN: portal.domain,
      PROTOCOL: '0',
      LANG: 'en',
      APP_SID: 'x'.repeat(32),
      ...query,
    });
    const body = encodePhpForm(
      Object.entries({
        AUTH_ID: auth.accessToken,
        AUTH_EXPIRES: '3600',
        REFRESH_ID: auth.refreshToken,
        SERVER_ENDPOINT: h.emu.serverEndpoint,
        member_id: portal.memberId,
        status: 'L',
        PLACEMENT: 'DEFAULT',
        APPLICATION_TOKEN: portal.applicationToken,
        ...over,
      }),
    );
    return fetch(`${h.appUrl}/install?${q.toString()}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });
  }

  beforeEach(async () => {
    h = await startInstallHarness();
    portal = await h.addPortal({
      users: [
        { id: 1, admin: true, name: 'Admin' },
        { id: 2, admin: false, name: 'Manager' },
        { id: 3, admin: true, name: 'Second admin' },
      ],
    });
  });
  afterEach(async () => {
    await h.close();
  });

  it('installs from the installer frame, binds events and placements, and proves ONAPPINSTALL', async () => {
    const res = await portal.install();
    expect(res.status).toBe(200);
    expect(res.body).toContain('BX24.installFinish()');
    expect(res.body).toContain(h.t.deps.config.b24.jsSdkUrl);
    expect(res.body).toContain('ONCRMDEALUPDATE');
    expect(res.body).toContain('CRM_DEAL_DETAIL_TAB');
    // The page shows what was set up, never a token.
    for (const token of [portal.calls[0]!.auth!, portal.applicationToken]) {
      expect(res.body).not.toContain(token);
    }

    const row = await stored();
    expect(row).toMatchObject({
      domain: portal.domain,
      status: 'installed',
      auth_mode: 'oauth',
      installed_by_user_id: 1,
      application_token_digest: h.t.deps.box.digest(portal.applicationToken),
    });
    expect(JSON.parse(row!.events_bound!)).toEqual(APP_EVENTS);
    const handler = `${h.appUrl}/b24/events`;
    expect(portal.bindings.map((b) => b.event).sort()).toEqual([...APP_EVENTS].sort());
    for (const b of portal.bindings) expect(b).toMatchObject({ handler, authType: 1 });
    // Sent as the contract says; the portal keeps no option an event does not declare.
    const binds = portal.calls.filter((c) => c.method === 'event.bind');
    expect(binds.length).toBe(APP_EVENTS.length);
    for (const c of binds) expect(c.params).toMatchObject({ options: { add_auth: 'Y' } });
    expect(portal.bindings.every((b) => Object.keys(b.options).length === 0)).toBe(true);
    expect(portal.placements).toEqual([
      expect.objectContaining({
        placement: 'CRM_DEAL_DETAIL_TAB',
        handler: `${h.appUrl}/placement/deal-tab`,
      }),
    ]);

    const deliveries = await portal.finishInstall();
    expect(deliveries.map((d) => [d.event, d.status])).toEqual([['ONAPPINSTALL', 200]]);
    await h.services.intake.drain();
    expect(await runLifecycleJobs(h.t.deps)).toEqual([{ jobId: expect.any(Number) }]);
    const [ev] = await events();
    expect(ev).toMatchObject({ event: 'ONAPPINSTALL', status: 'processed' });
    expect((await stored())!.app_version).toBe('1');
  });

  it('reflects the installed portal in portals --json', async () => {
    await portal.install();
    const [p] = await portalsJson();
    expect(p).toMatchObject({
      memberId: portal.memberId,
      domain: portal.domain,
      status: 'installed',
      events: APP_EVENTS,
    });
    expect(Date.parse(String(p!.tokenExpiresAt))).toBeGreaterThan(h.t.clock.now().getTime());
  });

  it('accepts the script-only install posted as an ONAPPINSTALL form', async () => {
    const auth = portal.issueUserAuth(1);
    const body = encodePhpForm([
      ['event', 'ONAPPINSTALL'],
      ['data[VERSION]', '1'],
      ['data[LANGUAGE_ID]', 'en'],
      ['ts', '1764237600'],
      ['auth[access_token]', auth.accessToken],
      ['auth[refresh_token]', auth.refreshToken],
      ['auth[expires_in]', '3600'],
      ['auth[domain]', portal.domain],
      ['auth[server_endpoint]', h.emu.serverEndpoint],
      ['auth[client_endpoint]', portal.clientEndpoint],
      ['auth[member_id]', portal.memberId],
      ['auth[application_token]', portal.applicationToken],
    ]);
    const res = await fetch(`${h.appUrl}/install`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, events: APP_EVENTS });
    expect((await stored())!.app_version).toBe('1');
  });

  it('refuses an install by a user who is not an administrator and stores nothing', async () => {
    const res = await portal.install({ userId: 2 });
    expect(res.status).toBe(403);
    expect(res.body).toContain('administrator');
    expect(await stored()).toBeUndefined();
    expect(portal.bindings).toHaveLength(0);
    expect(h.emu.oauthCalls).toHaveLength(0);
  });

  it('refuses a DOMAIN outside B24_PORTAL_HOSTS without contacting it', async () => {
    const evil = await startRecordingReceiver();
    try {
      const res = await installForm({}, { DOMAIN: `localhost:${new URL(evil.url).port}` });
      expect(res.status).toBe(403);
      expect(evil.requests).toHaveLength(0);
      expect(portal.calls).toHaveLength(0);
      expect(h.emu.oauthCalls).toHaveLength(0);
      expect(await stored()).toBeUndefined();
    } finally {
      await evil.close();
    }
  });

  it('refuses a SERVER_ENDPOINT outside B24_OAUTH_SERVERS: the client secret never leaves', async () => {
    const evil = await startRecordingReceiver();
    try {
      const res = await installForm({ SERVER_ENDPOINT: `${evil.url}/rest/` });
      expect(res.status).toBe(403);
      expect(evil.requests).toHaveLength(0);
      expect(portal.calls).toHaveLength(0);
      expect(await stored()).toBeUndefined();
    } finally {
      await evil.close();
    }
  });

  it('refuses an install naming another domain for a known member_id without contacting it', async () => {
    await portal.install();
    const other = await h.addPortal();
    const otherAuth = other.issueUserAuth(1);
    const res = await installForm(
      { AUTH_ID: otherAuth.accessToken, REFRESH_ID: otherAuth.refreshToken },
      { DOMAIN: other.domain },
    );
    expect(res.status).toBe(403);
    expect(other.calls).toHaveLength(0);
    expect((await stored())!.domain).toBe(portal.domain);
  });

  it('reinstalls idempotently, also by another admin, without a second binding per event', async () => {
    await portal.install();
    await portal.install();
    expect(portal.bindings).toHaveLength(APP_EVENTS.length);
    expect(portal.placements).toHaveLength(1);
    await portal.install({ userId: 3 });
    expect(portal.bindings).toHaveLength(APP_EVENTS.length);
    expect(new Set(portal.bindings.map((b) => b.authType))).toEqual(new Set([3]));
    expect(portal.placements).toHaveLength(1);
  });

  it('re-binds everything on ONAPPUPDATE, without duplicates', async () => {
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const deliveries = await portal.update(2);
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    // The update drops only the installer binding (CRestUtil::UpdateApp); the re-sync
    // restores what is missing and leaves the rest as it is (no duplicates).
    expect(portal.bindings.map((b) => b.event)).not.toContain('ONAPPINSTALL');
    await h.services.intake.drain();
    expect(await runLifecycleJobs(h.t.deps)).toEqual([{ jobId: expect.any(Number) }]);
    expect(portal.bindings.map((b) => b.event).sort()).toEqual([...APP_EVENTS].sort());
    expect((await stored())!.app_version).toBe('2');
    // And once more: nothing changes.
    await portal.install();
    expect(portal.bindings).toHaveLength(APP_EVENTS.length);
  });

  it('records the version the portal reports, not one an ONAPPUPDATE with its token claims', async () => {
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    await portal.update(2);
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    expect((await stored())!.app_version).toBe('2');
    // Any user of the portal can read its application token (it is posted into every app
    // frame), so this passes the intake; the VERSION is the poster's word only.
    for (const event of ['ONAPPUPDATE', 'ONAPPINSTALL']) {
      const forged = eventBody({
        portal: {
          memberId: portal.memberId,
          domain: portal.domain,
          applicationToken: portal.applicationToken,
        },
        event,
        data: { VERSION: '999', PREVIOUS_VERSION: '2', LANGUAGE_ID: 'en' },
        accessToken: null,
      });
      const res = await postEvent(forged);
      expect(res.status).toBe(200);
      await h.services.intake.drain();
      const infoBefore = portal.calls.filter((c) => c.method === 'app.info').length;
      await runLifecycleJobs(h.t.deps);
      expect((await stored())!.app_version).toBe('2');
      // Control: the delivery was handled, and the portal was asked.
      const last = await h.t.deps.db('events').where({ event }).orderBy('id', 'desc').first();
      expect(last).toMatchObject({ status: 'processed' });
      expect(portal.calls.filter((c) => c.method === 'app.info').length).toBe(infoBefore + 1);
    }
  });

  it('refuses ONAPPUNINSTALL with a wrong token and honours it with the right one', async () => {
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const forged = eventBody({
      portal: {
        memberId: portal.memberId,
        domain: portal.domain,
        applicationToken: 'f'.repeat(32),
      },
      event: 'ONAPPUNINSTALL',
      data: { LANGUAGE_ID: 'en', CLEAN: '1' },
      accessToken: null,
    });
    const res = await postEvent(forged);
    expect(res.status).toBe(401);
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    expect((await stored())!.status).toBe('installed');

    const deliveries = await portal.uninstall({ clean: true });
    expect(deliveries.map((d) => d.status)).toEqual([200]);
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    // "Delete app data": the tokens and events are gone; the portal stays listed as
    // uninstalled (`npx b24hooks portals`), a tombstone with its member_id and domain only.
    const row = await stored();
    expect(row).toMatchObject({
      status: 'uninstalled',
      access_token_enc: null,
      refresh_token_enc: null,
      application_token_digest: null,
    });
    expect(row!.uninstalled_at).not.toBeNull();
    expect(await events()).toEqual([]);
    const [p] = await portalsJson();
    expect(p).toMatchObject({ status: 'uninstalled', events: [] });

    // Installed again: the offline net drains it at its next tick (the tombstone had no
    // schedule left), and its deliveries are accepted.
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const raw = (await h.t.deps
      .db('portals')
      .where('member_id', portal.memberId)
      .first('status', 'offline_due_at')) as { status: string; offline_due_at: unknown };
    expect([raw.status, raw.offline_due_at === null ? null : Number(raw.offline_due_at)]).toEqual([
      'installed',
      0,
    ]);
  });

  it('keeps a reinstall that came before its uninstall was processed', async () => {
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    await portal.uninstall({ clean: false });
    await h.services.intake.drain();
    // The admin installs again at once, before the worker reached the uninstall (a backlog,
    // a retry after a busy database).
    h.t.clock.advance(1000);
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const row = await stored();
    expect(row!.status).toBe('installed');
    expect(row!.access_token_enc).not.toBeNull();
    expect(row!.application_token_digest).not.toBeNull();
    const [d] = await portal.emit('ONCRMDEALADD', { FIELDS: { ID: 6 } });
    expect(d!.status).toBe(200);
    // The late uninstall stays in the log, skipped; its note reads in Russian too.
    const late = (await events()).filter((e) => e.event === 'ONAPPUNINSTALL');
    expect(late.at(-1)).toMatchObject({ status: 'skipped' });
    expect(translateMessage('superseded by a later install', 'ru')).not.toMatch(/[a-z]/);
  });

  it('drops the credentials but keeps the data when an uninstall does not ask to delete it', async () => {
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const before = (await events()).length;
    expect(before).toBeGreaterThan(0);
    await portal.uninstall({ clean: false });
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    // Bitrix24 withdraws the app's REST access on any uninstall: the tokens could only leak.
    expect(await stored()).toMatchObject({
      status: 'uninstalled',
      access_token_enc: null,
      refresh_token_enc: null,
      token_expires_at: null,
      application_token_digest: null,
      webhook_url_enc: null,
      // The check that the app is gone met invalid_client and paused the portal; that pause
      // was about the credentials dropped here.
      pause_reason: null,
      paused_at: null,
    });
    // Control: the OAuth server was asked, and said the app is not installed.
    expect(h.emu.oauthCalls.at(-1)).toMatchObject({ grantType: 'refresh_token', status: 400 });
    // The log stays (the ONAPPUNINSTALL event added to it).
    expect((await events()).length).toBe(before + 1);

    // A reinstall brings new credentials, and deliveries are accepted again.
    await portal.install();
    await portal.finishInstall();
    await h.services.intake.drain();
    await runLifecycleJobs(h.t.deps);
    const again = await stored();
    expect(again!.status).toBe('installed');
    expect(again!.access_token_enc).not.toBeNull();
    expect(again!.application_token_digest).not.toBeNull();
    const [d] = await portal.emit('ONCRMDEALADD', { FIELDS: { ID: 5 } });
    expect(d!.status).toBe(200);
  });

  /**
   * A stranger who knows an installed portal's member_id and domain posts installs with
   * made-up AUTH_IDs. Each was checked with the portal on its whole REST budget, with no
   * count of refusals: a helper's flood held that portal's events 13–26 s behind them.
   * As for frame entries, once they are refused often, the checks take the lower half only.
   */
  it('made-up installs of a known portal never book its REST budget ahead of its own work', async () => {
    expect((await portal.install()).status).toBe(200);
    const limiter = h.t.deps.bitrix.limiter;
    const forged = (i: number) =>
      installForm({ AUTH_ID: `made-up-${i}-${'x'.repeat(24)}`, APPLICATION_TOKEN: '' }).then(
        async (r) => ({ status: r.status, body: await r.text() }),
      );
    const profiles = () => portal.calls.filter((c) => c.method === 'profile').length;
    const before = profiles();
    // Refused one by one first: each was asked of the portal (the control that they cost).
    for (let i = 0; i < PROBE_REFUSALS_GUARDED; i++) expect((await forged(i)).status).toBe(401);
    expect(profiles() - before).toBe(PROBE_REFUSALS_GUARDED);
    const flood = await Promise.all(Array.from({ length: 120 }, (_, i) => forged(100 + i)));
    expect(flood.every((r) => r.status === 401 || r.status === 503)).toBe(true);
    const busy = flood.find((r) => r.status === 503);
    // The installer frame's page says to try again.
    expect(busy?.body).toContain(
      'The portal is busy or not answering. Please try again in a minute.',
    );
    const { burst } = limiter.limitsOf(portal.memberId);
    expect(limiter.level(portal.memberId)).toBeLessThanOrEqual(burst / 2);
    // A call of the portal's own work goes at once.
    expect(await limiter.tryAcquire(portal.memberId, 0)).toBe(0);
    // Nothing of the flood is logged as an error of ours.
    expect(h.t.logs.text()).not.toContain('install failed');
  });
});
