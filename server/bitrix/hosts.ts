import type { Config } from '../config.js';
import type { PortalRow } from '../../db/stores/portals.js';
import type { PrivateHosts } from '../lib/address-policy.js';
import { matchesAnyHost } from '../lib/host-pattern.js';
import { NotAllowedHostError } from './errors.js';

/** `host[:port]` of a URL, lower-cased, without the default port of its scheme. */
export function hostOf(url: string): string | undefined {
  try {
    const u = new URL(url);
    if (u.protocol !== 'http:' && u.protocol !== 'https:') return undefined;
    return u.host.toLowerCase();
  } catch {
    return undefined;
  }
}

/** Whether `host` (as Bitrix24 sends DOMAIN: `name[:port]`) matches B24_PORTAL_HOSTS. */
export function isPortalHostAllowed(config: Pick<Config, 'b24'>, host: string): boolean {
  return matchesAnyHost(config.b24.portalHosts, host.toLowerCase());
}

/**
 * The shape of a Bitrix24 cloud portal's address, `b24-xxx.bitrix24.yy`
 * (DOCS:settings/how-to-call-rest-api/change-domen.md): one name, `bitrix24`, then a zone of
 * one label or a country's `com.`/`co.` one (`bitrix24.com.br`). No port, no deeper name:
 * `acme.bitrix24.co.evil.com` and `bitrix24.evil.com` are not of it.
 */
const CLOUD_PORTAL =
  /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.bitrix24\.(?:[a-z]{2,3}|(?:com|co)\.[a-z]{2})$/;

/**
 * A host outside B24_PORTAL_HOSTS's patterns that may still be a portal: B24_PORTAL_HOSTS holds
 * `*.bitrix24.*` (the default) and the host has the cloud shape. Only an OAuth server's word
 * makes it callable (`vouched` in assertPortalUrl): a name alone is anyone's.
 */
export function isUnlistedCloudHost(config: Pick<Config, 'b24'>, host: string): boolean {
  const h = host.toLowerCase();
  return config.b24.unlistedCloudZones && CLOUD_PORTAL.test(h) && !isPortalHostAllowed(config, h);
}

/**
 * Whether a stored portal's address was named by the OAuth server: an OAuth install the
 * server confirmed (member_id and client endpoint, with our client credentials), whose later
 * moves come only from the same server's answers (refresh.ts).
 */
export function isVouchedPortal(
  row: Pick<PortalRow, 'auth_mode' | 'install_confirmed_at'>,
): boolean {
  return row.auth_mode === 'oauth' && row.install_confirmed_at !== null;
}

/** The origin of an OAuth server endpoint when it is one of B24_OAUTH_SERVERS, else undefined. */
export function allowedOAuthOrigin(
  config: Pick<Config, 'b24'>,
  serverEndpoint: string,
): string | undefined {
  let origin: string;
  try {
    origin = new URL(serverEndpoint).origin;
  } catch {
    return undefined;
  }
  return config.b24.oauthServers.includes(origin) ? origin : undefined;
}

/**
 * The SERVER_ENDPOINT of a portal whose install POST sent none (older portals; see
 * https://apidocs.bitrix24.com/settings/app-installation/mass-market-apps/installation-callback.html): the OAuth server of its zone from B24_OAUTH_ZONE_SERVERS, as `<origin>/rest/`. The
 * caller still checks it against B24_OAUTH_SERVERS like any other.
 */
export function zoneServerEndpoint(
  config: Pick<Config, 'b24'>,
  domain: string,
): string | undefined {
  const host = domain.toLowerCase().replace(/:\d+$/, '');
  for (const { zone, origin } of config.b24.oauthZoneServers) {
    if (zone === '*' || host === zone || host.endsWith(`.${zone}`)) return `${origin}/rest/`;
  }
  return undefined;
}

/**
 * The one gate before a token leaves: the URL must be http(s), its host must equal the
 * portal's stored domain and match B24_PORTAL_HOSTS, or be a cloud address of an unlisted
 * zone that the OAuth server named as this portal's (`vouched`). Throws without contacting
 * anyone.
 */
export function assertPortalUrl(
  config: Pick<Config, 'b24'>,
  domain: string,
  url: string,
  vouched = false,
): void {
  const host = hostOf(url);
  if (!host || host !== domain.toLowerCase()) {
    throw new NotAllowedHostError(
      `refusing to call ${host ?? 'an invalid URL'}: not the portal's domain`,
    );
  }
  if (!isPortalHostAllowed(config, host) && !(vouched && isUnlistedCloudHost(config, host))) {
    throw new NotAllowedHostError(`refusing to call ${host}: not in B24_PORTAL_HOSTS`);
  }
}

/**
 * Where requests to portals and OAuth servers may connect, as the address policy of rule steps
 * (server/lib/address-policy.ts) reads it. A wildcard of B24_PORTAL_HOSTS (`*.bitrix24.com`)
 * admits names a stranger picks at install, whose DNS answers are not ours: they may only
 * reach public addresses. A host or IP the operator names exactly (`crm.example.org`,
 * `127.0.0.1:*`) and the hosts of B24_OAUTH_SERVERS are trusted when a URL names them: an IP
 * is kept as a name, not a range, so a wildcard name that resolves to it is still refused.
 */
export function portalAddressAllowance(config: Pick<Config, 'b24'>): PrivateHosts {
  const exact = config.b24.portalHosts
    .map((p) => p.source.replace(/:(\*|\d+)$/, ''))
    .filter((h) => !h.startsWith('*.'));
  const oauth = config.b24.oauthServers.map((o) => new URL(o).hostname.replace(/^\[|\]$/g, ''));
  return { hosts: [...exact, ...oauth].map((h) => h.toLowerCase()), ranges: [] };
}
