import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { resolveUnverified } from '../intake/reverify.js';
import { findPortalByMemberId, upsertPortal, type PortalRow } from '../../db/stores/portals.js';
import { isBitrixApiError } from '../bitrix/errors.js';
import { allowedOAuthOrigin, hostOf, isPortalHostAllowed } from '../bitrix/hosts.js';
import { InvalidGrantError, tokenColumns } from '../bitrix/oauth.js';
import type { InstallRequest } from './install-request.js';
import { syncBindings, type BindingSync } from './bindings.js';

/** An install that is refused: `status` is the HTTP answer, the message safe to show. */
export class InstallRefusedError extends AppError {
  constructor(status: 400 | 401 | 403, message: string) {
    super(status === 403 ? 'FORBIDDEN' : status === 401 ? 'UNAUTHORIZED' : 'BAD_REQUEST', message, {
      status,
    });
    this.name = 'InstallRefusedError';
  }
}

export interface InstallOutcome {
  portal: PortalRow;
  userId: number;
  sync: BindingSync;
}

interface Profile {
  ID?: string | number;
  ADMIN?: boolean | string;
}

/**
 * Checks everything an install request claims before anything is stored, in an order that
 * contacts nobody until the hosts are known good:
 *   1. DOMAIN matches B24_PORTAL_HOSTS, SERVER_ENDPOINT is in B24_OAUTH_SERVERS, the client
 *      endpoint is on DOMAIN, and a known member_id keeps its stored domain;
 *   2. `profile` on the portal with AUTH_ID: the token is live there and its user is an admin;
 *   3. with the app's credentials, the refresh token is exchanged at the OAuth server, whose
 *      answer names the member_id and client endpoint: that binds member_id to DOMAIN.
 * Then the portal is stored (tokens encrypted, application token as a digest only), events
 * that waited for the token are resolved, and the bindings are synced.
 */
export async function installPortal(deps: Deps, req: InstallRequest): Promise<InstallOutcome> {
  const { config, logger, box } = deps;
  if (!isPortalHostAllowed(config, req.domain)) {
    throw new InstallRefusedError(403, 'This portal address is not allowed (B24_PORTAL_HOSTS).');
  }
  if (!allowedOAuthOrigin(config, req.serverEndpoint)) {
    throw new InstallRefusedError(403, 'This OAuth server is not allowed (B24_OAUTH_SERVERS).');
  }
  if (hostOf(req.clientEndpoint) !== req.domain) {
    throw new InstallRefusedError(400, 'The client endpoint is not on the portal domain.');
  }
  const existing = await findPortalByMemberId(deps.db, req.memberId);
  if (existing && existing.domain.toLowerCase() !== req.domain) {
    logger.warn(
      { memberId: req.memberId, stored: existing.domain, claimed: req.domain },
      'install refused: member_id is bound to another domain',
    );
    throw new InstallRefusedError(403, 'This portal is registered under another address.');
  }

  const target = { memberId: req.memberId, domain: req.domain, clientEndpoint: req.clientEndpoint };
  let profile: Profile;
  try {
    profile = await deps.bitrix.probe<Profile>(target, { accessToken: req.accessToken }, 'profile');
  } catch (e) {
    if (isBitrixApiError(e) && !e.retryable) {
      throw new InstallRefusedError(401, 'The portal did not confirm the authorization.');
    }
    throw e;
  }
  const userId = Number(profile.ID);
  if (!(profile.ADMIN === true || profile.ADMIN === 'Y' || profile.ADMIN === 'true')) {
    logger.info({ memberId: req.memberId, userId }, 'install refused: not an administrator');
    throw new InstallRefusedError(403, 'Only a portal administrator can install this application.');
  }

  let tokens = {
    accessToken: req.accessToken,
    refreshToken: req.refreshToken ?? '',
    expiresInSec: req.expiresInSec,
  };
  let clientEndpoint = req.clientEndpoint;
  let scope = req.scope;
  if (req.refreshToken && config.b24.clientId && config.b24.clientSecret) {
    let answer;
    try {
      answer = await deps.bitrix.exchangeRefreshToken(req.serverEndpoint, req.refreshToken);
    } catch (e) {
      if (e instanceof InvalidGrantError || (isBitrixApiError(e) && !e.retryable)) {
        throw new InstallRefusedError(401, 'The OAuth server did not confirm the authorization.');
      }
      throw e;
    }
    if (
      (answer.member_id !== undefined && answer.member_id !== req.memberId) ||
      (answer.client_endpoint !== undefined && hostOf(answer.client_endpoint) !== req.domain)
    ) {
      logger.warn(
        { memberId: req.memberId, domain: req.domain },
        'install refused: the OAuth server names another portal',
      );
      throw new InstallRefusedError(403, 'The authorization belongs to another portal.');
    }
    tokens = {
      accessToken: answer.access_token,
      refreshToken: answer.refresh_token,
      expiresInSec: Number(answer.expires_in) || undefined,
    };
    clientEndpoint = answer.client_endpoint ?? clientEndpoint;
    scope = answer.scope ?? scope;
  } else if (!req.refreshToken) {
    throw new InstallRefusedError(400, 'REFRESH_ID is missing.');
  } else {
    logger.warn(
      { memberId: req.memberId },
      'B24_CLIENT_ID / B24_CLIENT_SECRET are not set: tokens cannot be refreshed after an hour',
    );
  }

  const now = deps.clock.now().getTime();
  const digest = req.applicationToken ? box.digest(req.applicationToken) : undefined;
  const keptDigest =
    existing?.status === 'uninstalled' ? null : (existing?.application_token_digest ?? null);
  const portal = await upsertPortal(deps.db, {
    member_id: req.memberId,
    domain: req.domain,
    client_endpoint: clientEndpoint,
    server_endpoint: req.serverEndpoint,
    scope: scope ?? null,
    plan: req.plan ?? existing?.plan ?? null,
    status: 'installed',
    auth_mode: 'oauth',
    ...tokenColumns(box, tokens, now),
    application_token_digest: digest ?? keptDigest,
    webhook_url_enc: null,
    installed_by_user_id: Number.isInteger(userId) ? userId : null,
    app_version: req.appVersion ?? existing?.app_version ?? null,
    installed_at: now,
    uninstalled_at: null,
    updated_at: now,
  });
  deps.portals.invalidate(req.memberId);
  logger.info(
    { memberId: portal.member_id, domain: portal.domain, userId, kind: req.kind },
    'portal installed',
  );
  if (portal.application_token_digest) await resolveUnverified(deps, portal.id);
  const sync = await syncBindings(deps, portal, { userId });
  return { portal: (await findPortalByMemberId(deps.db, req.memberId)) ?? portal, userId, sync };
}
