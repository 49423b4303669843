import { parseHostPattern, type HostPattern } from '../lib/host-pattern.js';
import { eventTypo, isBindableEvent } from './bitrix-events.js';
import { list, type EnvReader } from './reader.js';
import type { Config } from './types.js';

export const DEFAULT_OAUTH_SERVERS = ['https://oauth.bitrix.info', 'https://oauth.bitrix24.tech'];

/**
 * Which OAuth server a portal uses when its install POST names none: Russian-zone portals
 * (.ru, .by, .kz) are served by oauth.bitrix24.tech, every other by oauth.bitrix.info
 * (bitrix-tools/b24-rest-docs: settings/oauth/auto-renewal.md; bitrix24/b24phpsdk
 * DefaultOAuthServerUrl east()/west()).
 */
export const DEFAULT_OAUTH_ZONE_SERVERS =
  'ru=https://oauth.bitrix24.tech,by=https://oauth.bitrix24.tech,kz=https://oauth.bitrix24.tech,' +
  '*=https://oauth.bitrix.info';

/**
 * The cloud zones Bitrix24 portals live on: new portals get `b24-xxx.bitrix24.yy` and keep the
 * zone when renamed (bitrix24/b24restdocs settings/how-to-call-rest-api/change-domen.md), the
 * zone of their region's Bitrix24 site. The regions' sites, as Bitrix24's own code names them:
 *   [R] core `rest` module lib/dictionary/remotedictionary.php, `RemoteDictionary::$baseUrl`
 *       (regional `https://www.bitrix24.<zone>/util/`, also in b24restdocs
 *       settings/cloud-and-on-premise/network-access.md, and for ru/by/kz in
 *       bitrix-tools/b24-rest-docs settings/cloud-and-on-premise/network-access.md);
 *   [S] core `sign` module .settings.php, `bitrix.service.domain.address` (the site per
 *       license region).
 * A zone missing here is still accepted when Bitrix24's OAuth server names the portal there
 * (UNLISTED_CLOUD_ZONES below).
 */
export const CLOUD_ZONES = [
  'bitrix24.com', // [R] en, [S] us/en/la/sc/hi/ms/th
  'bitrix24.ru', // [R] [S]
  'bitrix24.by', // [R] [S]
  'bitrix24.kz', // [R]
  'bitrix24.ua', // [R]
  'bitrix24.de', // [R] [S]
  'bitrix24.eu', // [R] [S]
  'bitrix24.es', // [R] la, [S] es
  'bitrix24.fr', // [R] [S]
  'bitrix24.pl', // [R] [S]
  'bitrix24.it', // [S]
  'bitrix24.uk', // [S]
  'bitrix24.in', // [R] [S]
  'bitrix24.com.br', // [R] [S] br
  'bitrix24.com.tr', // [R] [S] tr
  'bitrix24.cn', // [R] cn/tc/sc, [S] cn/tc
  'bitrix24.jp', // [S]
  'bitrix24.vn', // [S]
  'bitrix24.id', // [S]
  'bitrix24.co', // [S] co (Colombia)
  'bitrix24.mx', // [S] mx (Mexico: bitrix24.mx, not .com.mx)
];

/**
 * The entry of B24_PORTAL_HOSTS that stands for a Bitrix24 cloud zone not in CLOUD_ZONES: a
 * `name.bitrix24.<zone>` address is called only after an OAuth server of B24_OAUTH_SERVERS,
 * asked with the app's own client credentials, names it as the portal's (server/bitrix/hosts.ts
 * `isUnlistedCloudHost`). Part of the default; an operator who lists hosts keeps it or not.
 */
export const UNLISTED_CLOUD_ZONES = '*.bitrix24.*';

/** Bitrix24 cloud domains: the zones above, and any other one the OAuth server vouches for. */
export const DEFAULT_PORTAL_HOSTS = [...CLOUD_ZONES.map((d) => `*.${d}`), UNLISTED_CLOUD_ZONES];

/** `B24_OAUTH_SERVERS`: the origins the client secret may be sent to. */
function oauthServers(r: EnvReader): string[] {
  const out: string[] = [];
  for (const s of list(r.env.B24_OAUTH_SERVERS) ?? DEFAULT_OAUTH_SERVERS) {
    try {
      const u = new URL(s);
      if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('scheme');
      out.push(u.origin);
    } catch {
      r.problems.push(`B24_OAUTH_SERVERS: "${s}" is not a URL (expected https://host)`);
    }
  }
  return out;
}

/** `B24_PORTAL_HOSTS`: host patterns the app may call as a portal. */
function portalHosts(r: EnvReader): { patterns: HostPattern[]; unlistedCloud: boolean } {
  const out: HostPattern[] = [];
  let unlistedCloud = false;
  for (const p of list(r.env.B24_PORTAL_HOSTS) ?? DEFAULT_PORTAL_HOSTS) {
    if (p.trim().toLowerCase() === UNLISTED_CLOUD_ZONES) {
      unlistedCloud = true;
      continue;
    }
    try {
      out.push(parseHostPattern(p));
    } catch (e) {
      r.problems.push(`B24_PORTAL_HOSTS: ${(e as Error).message}`);
    }
  }
  return { patterns: out, unlistedCloud };
}

/** `B24_OAUTH_ZONE_SERVERS`: `zone=URL` entries. */
function oauthZoneServers(r: EnvReader): Array<{ zone: string; origin: string }> {
  const out: Array<{ zone: string; origin: string }> = [];
  for (const entry of list(r.env.B24_OAUTH_ZONE_SERVERS) ?? list(DEFAULT_OAUTH_ZONE_SERVERS)!) {
    const eq = entry.indexOf('=');
    const zone = entry.slice(0, eq).trim().toLowerCase().replace(/^\./, '');
    let origin = '';
    try {
      const u = new URL(entry.slice(eq + 1));
      if (u.protocol === 'https:' || u.protocol === 'http:') origin = u.origin;
    } catch {
      origin = '';
    }
    if (eq <= 0 || !/^(\*|[a-z0-9.-]+)$/.test(zone) || !origin) {
      r.problems.push(
        `B24_OAUTH_ZONE_SERVERS: "${entry}" is not zone=URL (e.g. ru=https://oauth.bitrix24.tech)`,
      );
    } else out.push({ zone, origin });
  }
  return out;
}

/** The `B24_*` variables: the app's credentials, whom it trusts, what it binds. */
export function parseBitrix24(r: EnvReader): Config['b24'] {
  const { env, problems } = r;
  const servers = oauthServers(r);
  const hosts = portalHosts(r);
  const zones = oauthZoneServers(r);
  const insecureRaw = (env.B24_INSECURE_DEV_INSTALL ?? '0').trim().toLowerCase();
  if (!['1', '0', 'true', 'false', 'on', 'off', ''].includes(insecureRaw)) {
    problems.push(`B24_INSECURE_DEV_INSTALL: expected 1 or 0, got "${insecureRaw}"`);
  }
  const events = list(env.B24_EVENTS)?.map((e) => e.toUpperCase());
  for (const e of events ?? []) {
    if (!/^[A-Z0-9_]+$/.test(e)) problems.push(`B24_EVENTS: "${e}" is not an event name`);
    else if (!isBindableEvent(e)) {
      const meant = eventTypo(e);
      if (meant)
        problems.push(`B24_EVENTS: "${e}" is not a Bitrix24 event; did you mean ${meant}?`);
    }
  }
  const offlineRaw = (env.B24_OFFLINE_EVENTS ?? 'on').trim().toLowerCase();
  if (!['on', 'off', 'true', 'false', '1', '0'].includes(offlineRaw)) {
    problems.push(`B24_OFFLINE_EVENTS: expected on or off, got "${offlineRaw}"`);
  }
  // One of the pair alone is a paste that went wrong, not a choice: every install would be
  // refused with a message naming both, long after the start.
  const clientId = r.text('B24_CLIENT_ID');
  const clientSecret = r.text('B24_CLIENT_SECRET');
  if (!clientId !== !clientSecret) {
    const [set, missing] = clientId
      ? ['B24_CLIENT_ID', 'B24_CLIENT_SECRET']
      : ['B24_CLIENT_SECRET', 'B24_CLIENT_ID'];
    problems.push(
      `${missing} is not set but ${set} is: set both (from the Bitrix24 application form), or neither`,
    );
  }
  return {
    clientId,
    clientSecret,
    oauthServers: servers,
    oauthZoneServers: zones,
    appCode: r.text('B24_APP_CODE') ?? r.text('B24_CLIENT_ID'),
    insecureDevInstall: ['1', 'true', 'on'].includes(insecureRaw),
    portalHosts: hosts.patterns,
    unlistedCloudZones: hosts.unlistedCloud,
    events,
    offlineEvents: !['off', 'false', '0'].includes(offlineRaw),
    offlineMinTimeoutSec: r.int('B24_OFFLINE_MIN_TIMEOUT', 60, 60, 86_400),
    jsSdkUrl: r.url('B24_JS_SDK_URL', 'https://api.bitrix24.com/api/v1/') ?? '',
  };
}
