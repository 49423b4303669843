import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { resolveUnverified } from '../intake/reverify.js';
import { findPortalByMemberId, upsertPortal, type PortalRow } from '../../db/stores/portals.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import {
  allowedOAuthOrigin,
  hostOf,
  isPortalHostAllowed,
  isUnlistedCloudHost,
  zoneServerEndpoint,
} from '../bitrix/hosts.js';
import { tokenColumns } from '../bitrix/oauth.js';
import {
  askOAuthServer,
  askPortalAboutToken,
  ForeignAppTokenError,
  type OAuthVerdict,
} from './token-proof.js';
import type { RefreshAnswer } from '../bitrix/oauth.js';
import type { InstallRequest } from './install-request.js';
import { syncBindings, type BindingSync } from './bindings.js';
import { countProbeRefusal, guardedProbe } from './probe-guard.js';

/** An install that is refused: `status` is the HTTP answer, the message safe to show. */
export class InstallRefusedError extends AppError {
  constructor(status: 400 | 401 | 403 | 503, message: string) {
    super(
      status === 403
        ? 'FORBIDDEN'
        : status === 401
          ? 'UNAUTHORIZED'
          : status === 503
            ? 'CONFIG'
            : 'BAD_REQUEST',
      message,
      { status, expose: true },
    );
    this.name = 'InstallRefusedError';
  }
}

/** Shown when the server has no client credentials and is not in insecure development mode. */
export const NOT_CONFIGURED_MESSAGE =
  'This server is not set up to accept installs: set B24_CLIENT_ID and B24_CLIENT_SECRET ' +
  '(the client id and secret from the Bitrix24 application form) and restart it. ' +
  'Only for a local demo, B24_INSECURE_DEV_INSTALL=1 accepts installs without that proof.';

/**
 * What the operator must know at start about installs, or undefined when they are proven
 * normally: installs are refused (no client credentials), or accepted without proof
 * (B24_INSECURE_DEV_INSTALL). `level` says how loudly to log it.
 */
export function installReadiness(
  config: Deps['config'],
): { level: 'warn' | 'error'; message: string } | undefined {
  if (config.b24.clientId && config.b24.clientSecret) return undefined;
  if (config.b24.insecureDevInstall) {
    return {
      level: 'error',
      message:
        'INSECURE DEVELOPMENT MODE (B24_INSECURE_DEV_INSTALL=1): installs are accepted without ' +
        'the OAuth server confirming them, so anyone reaching the install URL can claim any ' +
        'portal. Never use it on a public address; set B24_CLIENT_ID and B24_CLIENT_SECRET.',
    };
  }
  return {
    level: 'warn',
    message:
      'B24_CLIENT_ID and B24_CLIENT_SECRET are not set: installs are refused until they are ' +
      '(copy them from the Bitrix24 application form).',
  };
}

export interface InstallOutcome {
  portal: PortalRow;
  userId: number;
  sync: BindingSync;
}

/**
 * A cloud address of a zone B24_PORTAL_HOSTS does not list (`acme.bitrix24.kr`): a genuine
 * portal if the OAuth server, asked with the app's own credentials, names this member_id's
 * portal there (token-proof.ts askOAuthServer). Nothing is sent to the address before; the
 * exchange's answer (its rotated pair) is returned for the install to use. Without client
 * credentials, or with any other verdict, the address is refused like any unknown host.
 */
async function vouchForUnlisted(
  deps: Deps,
  req: InstallRequest,
  serverEndpoint: string,
  canProve: boolean,
): Promise<RefreshAnswer> {
  const refused = new InstallRefusedError(
    403,
    'This portal address is not allowed (B24_PORTAL_HOSTS).',
  );
  if (!canProve || !req.refreshToken) throw refused;
  const verdict = await askOAuthServer(deps, {
    serverEndpoint,
    refreshToken: req.refreshToken,
    memberId: req.memberId,
    domain: req.domain,
  });
  if (verdict.kind === 'confirmed') {
    deps.logger.info(
      { memberId: req.memberId, domain: req.domain },
      'a Bitrix24 zone outside B24_PORTAL_HOSTS: the OAuth server names this portal there',
    );
    return verdict.answer;
  }
  deps.logger.warn(
    { memberId: req.memberId, domain: req.domain, detail: verdict.detail },
    'install refused: a host outside B24_PORTAL_HOSTS that the OAuth server does not name',
  );
  if (verdict.kind === 'unavailable') {
    throw new InstallRefusedError(
      503,
      'The Bitrix24 authorization server is not answering. Please try again in a few minutes.',
    );
  }
  throw refused;
}

/**
 * Checks everything an install request claims before anything is stored, in an order that
 * contacts nobody until the hosts are known good:
 *   0. the server can prove installs (B24_CLIENT_ID / B24_CLIENT_SECRET), or runs in the
 *      explicit insecure development mode;
 *   1. DOMAIN matches B24_PORTAL_HOSTS; SERVER_ENDPOINT (or, when the POST has none, the
 *      zone's default OAuth server) is in B24_OAUTH_SERVERS; the client endpoint is on
 *      DOMAIN; a known member_id keeps its stored domain. A cloud address of a zone that
 *      B24_PORTAL_HOSTS does not list (`*.bitrix24.*` in it) goes to step 3 first: only
 *      the OAuth server naming it as this member_id's portal lets anything be sent there;
 *   2. `profile` and `app.info` on the portal with AUTH_ID: the token is live there, is OUR
 *      app's, and its user is an admin;
 *   3. with the app's credentials, the refresh token is exchanged at the OAuth server, whose
 *      answer must name the same member_id and portal: that binds member_id to DOMAIN. When
 *      the OAuth server cannot be reached (network, 5xx), the frame's tokens are kept and
 *      the portal waits for its ONAPPINSTALL to confirm the install.
 * Then the portal is stored (tokens encrypted, application token as a digest only), events
 * that waited for the token are resolved, and the bindings are synced.
 */
export async function installPortal(deps: Deps, req: InstallRequest): Promise<InstallOutcome> {
  const { config, logger, box } = deps;
  const canProve = Boolean(config.b24.clientId && config.b24.clientSecret);
  if (!canProve && !config.b24.insecureDevInstall) {
    logger.error(
      { memberId: req.memberId },
      'install refused: B24_CLIENT_ID / B24_CLIENT_SECRET are not set (see README, Installing on a real portal)',
    );
    throw new InstallRefusedError(503, NOT_CONFIGURED_MESSAGE);
  }
  const unlisted = isUnlistedCloudHost(config, req.domain);
  if (!isPortalHostAllowed(config, req.domain) && !unlisted) {
    throw new InstallRefusedError(403, 'This portal address is not allowed (B24_PORTAL_HOSTS).');
  }
  // Many portals send no SERVER_ENDPOINT (real installer payloads in bitrix24/b24phpsdk's
  // tests have none): their zone's OAuth server then.
  const serverEndpoint = req.serverEndpoint || zoneServerEndpoint(config, req.domain) || '';
  if (!allowedOAuthOrigin(config, serverEndpoint)) {
    throw new InstallRefusedError(403, 'This OAuth server is not allowed (B24_OAUTH_SERVERS).');
  }
  if (hostOf(req.clientEndpoint) !== req.domain) {
    throw new InstallRefusedError(400, 'The client endpoint is not on the portal domain.');
  }
  const existing = await findPortalByMemberId(deps.db, req.memberId);
  // A member_id bound to another domain stays bound, unless that binding was never
  // confirmed (taken during an OAuth outage): then only a confirmed install replaces it.
  const rebinding = existing !== undefined && existing.domain.toLowerCase() !== req.domain;
  if (rebinding && (existing.install_confirmed_at !== null || !canProve)) {
    logger.warn(
      { memberId: req.memberId, stored: existing.domain, claimed: req.domain },
      'install refused: member_id is bound to another domain',
    );
    throw new InstallRefusedError(403, 'This portal is registered under another address.');
  }

  // An unlisted zone: the OAuth server must name this portal before it is contacted at all.
  const vouched = unlisted
    ? await vouchForUnlisted(deps, req, serverEndpoint, canProve)
    : undefined;
  const target = {
    memberId: req.memberId,
    domain: req.domain,
    clientEndpoint: req.clientEndpoint,
    vouched: vouched !== undefined,
  };
  // Anyone who knows a portal's member_id and domain can post installs with made-up
  // AUTH_IDs, each checked on the portal's REST budget: once they are refused often, the
  // checks take the lower half of it only (probe-guard.ts), so its events go on.
  const lane = `install\u0000${req.memberId}`;
  const probedAt = deps.clock.now().getTime();
  let holder;
  try {
    holder = await askPortalAboutToken(
      deps,
      target,
      vouched?.access_token ?? req.accessToken,
      guardedProbe(lane, probedAt),
    );
  } catch (e) {
    if (!(isBitrixApiError(e) && e.retryable)) countProbeRefusal(lane, probedAt);
    if (e instanceof ForeignAppTokenError) {
      logger.warn({ memberId: req.memberId, err: e.message }, 'install refused: foreign token');
      throw new InstallRefusedError(401, 'The authorization belongs to another application.');
    }
    if (isBitrixApiError(e) && !e.retryable) {
      throw new InstallRefusedError(401, 'The portal did not confirm the authorization.');
    }
    // The portal's budget is busy (a flood of such checks) or the portal is not answering:
    // a refusal to try again, not an error of ours logged with its stack for every post.
    if (isBitrixApiError(e)) {
      // With the cause: a portal name that resolves into our network is refused this way.
      logger.info({ memberId: req.memberId, err: e }, 'install not checked now');
      throw new InstallRefusedError(
        503,
        'The portal is busy or not answering. Please try again in a minute.',
      );
    }
    throw e;
  }
  const userId = holder.userId;
  if (!holder.isAdmin) {
    logger.info({ memberId: req.memberId, userId }, 'install refused: not an administrator');
    throw new InstallRefusedError(403, 'Only a portal administrator can install this application.');
  }
  if (!req.refreshToken) throw new InstallRefusedError(400, 'REFRESH_ID is missing.');

  let tokens = {
    accessToken: req.accessToken,
    refreshToken: req.refreshToken,
    expiresInSec: req.expiresInSec,
  };
  let clientEndpoint = req.clientEndpoint;
  let scope = req.scope;
  const nowMs = deps.clock.now().getTime();
  let confirmedAt: number | null = rebinding ? null : (existing?.install_confirmed_at ?? null);
  if (canProve) {
    const verdict: OAuthVerdict = vouched
      ? { kind: 'confirmed', answer: vouched }
      : await askOAuthServer(deps, {
          serverEndpoint,
          refreshToken: req.refreshToken,
          memberId: req.memberId,
          domain: req.domain,
        });
    if (verdict.kind === 'mismatch') {
      logger.warn(
        { memberId: req.memberId, domain: req.domain, detail: verdict.detail },
        'install refused: the OAuth server names another portal',
      );
      throw new InstallRefusedError(403, 'The authorization belongs to another portal.');
    }
    if (verdict.kind === 'refused' && verdict.credentials) {
      // The operator's B24_CLIENT_ID / B24_CLIENT_SECRET, not the portal: the admin is told
      // whom to ask, and the log says what to check.
      // The same answers say the app is not installed on the portal (a token of a removed
      // install): both are named, and at warn, since anyone holding such a token can post it.
      logger.warn(
        { memberId: req.memberId, domain: req.domain, detail: verdict.detail },
        'install refused: the OAuth server refused our client credentials for this portal (the app not installed there, or B24_CLIENT_ID / B24_CLIENT_SECRET not those of the app registration: check them if every install fails)',
      );
      throw new InstallRefusedError(
        401,
        "Bitrix24 refused this app's credentials for this portal: the app may not be installed here, or its operator should check B24_CLIENT_ID and B24_CLIENT_SECRET.",
      );
    }
    if (verdict.kind === 'refused') {
      logger.warn(
        { memberId: req.memberId, domain: req.domain, detail: verdict.detail },
        'install refused: the OAuth server did not accept the refresh token with our credentials',
      );
      throw new InstallRefusedError(401, 'The OAuth server did not confirm the authorization.');
    }
    if (verdict.kind === 'unavailable') {
      if (rebinding) {
        throw new InstallRefusedError(
          503,
          'The Bitrix24 authorization server is not answering. Please try again in a few minutes.',
        );
      }
      logger.warn(
        { memberId: req.memberId, domain: req.domain, detail: verdict.detail },
        'the OAuth server is not answering: install kept unconfirmed until its ONAPPINSTALL confirms it',
      );
    } else {
      const { answer } = verdict;
      tokens = {
        accessToken: answer.access_token,
        refreshToken: answer.refresh_token,
        expiresInSec: Number(answer.expires_in) || undefined,
      };
      clientEndpoint = answer.client_endpoint ?? clientEndpoint;
      scope = answer.scope ?? scope;
      confirmedAt = nowMs;
    }
  } else {
    logger.warn(
      { memberId: req.memberId, domain: req.domain },
      'INSECURE DEVELOPMENT INSTALL: accepted without the OAuth server confirming member_id and domain',
    );
    confirmedAt = nowMs;
  }

  const now = nowMs;
  const digest = req.applicationToken ? box.digest(req.applicationToken) : undefined;
  const keptDigest =
    existing?.status === 'uninstalled' || rebinding
      ? null
      : (existing?.application_token_digest ?? null);
  const portal = await upsertPortal(deps.db, {
    member_id: req.memberId,
    domain: req.domain,
    client_endpoint: clientEndpoint,
    server_endpoint: serverEndpoint,
    scope: scope ?? null,
    plan: req.plan ?? existing?.plan ?? null,
    status: 'installed',
    auth_mode: 'oauth',
    ...tokenColumns(box, tokens, now),
    application_token_digest: digest ?? keptDigest,
    webhook_url_enc: null,
    installed_by_user_id: Number.isInteger(userId) ? userId : null,
    app_version: req.appVersion ?? existing?.app_version ?? null,
    lang: req.lang?.slice(0, 8).toLowerCase() ?? existing?.lang ?? null,
    installed_at: now,
    install_confirmed_at: confirmedAt,
    uninstalled_at: null,
    // New credentials the OAuth server just confirmed: a pause of the old ones (invalid_client
    // after a removal whose ONAPPUNINSTALL was lost, PAYMENT_REQUIRED) no longer holds; a
    // portal still unpaid pauses again at its first refusal.
    pause_reason: null,
    paused_at: null,
    // A payment lapse of the portal as installed is still swept once the install ends its
    // pause; one from before an uninstall is not (the app was not there).
    lapse_since: existing?.status === 'uninstalled' ? null : (existing?.lapse_since ?? null),
    // The offline net drains a new install at its next tick (a CLEAN uninstall left none).
    offline_due_at: 0,
    offline_interval_ms: null,
    updated_at: now,
  });
  deps.portals.invalidate(req.memberId);
  logger.info(
    {
      memberId: portal.member_id,
      domain: portal.domain,
      userId,
      kind: req.kind,
      confirmed: confirmedAt !== null,
    },
    'portal installed',
  );
  if (portal.application_token_digest) await resolveUnverified(deps, portal.id);
  const sync = await syncBindings(deps, portal, { userId });
  return { portal: (await findPortalByMemberId(deps.db, req.memberId)) ?? portal, userId, sync };
}
