import type { Knex } from 'knex';
import type { Deps } from '../deps.js';
import { isPg } from '../../db/connect.js';
import { LOCK, withXactLock } from '../../db/locks.js';
import { AppError } from '../lib/errors.js';
import { PausedError, PermanentError } from '../queue/errors.js';
import { findPortalById, updatePortal, type PortalRow } from '../../db/stores/portals.js';
import { allowedOAuthOrigin, hostOf } from './hosts.js';
import { exchangeRefreshToken, InvalidGrantError, readTokens, tokenColumns } from './oauth.js';
import type { FetchFn } from './transport.js';

export interface TokenRefresher {
  /**
   * Refreshes a portal's token pair and resolves to the stored row. One refresh per portal
   * is in flight at a time; callers arriving meanwhile share it. A caller whose token was
   * already replaced by an earlier refresh gets the stored pair without a new refresh.
   *
   * Across instances (PostgreSQL) the refresh runs under the portal's advisory lock and
   * reads the stored pair only once it holds it: Bitrix24 rotates the refresh token on every
   * refresh, so a second instance refreshing with the same one would get invalid_grant and
   * mark the portal as needing re-authorisation. It waits instead, then finds the new pair.
   */
  refresh(portalId: number, failedAccessToken: string | undefined): Promise<PortalRow>;
}

export function createTokenRefresher(
  deps: Pick<Deps, 'config' | 'db' | 'box' | 'clock' | 'logger' | 'portals'>,
  opts: { fetch: FetchFn; pausedRetryMs: number },
): TokenRefresher {
  const { config, db, box, logger } = deps;
  const inflight = new Map<number, Promise<PortalRow>>();

  /**
   * The refresh itself, on `q` (the locked transaction on PostgreSQL). A portal that refused
   * our refresh token is marked and the PausedError returned, not thrown, so that the mark
   * is committed with the transaction.
   */
  async function run(
    q: Knex,
    portalId: number,
    failed: string | undefined,
  ): Promise<PortalRow | PausedError> {
    const row = await findPortalById(q, portalId);
    if (!row) throw new PermanentError(`portal ${portalId} is not stored`);
    if (row.status === 'uninstalled')
      throw new PermanentError(`portal ${row.member_id} is uninstalled`);
    if (row.status === 'needs_reauth') {
      throw new PausedError(`portal ${row.member_id} needs re-authorisation`, opts.pausedRetryMs);
    }
    const tokens = readTokens(box, row);
    if (!tokens) throw new PermanentError(`portal ${row.member_id} has no stored tokens`);
    const now = deps.clock.now().getTime();
    if (
      failed !== undefined &&
      tokens.accessToken !== failed &&
      (tokens.expiresAt === null || tokens.expiresAt > now)
    ) {
      return row;
    }
    let answer;
    try {
      answer = await exchangeRefreshToken(
        config,
        opts.fetch,
        row.server_endpoint ?? '',
        tokens.refreshToken,
      );
    } catch (e) {
      if (e instanceof InvalidGrantError) {
        await updatePortal(q, row.id, { status: 'needs_reauth', updated_at: now });
        deps.portals.invalidate(row.member_id);
        logger.error(
          { memberId: row.member_id, domain: row.domain, alert: 'portal_needs_reauth' },
          'the portal refused our refresh token: processing pauses until an admin opens the app or reinstalls',
        );
        return new PausedError(
          `portal ${row.member_id} needs re-authorisation`,
          opts.pausedRetryMs,
        );
      }
      if (e instanceof AppError && e.code === 'CONFIG') throw new PermanentError(e.message);
      throw e;
    }
    if (answer.member_id && answer.member_id !== row.member_id) {
      throw new PermanentError('the OAuth server answered for another portal; tokens not stored');
    }
    let clientEndpoint = row.client_endpoint;
    if (answer.client_endpoint && answer.client_endpoint !== clientEndpoint) {
      if (hostOf(answer.client_endpoint) === row.domain.toLowerCase())
        clientEndpoint = answer.client_endpoint;
      else {
        logger.warn(
          { memberId: row.member_id, domain: row.domain },
          'the OAuth server names another portal host (renamed portal?); keeping the stored one until reinstall',
        );
      }
    }
    const serverEndpoint =
      answer.server_endpoint && allowedOAuthOrigin(config, answer.server_endpoint)
        ? answer.server_endpoint
        : row.server_endpoint;
    // Persist first: the old refresh token is spent now, so a crash must not lose the new one.
    await updatePortal(q, row.id, {
      ...tokenColumns(
        box,
        {
          accessToken: answer.access_token,
          refreshToken: answer.refresh_token,
          expiresInSec: Number(answer.expires_in) || undefined,
        },
        now,
      ),
      client_endpoint: clientEndpoint,
      server_endpoint: serverEndpoint,
      scope: answer.scope ?? row.scope,
      updated_at: now,
    });
    deps.portals.invalidate(row.member_id);
    logger.info({ memberId: row.member_id }, 'portal tokens refreshed');
    return (await findPortalById(q, row.id)) as PortalRow;
  }

  /** Everything on the transaction's one connection, so waiting refreshes cannot exhaust the pool. */
  const locked = (portalId: number, failed: string | undefined) =>
    isPg(db)
      ? withXactLock(db, LOCK.refresh, portalId, (trx) => run(trx, portalId, failed))
      : run(db, portalId, failed);

  return {
    refresh(portalId, failed) {
      const existing = inflight.get(portalId);
      if (existing) return existing;
      const p = locked(portalId, failed)
        .then((outcome) => {
          if (outcome instanceof PausedError) throw outcome;
          // Another instance may have refreshed while we waited: drop our cached row.
          deps.portals.invalidate(outcome.member_id);
          return outcome;
        })
        .finally(() => inflight.delete(portalId));
      inflight.set(portalId, p);
      return p;
    },
  };
}
