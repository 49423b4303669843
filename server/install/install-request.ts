import { BadRequestError } from '../lib/errors.js';
import { parseEventBody } from '../intake/event-body.js';

/**
 * What an install request says, in one shape for both ways Bitrix24 installs an app
 * (https://apidocs.bitrix24.com/settings/app-installation/installation-finish.html): the installer
 * frame POST (query DOMAIN/PROTOCOL/LANG/APP_SID, form AUTH_ID, REFRESH_ID, …) and the "script
 * only" ONAPPINSTALL-style POST (`auth[...]`). Nothing in it is trusted yet.
 */
export interface InstallRequest {
  kind: 'frame' | 'event';
  /** Portal host as Bitrix24 sends it (`acme.bitrix24.com`, `127.0.0.1:8080`), lower-cased. */
  domain: string;
  clientEndpoint: string;
  serverEndpoint: string;
  memberId: string;
  accessToken: string;
  refreshToken: string | undefined;
  expiresInSec: number | undefined;
  /** The app's application_token when Bitrix24 sent it (never APP_SID). */
  applicationToken: string | undefined;
  plan: string | undefined;
  scope: string | undefined;
  lang: string | undefined;
  appVersion: string | undefined;
}

const DOMAIN = /^[a-z0-9.-]{1,253}(:\d{1,5})?$/;
const MEMBER_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const TOKEN = /^[\x21-\x7e]{8,512}$/;

const first = (v: unknown): string | undefined => {
  if (typeof v === 'string') return v;
  if (Array.isArray(v) && typeof v[0] === 'string') return v[0];
  return undefined;
};

function token(name: string, v: string | undefined, required: boolean): string | undefined {
  if (v === undefined || v === '') {
    if (required) throw new BadRequestError(`${name} is missing`);
    return undefined;
  }
  if (!TOKEN.test(v)) throw new BadRequestError(`${name} is malformed`);
  return v;
}

function domainOf(v: string | undefined, name: string): string {
  const d = (v ?? '').trim().toLowerCase();
  if (!DOMAIN.test(d)) throw new BadRequestError(`${name} must be a portal host name`);
  return d;
}

function memberIdOf(v: string | undefined): string {
  if (!v || !MEMBER_ID.test(v)) throw new BadRequestError('member_id is missing or malformed');
  return v;
}

function seconds(v: string | undefined): number | undefined {
  if (!v || !/^\d{1,9}$/.test(v)) return undefined;
  return Number(v);
}

/** Parses the install POST: `query` as Express gives it, `raw` the form body as text. */
export function parseInstallRequest(query: Record<string, unknown>, raw: string): InstallRequest {
  if (/(^|&)event=/i.test(raw) && /(^|&)auth(%5B|\[)/i.test(raw)) {
    const d = parseEventBody(raw);
    if (d.event !== 'ONAPPINSTALL')
      throw new BadRequestError(`expected ONAPPINSTALL, got ${d.event}`);
    const a = d.auth;
    const domain = domainOf(a.domain, 'auth[domain]');
    const data = d.data as Record<string, unknown>;
    return {
      kind: 'event',
      domain,
      clientEndpoint: a.client_endpoint || `https://${domain}/rest/`,
      serverEndpoint: a.server_endpoint ?? '',
      memberId: memberIdOf(a.member_id),
      accessToken: token('auth[access_token]', a.access_token, true)!,
      refreshToken: token('auth[refresh_token]', a.refresh_token, false),
      expiresInSec: seconds(a.expires_in),
      applicationToken: token('auth[application_token]', a.application_token, false),
      plan: a.status,
      scope: a.scope,
      lang: typeof data.LANGUAGE_ID === 'string' ? data.LANGUAGE_ID : undefined,
      appVersion: typeof data.VERSION === 'string' ? data.VERSION : undefined,
    };
  }
  const form = new URLSearchParams(raw);
  const f = (k: string) => form.get(k) ?? undefined;
  const domain = domainOf(first(query.DOMAIN), 'DOMAIN');
  const https = (first(query.PROTOCOL) ?? '1') !== '0';
  return {
    kind: 'frame',
    domain,
    clientEndpoint: `${https ? 'https' : 'http'}://${domain}/rest/`,
    serverEndpoint: f('SERVER_ENDPOINT') ?? '',
    memberId: memberIdOf(f('member_id')),
    accessToken: token('AUTH_ID', f('AUTH_ID'), true)!,
    refreshToken: token('REFRESH_ID', f('REFRESH_ID'), false),
    expiresInSec: seconds(f('AUTH_EXPIRES')),
    applicationToken: token('APPLICATION_TOKEN', f('APPLICATION_TOKEN'), false),
    plan: f('status'),
    scope: f('APPLICATION_SCOPE'),
    lang: first(query.LANG),
    appVersion: undefined,
  };
}
