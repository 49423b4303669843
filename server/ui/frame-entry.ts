import type { IncomingHttpHeaders } from 'node:http';
import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { safeEqual } from '../lib/crypto.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { isPortalHostAllowed, isUnlistedCloudHost, isVouchedPortal } from '../bitrix/hosts.js';
import type { ProbeOptions, TokenTarget } from '../bitrix/rest.js';
import { tokenColumns } from '../bitrix/oauth.js';
import { askPortalAboutToken } from '../install/token-proof.js';
import { countProbeRefusal, guardedProbe } from '../install/probe-guard.js';
import {
  findPortalById,
  findPortalByMemberId,
  updatePortal,
  type PortalRow,
} from '../../db/stores/portals.js';
import { confirmedEntry, rememberEntry } from './entry-cache.js';
import { uiLang } from './i18n.js';
import type { UiUser } from './session.js';
import { isTimeZone, offsetOfDateString } from './time.js';

/** A frame POST that is refused; the message is safe to show, the detail goes to the log. */
export class EntryRefusedError extends AppError {
  constructor(status: 400 | 401 | 403 | 503, message: string) {
    super(status === 403 ? 'FORBIDDEN' : status === 400 ? 'BAD_REQUEST' : 'UNAUTHORIZED', message, {
      status,
      expose: true,
    });
    this.name = 'EntryRefusedError';
  }
}

export interface FrameEntry {
  portal: PortalRow;
  user: UiUser;
  placement: string;
  /** PLACEMENT_OPTIONS parsed (`{"ID":"8061"}` for a deal tab), {} when absent or not JSON. */
  placementOptions: Record<string, unknown>;
  /** The AUTH_ID the portal confirmed: the session keeps it to re-check the rights. */
  authId: string;
  /**
   * The REFRESH_ID Bitrix24 posts beside it (b24restdocs settings/oauth/simple-way.md): an
   * session keeps it to renew AUTH_ID after its hour. Undefined when absent or malformed.
   */
  refreshId: string | undefined;
  /** When the portal confirmed it (earlier than now for an entry let in on entry-cache.ts). */
  checkedAt: number;
}

const MEMBER_ID = /^[A-Za-z0-9_.-]{1,64}$/;
const TOKEN = /^[\x21-\x7e]{8,512}$/;

const first = (v: unknown): string | undefined =>
  typeof v === 'string' ? v : Array.isArray(v) && typeof v[0] === 'string' ? v[0] : undefined;

export { uiLang } from './i18n.js';

function parseOptions(raw: string | undefined): Record<string, unknown> {
  if (!raw || raw === 'undefined') return {};
  try {
    const v: unknown = JSON.parse(raw);
    return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** When each portal's address was last asked of the OAuth server for a frame entry. */
const movedChecks = new Map<string, number>();
/** At most one such refresh per portal in this long, however many entries ask. */
const MOVED_CHECK_MS = 5 * 60_000;

/**
 * A frame entry names another DOMAIN than the stored one: the portal may have been renamed
 * (DOCS:settings/how-to-call-rest-api/change-domen.md), which the app learns only from a
 * token answer. One refresh (at most every MOVED_CHECK_MS per portal, and only for a host in
 * B24_PORTAL_HOSTS or a cloud address of an unlisted zone) asks the OAuth server; refresh.ts keeps the new address it names. The
 * portal as it is afterwards, or undefined.
 */
async function movedPortal(
  deps: Deps,
  portal: PortalRow,
  domain: string,
): Promise<PortalRow | undefined> {
  const mayBe =
    isPortalHostAllowed(deps.config, domain) || isUnlistedCloudHost(deps.config, domain);
  if (portal.auth_mode === 'webhook' || !mayBe) return undefined;
  const now = deps.clock.now().getTime();
  if (now - (movedChecks.get(portal.member_id) ?? -Infinity) < MOVED_CHECK_MS) return undefined;
  movedChecks.set(portal.member_id, now);
  try {
    return await deps.bitrix.refresh(portal);
  } catch (e) {
    deps.logger.info(
      { memberId: portal.member_id, err: e },
      'frame entry: refresh for a new DOMAIN failed',
    );
    return undefined;
  }
}

/**
 * Whether a frame entry was posted by the portal's own page, as Bitrix24 posts it into the
 * app's iframe: a browser names the page's origin in `Origin` on every cross-origin POST.
 * Otherwise anyone could post an entry with valid credentials of their own portal from
 * their site (login CSRF), and the victim's browser would open that portal in the app
 * top-level, where the victim would configure it (alert chats, steps with their secrets)
 * believing it theirs. `Origin: null` (the page's Referrer-Policy is no-referrer) is taken
 * only into a frame (`Sec-Fetch-Dest`), where the pages that follow show only under the
 * portal the session belongs to (frame-ancestors). No `Origin` at all is not a browser's
 * cross-site form.
 */
export function postedByPortalPage(headers: IncomingHttpHeaders, domain: string): boolean {
  const origin = headers.origin;
  if (origin === undefined) return true;
  if (origin === 'null') {
    const dest = headers['sec-fetch-dest'];
    return dest === 'iframe' || dest === 'frame';
  }
  // The host, not the port: on an on-premise portal Bitrix24 builds DOMAIN on the server
  // (rest module, app.layout: the request's host plus PHP's server port unless 80 or 443), so
  // behind a TLS proxy or a web server on another port it names a port the browser does not
  // see (`crm.example.org:8888`, `:443`), although the page is the portal's own. A page on
  // another port of the portal's own host is the portal operator's anyway.
  try {
    return new URL(origin).hostname.toLowerCase() === hostWithoutPort(domain);
  } catch {
    return false;
  }
}

/** `crm.example.org:8443` → `crm.example.org` (an IPv6 literal keeps its brackets). */
function hostWithoutPort(domain: string): string {
  return domain.toLowerCase().replace(/:\d{1,5}$/, '');
}

/**
 * Verifies what Bitrix24 POSTs into the app frame or a placement
 * (https://apidocs.bitrix24.com/settings/oauth/simple-way.html,
 * https://apidocs.bitrix24.com/api-reference/widgets/index.html), contacting nobody until the claim
 * is consistent with what install stored:   0. the POST came from a page of the portal's
 *      own site (postedByPortalPage);
 *   1. member_id names an installed portal;
 *   2. query DOMAIN equals that portal's stored domain (AUTH_ID is never sent elsewhere);
 *   3. APPLICATION_TOKEN, when sent, matches the stored digest;
 *   4. `profile` and `app.info` with AUTH_ID on the stored client endpoint: the token is
 *      live on that portal, is our app's (another app's token passes `profile` too), and
 *      names the user and whether they are an administrator. Both calls take the portal's
 *      REST budget only if it has room within a few seconds; otherwise the entry is
 *      refused with 503 at once (a flood of frame posts cannot queue up calls).
 */
export async function verifyFrameEntry(
  deps: Deps,
  query: Record<string, unknown>,
  raw: string,
  headers: IncomingHttpHeaders = {},
  /**
   * The entry is one kept by entry-retry.ts and posted again by our own retry page (the
   * caller checked postedByOwnPage): it passed postedByPortalPage when first posted.
   */
  retried = false,
): Promise<FrameEntry> {
  const form = new URLSearchParams(raw);
  const memberId = form.get('member_id') ?? '';
  const authId = form.get('AUTH_ID') ?? '';
  const postedRefresh = form.get('REFRESH_ID') ?? '';
  const refreshId = TOKEN.test(postedRefresh) ? postedRefresh : undefined;
  const domain = (first(query.DOMAIN) ?? '').trim().toLowerCase();
  if (!MEMBER_ID.test(memberId)) throw new EntryRefusedError(400, 'member_id is missing.');
  if (!TOKEN.test(authId)) throw new EntryRefusedError(400, 'AUTH_ID is missing or malformed.');
  if (!retried && !postedByPortalPage(headers, domain)) {
    deps.logger.warn(
      { memberId, origin: String(headers.origin), dest: String(headers['sec-fetch-dest']) },
      'frame refused: posted by a page of another site than the portal',
    );
    throw new EntryRefusedError(403, 'Open this application from Bitrix24.');
  }

  let portal = await findPortalByMemberId(deps.db, memberId);
  if (!portal || portal.status === 'uninstalled') {
    deps.logger.info({ memberId }, 'frame refused: unknown or uninstalled portal');
    throw new EntryRefusedError(401, 'The application is not installed on this portal.');
  }
  // Before anything costs a call: a wrong application token refuses at once.
  const appToken = form.get('APPLICATION_TOKEN');
  let vouched = false;
  if (appToken && portal.application_token_digest) {
    if (!safeEqual(deps.box.digest(appToken), portal.application_token_digest)) {
      deps.logger.warn({ memberId }, 'frame refused: APPLICATION_TOKEN mismatch');
      throw new EntryRefusedError(401, 'The portal did not confirm the authorization.');
    }
    vouched = true;
  }
  if (domain !== portal.domain.toLowerCase())
    portal = (await movedPortal(deps, portal, domain)) ?? portal;
  if (domain !== portal.domain.toLowerCase()) {
    deps.logger.warn(
      { memberId, stored: portal.domain, claimed: domain },
      'frame refused: DOMAIN differs from the portal the member_id is bound to',
    );
    throw new EntryRefusedError(403, 'This portal is registered under another address.');
  }

  const https = (first(query.PROTOCOL) ?? '1') !== '0';
  const clientEndpoint = portal.client_endpoint ?? `${https ? 'https' : 'http'}://${domain}/rest/`;
  // The stored portal, at the address the OAuth server named (a zone B24_PORTAL_HOSTS does
  // not list is callable only on its word: hosts.ts).
  const target = {
    memberId,
    domain: portal.domain,
    clientEndpoint,
    vouched: isVouchedPortal(portal),
  };
  const now = deps.clock.now().getTime();
  // Entries that carried the portal's application token (which Bitrix24 posts into its own
  // users' frames and a stranger does not know) are counted apart from those that did not:
  // a stranger's flood of made-up AUTH_IDs then guards only entries like its own, and the
  // portal's users are checked on its whole budget meanwhile.
  const lane = vouched ? `${memberId}\u0000vouched` : memberId;
  const probe = guardedProbe(lane, now);
  // The same AUTH_ID confirmed by this portal a few minutes ago: let in on that answer.
  const cacheKey = `${portal.id}:${deps.box.digest(authId)}`;
  const known = confirmedEntry(cacheKey, now);
  if (known) {
    return {
      portal,
      user: {
        portalId: portal.id,
        memberId,
        userId: known.userId,
        isAdmin: known.isAdmin,
        lang: uiLang(first(query.LANG)),
        timeZone: known.timeZone,
        name: known.name,
      },
      placement: form.get('PLACEMENT') ?? 'DEFAULT',
      placementOptions: parseOptions(form.get('PLACEMENT_OPTIONS') ?? undefined),
      authId,
      refreshId: sessionsRefresh(deps, portal, refreshId),
      checkedAt: known.at,
    };
  }
  let holder;
  try {
    holder = await askPortalAboutToken(deps, target, authId, probe);
  } catch (e) {
    if (isBitrixApiError(e) && e.retryable) {
      throw new EntryRefusedError(503, 'The portal is not answering. Please try again shortly.');
    }
    countProbeRefusal(lane, now);
    deps.logger.info({ memberId, err: e }, 'frame refused: AUTH_ID not confirmed by the portal');
    throw new EntryRefusedError(401, 'The portal did not confirm the authorization.');
  }
  const { userId, isAdmin } = holder;
  if (!Number.isInteger(userId) || userId <= 0) {
    throw new EntryRefusedError(401, 'The portal did not name the user.');
  }
  const timeZone = await userTimeZone(deps, target, authId, holder.timeZone, probe);
  rememberEntry(cacheKey, { userId, isAdmin, timeZone, name: holder.name, at: now });
  const resumed = isAdmin ? await resumeAfterReauth(deps, portal, form) : portal;
  return {
    portal: resumed,
    user: {
      portalId: portal.id,
      memberId,
      userId,
      isAdmin,
      lang: uiLang(first(query.LANG)),
      timeZone,
      name: holder.name,
    },
    placement: form.get('PLACEMENT') ?? 'DEFAULT',
    placementOptions: parseOptions(form.get('PLACEMENT_OPTIONS') ?? undefined),
    authId,
    refreshId: sessionsRefresh(deps, resumed, refreshId),
    checkedAt: now,
  };
}

/**
 * The REFRESH_ID a session may keep to renew the user's pair (admin-check.ts): not one that
 * is the portal's own (an admin's frame pair becomes the portal's when it resumes from
 * needs_reauth, resumeAfterReauth). A refresh token is spent by its first use, so the
 * portal's refresher alone may use it: a session renewing it first would leave the portal
 * to meet invalid_grant, needs_reauth again and its events paused.
 */
function sessionsRefresh(
  deps: Pick<Deps, 'box'>,
  portal: PortalRow,
  refreshId: string | undefined,
): string | undefined {
  if (refreshId === undefined || !portal.refresh_token_enc) return refreshId;
  try {
    return safeEqual(deps.box.decrypt(portal.refresh_token_enc), refreshId) ? undefined : refreshId;
  } catch {
    return refreshId;
  }
}

/**
 * The zone times are shown in: the user's own (`profile` TIME_ZONE) when set, else the
 * portal's, read as the offset of `server.time` (b24restdocs
 * api-reference/common/system/server-time.md: `YYYY-MM-DDThh:mm:ss±hh:mm`, the portal's
 * time), else UTC when the portal does not answer (the page still opens).
 */
async function userTimeZone(
  deps: Deps,
  target: TokenTarget,
  authId: string,
  own: string,
  probe: ProbeOptions,
): Promise<string> {
  if (own && isTimeZone(own)) return own;
  try {
    const now = await deps.bitrix.probe<string>(
      target,
      { accessToken: authId },
      'server.time',
      {},
      probe,
    );
    return offsetOfDateString(now) ?? 'UTC';
  } catch (e) {
    deps.logger.info({ memberId: target.memberId, err: e }, 'server.time failed; times in UTC');
    return 'UTC';
  }
}

/**
 * A portal paused in `needs_reauth` (its refresh token was refused) resumes when an admin
 * opens the app: the frame's AUTH_ID was just confirmed by the stored portal, and its
 * REFRESH_ID comes with it, so the pair replaces the dead one and processing goes on.
 */
async function resumeAfterReauth(
  deps: Deps,
  portal: PortalRow,
  form: URLSearchParams,
): Promise<PortalRow> {
  const refreshId = form.get('REFRESH_ID') ?? '';
  if (portal.status !== 'needs_reauth' || !TOKEN.test(refreshId)) return portal;
  const now = deps.clock.now().getTime();
  const expires = Number(form.get('AUTH_EXPIRES') ?? 3600);
  await updatePortal(deps.db, portal.id, {
    ...tokenColumns(
      deps.box,
      {
        accessToken: form.get('AUTH_ID') ?? '',
        refreshToken: refreshId,
        expiresInSec: Number.isFinite(expires) ? expires : 3600,
      },
      now,
    ),
    status: 'installed',
    updated_at: now,
  });
  deps.portals.invalidate(portal.member_id);
  deps.logger.info(
    { memberId: portal.member_id },
    'portal re-authorised by an admin opening the app; processing resumes',
  );
  return (await findPortalById(deps.db, portal.id)) ?? portal;
}

/** The origin that may frame our pages: the portal's, with the scheme of its REST endpoint. */
export function portalOrigin(portal: Pick<PortalRow, 'domain' | 'client_endpoint'>): string {
  try {
    if (portal.client_endpoint) {
      const u = new URL(portal.client_endpoint);
      if (u.host.toLowerCase() === portal.domain.toLowerCase()) return u.origin;
    }
  } catch {
    // fall through
  }
  return `https://${portal.domain}`;
}
