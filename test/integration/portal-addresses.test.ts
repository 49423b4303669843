import dns from 'node:dns';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { findPortalByMemberId } from '../../db/stores/portals.js';
import type { HostResolver } from '../../server/lib/http-guard.js';
import { encodePhpForm } from '../emulator/php-form.js';
import { startHttpSink, type HttpSink } from '../helpers/http-sink.js';
import { startInstallHarness, type InstallHarness } from '../helpers/install-harness.js';

/**
 * A portal's address is chosen by whoever posts the install: a DOMAIN that matches a wildcard
 * of B24_PORTAL_HOSTS (`*.bitrix24.com`) is a name a stranger picks, and the DNS answer for it
 * is not ours. Such a name must not lead the REST client into the app's own network. `inside`
 * stands for an internal service on loopback; `*.portals.test` names resolve to it, for the
 * app's resolver and for the process's DNS (what a plain fetch would use).
 */
describe('portal REST calls and private addresses', () => {
  let inside: HttpSink;
  let h: InstallHarness | undefined;
  const originalLookup = dns.lookup;
  const toInside = (host: string) => host.endsWith('.portals.test');
  const resolveHost: HostResolver = async (host) =>
    toInside(host)
      ? [{ address: '127.0.0.1', family: 4 }]
      : dns.promises.lookup(host, { all: true });

  beforeAll(async () => {
    inside = await startHttpSink();
    const patched = (host: string, options: unknown, callback?: unknown) => {
      const cb = (typeof options === 'function' ? options : callback) as (...a: unknown[]) => void;
      const opts = (typeof options === 'object' && options !== null ? options : {}) as {
        all?: boolean;
      };
      if (!toInside(host))
        return (originalLookup as (...a: unknown[]) => void)(host, options, callback);
      if (opts.all) cb(null, [{ address: '127.0.0.1', family: 4 }]);
      else cb(null, '127.0.0.1', 4);
    };
    (dns as { lookup: unknown }).lookup = patched;
  });
  afterEach(async () => {
    inside.requests.length = 0;
    await h?.close();
    h = undefined;
  });
  afterAll(async () => {
    (dns as { lookup: unknown }).lookup = originalLookup;
    await inside.close();
  });

  /** An installer POST for `domain` over plain http, with made-up tokens. */
  async function forgedInstall(harness: InstallHarness, domain: string) {
    const q = new URLSearchParams({ DOMAIN: domain, PROTOCOL: '0', LANG: 'en' });
    const body = encodePhpForm(
      Object.entries({
        AUTH_ID: 'a'.repeat(32),
        AUTH_EXPIRES: '3600',
        REFRESH_ID: 'r'.repeat(32),
        SERVER_ENDPOINT: harness.emu.serverEndpoint,
        member_id: 'stranger-member',
        status: 'L',
      }),
    );
    return fetch(`${harness.appUrl}/install?${q.toString()}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/x-www-form-urlencoded' },
      body,
    });
  }

  it('refuses a wildcard-matched DOMAIN that resolves to loopback without contacting it', async () => {
    h = await startInstallHarness(
      { B24_PORTAL_HOSTS: '127.0.0.1:*,*.portals.test:*' },
      {},
      { resolveHost },
    );
    const port = new URL(inside.url).port;
    const res = await forgedInstall(h, `intranet.portals.test:${port}`);
    expect(res.status).not.toBe(200);
    expect(inside.requests).toHaveLength(0);
    expect(await findPortalByMemberId(h.t.deps.db, 'stranger-member')).toBeUndefined();
    expect(h.t.logs.text()).toMatch(/intranet\.portals\.test resolves to a loopback address/);
  });

  it('still calls a host the operator names exactly, wherever it resolves (control)', async () => {
    h = await startInstallHarness(
      { B24_PORTAL_HOSTS: '127.0.0.1:*,intranet.portals.test:*' },
      {},
      { resolveHost },
    );
    const port = new URL(inside.url).port;
    await forgedInstall(h, `intranet.portals.test:${port}`);
    expect(inside.requests.map((r) => r.url)).toContain('/rest/profile');
  });
});
