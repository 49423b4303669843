import type { Config } from '../config.js';
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
 * portal's stored domain and match B24_PORTAL_HOSTS. Throws without contacting anyone.
 */
export function assertPortalUrl(config: Pick<Config, 'b24'>, domain: string, url: string): void {
  const host = hostOf(url);
  if (!host || host !== domain.toLowerCase()) {
    throw new NotAllowedHostError(
      `refusing to call ${host ?? 'an invalid URL'}: not the portal's domain`,
    );
  }
  if (!isPortalHostAllowed(config, host)) {
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
