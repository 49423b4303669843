import { afterEach, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import type { HostResolver } from '../../server/lib/http-guard.js';
import { encodePhpForm } from '../emulator/php-form.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';

/**
 * A portal on a Bitrix24 zone the app does not list (`acme.bitrix24.kr`): the OAuth server,
 * asked with the app's credentials, must name the portal there before anything is sent to
 * that address; then it is a portal like any other. `127.0.0.1:*` is the test configuration
 * that allows the emulator; `*.bitrix24.*` is the default's entry for unlisted zones.
 */
describe('portals on a zone B24_PORTAL_HOSTS does not list', () => {
  const NAME = 'acme.bitrix24.kr';
  const HOSTS = { B24_PORTAL_HOSTS: '127.0.0.1:*,*.bitrix24.*' };
  let h: InstallHarness | undefined;
  /** Requests the app sent to a cloud name, and where the test's resolver maps each name. */
  const named: string[] = [];
  const listeners = new Map<string, string>();
  /** The app's fetch with a resolver of its own: a cloud name goes to the emulator's listener. */
  const mapped = (input: string | URL | Request, init?: RequestInit) => {
    const url = new URL(input instanceof Request ? input.url : input);
    const to = listeners.get(url.hostname);
    if (url.hostname.includes('bitrix24')) named.push(`${url.hostname}${url.pathname}`);
    if (to) url.host = to;
    return fetch(url, init);
  };

  afterEach(async () => {
    named.length = 0;
    listeners.clear();
    await h?.close();
    h = undefined;
  });

  /** The installer POST of an emulated portal, with its DOMAIN replaced by `domain`. */
  function installAs(harness: InstallHarness, domain: string, auth: { a: string; r: string }) {
    const q = new URLSearchParams({ DOMAIN: domain, PROTOCOL: '0', LANG: 'en' });
    const body = encodePhpForm(
      Object.entries({
        AUTH_ID: auth.a,
        AUTH_EXPIRES: '3600',
        REFRESH_ID: auth.r,
        SERVER_ENDPOINT: harness.emu.serverEndpoint,
        member_id: 'stranger-member',
        status: 'L',
        PLACEMENT: 'DEFAULT',
      }),
    );
    return fetch(`${harness.appUrl}/install?${q.toString()}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });
  }

  it('installs a portal the OAuth server names on that zone, and keeps calling it there', async () => {
    h = await startInstallHarness(HOSTS, {}, { bitrix: { fetch: mapped } });
    const portal = await h.addPortal({ domain: NAME });
    listeners.set(NAME, portal.address);
    const res = await portal.install();
    expect(res.status).toBe(200);
    const stored = (await findPortalByMemberId(h.t.deps.db, portal.memberId))!;
    expect(stored).toMatchObject({ status: 'installed', domain: NAME });
    expect(stored.install_confirmed_at).not.toBeNull();
    // The OAuth server was asked first; the portal was called by its name after that.
    expect(h.emu.oauthCalls.length).toBeGreaterThan(0);
    expect(named[0]).toBe(`${NAME}/rest/profile`);
    expect(portal.bindings.map((b) => b.event)).toContain('ONCRMDEALUPDATE');
    // Later calls of the stored portal go there too.
    await expect(h.t.deps.bitrix.call<{ CODE: string }>(stored, 'app.info')).resolves.toMatchObject(
      { CODE: 'local.test' },
    );
  });

  it('opens the app of a portal on that zone, and re-checks its admin there', async () => {
    h = await startInstallHarness(HOSTS, {}, { bitrix: { fetch: mapped } });
    const portal = await h.addPortal({ domain: NAME });
    listeners.set(NAME, portal.address);
    expect((await portal.install()).status).toBe(200);
    await portal.finishInstall();
    const auth = portal.issueUserAuth(1);
    const q = new URLSearchParams({ DOMAIN: NAME, PROTOCOL: '1', LANG: 'en' });
    const entry = await fetch(`${h.appUrl}/app?${q.toString()}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        AUTH_ID: auth.accessToken,
        AUTH_EXPIRES: '3600',
        REFRESH_ID: auth.refreshToken,
        member_id: portal.memberId,
        status: 'L',
        PLACEMENT: 'DEFAULT',
        PLACEMENT_OPTIONS: '{}',
      }).toString(),
      redirect: 'manual',
    });
    expect(entry.status).toBe(303);
    expect(named).toContain(`${NAME}/rest/profile`);
    const cookie = (entry.headers.get('set-cookie') ?? '').split(';')[0] ?? '';
    const page = (path: string) =>
      fetch(`${h!.appUrl}${path}`, { headers: { cookie }, redirect: 'manual' });
    expect((await page('/ui/replay')).status).toBe(200);
    // Past the admin re-check interval (server/ui/admin-check.ts): asked of the portal there.
    h.t.clock.advance(5 * 60_000);
    expect((await page('/ui/replay')).status).toBe(200);
    expect(named).toContain(`${NAME}/rest/user.admin`);
  });

  it('refuses the zone when the OAuth server names the portal elsewhere, contacting nothing there', async () => {
    h = await startInstallHarness(HOSTS, {}, { bitrix: { fetch: mapped } });
    // A genuine portal's tokens, posted under a cloud name of an unlisted zone.
    const genuine = await h.addPortal();
    const auth = genuine.issueUserAuth(1);
    const res = await installAs(h, NAME, { a: auth.accessToken, r: auth.refreshToken });
    expect(res.status).toBe(403);
    expect(named).toEqual([]);
    expect(await findPortalByMemberId(h.t.deps.db, 'stranger-member')).toBeUndefined();
  });

  it('refuses a look-alike of a cloud address without asking anyone', async () => {
    h = await startInstallHarness(HOSTS, {}, { bitrix: { fetch: mapped } });
    for (const domain of ['acme.bitrix24.co.evil.com', 'acme.bitrix24.evil.com', 'bitrix24.kr']) {
      const res = await installAs(h, domain, { a: 'a'.repeat(32), r: 'r'.repeat(32) });
      expect([domain, res.status]).toEqual([domain, 403]);
    }
    expect(h.emu.oauthCalls).toEqual([]);
    expect(named).toEqual([]);
  });

  it('still never calls a vouched name that resolves into the app’s own network', async () => {
    const resolveHost: HostResolver = async (host) =>
      host.endsWith('.bitrix24.kr') ? [{ address: '127.0.0.1', family: 4 }] : [];
    h = await startInstallHarness(HOSTS, {}, { resolveHost });
    const portal = await h.addPortal({ domain: NAME });
    const res = await portal.install();
    expect(res.status).not.toBe(200);
    expect(portal.calls).toEqual([]);
    expect(await findPortalByMemberId(h.t.deps.db, portal.memberId)).toBeUndefined();
    expect(h.t.logs.text()).toMatch(/acme\.bitrix24\.kr resolves to a loopback address/);
  });
});
