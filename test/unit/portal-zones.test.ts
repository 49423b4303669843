import { describe, expect, it } from '@jest/globals';
import { loadConfig } from '../../server/config.js';
import {
  assertPortalUrl,
  isPortalHostAllowed,
  isUnlistedCloudHost,
  zoneServerEndpoint,
} from '../../server/bitrix/hosts.js';

const base = { SESSION_SECRET: 'x'.repeat(20), TOKEN_ENCRYPTION_KEY: 'a'.repeat(64) };
const defaults = loadConfig(base, undefined, '/srv/app');

/**
 * Which portal addresses the default B24_PORTAL_HOSTS admits: the zones of Bitrix24's regional
 * sites as its own code lists them (server/config/bitrix24.ts CLOUD_ZONES names the source of
 * each), and a cloud-shaped name of any other zone only on the OAuth server's word.
 */
describe('Bitrix24 cloud zones', () => {
  it('admits a portal on every zone of a Bitrix24 regional site', () => {
    for (const zone of [
      'com',
      'ru',
      'by',
      'kz',
      'ua',
      'de',
      'eu',
      'es',
      'fr',
      'pl',
      'it',
      'uk',
      'in',
      'com.br',
      'com.tr',
      'cn',
      'jp',
      'vn',
      'id',
      'co',
      'mx',
    ]) {
      expect([zone, isPortalHostAllowed(defaults, `b24-x1y2z3.bitrix24.${zone}`)]).toEqual([
        zone,
        true,
      ]);
    }
  });

  it('lists no zone that Bitrix24 names nowhere, and leaves them to the OAuth server', () => {
    for (const host of ['acme.bitrix24.kr', 'acme.bitrix24.com.mx', 'acme.bitrix24.ae']) {
      expect([host, isPortalHostAllowed(defaults, host)]).toEqual([host, false]);
      expect([host, isUnlistedCloudHost(defaults, host)]).toEqual([host, true]);
    }
  });

  it('takes no look-alike for a cloud address', () => {
    for (const host of [
      'acme.bitrix24.co.evil.com',
      'acme.bitrix24.com.evil.org',
      'acme.bitrix24.evil.com',
      'acme.bitrix24.kr.evil.com',
      'evil-bitrix24.kr',
      'acme.evilbitrix24.kr',
      'bitrix24.kr',
      'acme.bitrix24.kr:8443',
      'a.b.bitrix24.kr',
      '127.0.0.1',
      'localhost',
    ]) {
      expect([host, isPortalHostAllowed(defaults, host)]).toEqual([host, false]);
      expect([host, isUnlistedCloudHost(defaults, host)]).toEqual([host, false]);
    }
  });

  it('calls an unlisted zone only when the OAuth server named it, and only while `*.bitrix24.*` is listed', () => {
    const url = 'https://acme.bitrix24.kr/rest/';
    expect(() => assertPortalUrl(defaults, 'acme.bitrix24.kr', url)).toThrow(/B24_PORTAL_HOSTS/);
    expect(() => assertPortalUrl(defaults, 'acme.bitrix24.kr', url, true)).not.toThrow();
    // Vouched for one portal is no licence to call another address.
    expect(() =>
      assertPortalUrl(defaults, 'acme.bitrix24.kr', 'https://x.bitrix24.kr/rest/', true),
    ).toThrow(/not the portal's domain/);
    const listedOnly = loadConfig({ ...base, B24_PORTAL_HOSTS: '*.bitrix24.com' });
    expect(listedOnly.b24.unlistedCloudZones).toBe(false);
    expect(() => assertPortalUrl(listedOnly, 'acme.bitrix24.kr', url, true)).toThrow(
      /B24_PORTAL_HOSTS/,
    );
    const optedIn = loadConfig({ ...base, B24_PORTAL_HOSTS: '*.bitrix24.com, *.bitrix24.*' });
    expect(optedIn.b24.portalHosts.map((p) => p.source)).toEqual(['*.bitrix24.com']);
    expect(isUnlistedCloudHost(optedIn, 'acme.bitrix24.kr')).toBe(true);
  });

  it('sends an unlisted zone without SERVER_ENDPOINT to the international OAuth server', () => {
    expect(zoneServerEndpoint(defaults, 'acme.bitrix24.kr')).toBe(
      'https://oauth.bitrix.info/rest/',
    );
    expect(zoneServerEndpoint(defaults, 'acme.bitrix24.mx')).toBe(
      'https://oauth.bitrix.info/rest/',
    );
  });
});
