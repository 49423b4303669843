import { randomBytes } from 'node:crypto';
import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { PausedError, PermanentError, RetryableError } from '../queue/errors.js';
import {
  acquireRefreshLease,
  findPortalById,
  releaseRefreshLease,
  updatePortal,
  type PauseReason,
  type PortalRow,
} from '../../db/stores/portals.js';
import { isBitrixApiError } from './errors.js';
import { allowedOAuthOrigin, hostOf } from './hosts.js';
import { exchangeRefreshToken, InvalidGrantError, readTokens, tokenColumns } from './oauth.js';
import type { FetchFn } from './transport.js';

export interface TokenRefresher {
  /**
   * Refreshes a portal's token pair and resolves to the stored row. One refresh per portal
   * is in flight at a time; callers arriving meanwhile share it. A caller whose token was
   * already replaced by an earlier refresh gets the stored pair without a new refresh.
   *
   * Across processes — server instances, and a CLI command (`replay --wait`, `rules test`,
   * `recover sweep`) next to the server, on SQLite as on PostgreSQL — the refresh runs under
   * the portal's lease in the database and reads the stored pair only once it holds it:
   * Bitrix24 rotates the refresh token on every refresh, so a second process refreshing with
   * the same one would get invalid_grant and mark the portal as needing re-authorisation.
   * It waits instead, then finds the new pair.
   *
   * `recheck`: the portal is paused (`invalid_client`, `PAYMENT_REQUIRED`) and its pause is
   * due for another try; a refresh that succeeds lifts the pause.
   */
  refresh(
    portalId: number,
    failedAccessToken: string | undefined,
    opts?: { recheck?: boolean },
  ): Promise<PortalRow>;
}

/** How long a lease holds when its holder dies mid-refresh (the OAuth request times out at 30 s). */
const LEASE_MS = 45_000;
/** How often a process waiting for another's refresh looks again. */
const LEASE_POLL_MS = 50;

/** OAuth errors at refresh that pause a portal with their own reason (protocol §1.5). */
export function pauseReasonOf(e: unknown): PauseReason | undefined {
  if (!isBitrixApiError(e) || e.retryable) return undefined;
  if (e.bitrixCode === 'invalid_client') return 'invalid_client';
  if (e.bitrixCode === 'PAYMENT_REQUIRED') return 'payment_required';
  return undefined;
}

const PAUSE_TEXT: Record<PauseReason, string> = {
  invalid_client:
    'the OAuth server does not know the app on this portal (invalid_client): was it removed, or B24_CLIENT_ID/SECRET changed?',
  payment_required:
    "the portal's Bitrix24 subscription does not allow the app (PAYMENT_REQUIRED): renew the plan",
};

export function pausedError(row: PortalRow, resumeAfterMs: number): PausedError {
  const reason = row.pause_reason ?? 'invalid_client';
  return new PausedError(`portal ${row.member_id} paused: ${PAUSE_TEXT[reason]}`, resumeAfterMs);
}

export function createTokenRefresher(
  deps: Pick<Deps, 'config' | 'db' | 'box' | 'clock' | 'logger' | 'portals'>,
  opts: { fetch: FetchFn; pausedRetryMs: number },
): TokenRefresher {
  const { config, db, box, logger } = deps;
  const inflight = new Map<number, Promise<PortalRow>>();
  const processId = randomBytes(6).toString('hex');
  let seq = 0;
  const localTail = new Map<number, Promise<void>>();

  /** Whether the stored access token is a newer one than `failed`, and still valid. */
  function replaced(row: PortalRow, failed: string): boolean {
    const tokens = readTokens(box, row);
    if (!tokens || tokens.accessToken === failed) return false;
    return tokens.expiresAt === null || tokens.expiresAt > deps.clock.now().getTime();
  }

  /** The refresh itself, run while this process holds the portal's lease. */
  async function run(
    portalId: number,
    failed: string | undefined,
    recheck: boolean,
  ): Promise<PortalRow | PausedError> {
    const q = db;
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
    if (row.pause_reason) {
      // Another process confirmed the pause meanwhile: wait for the next try.
      const left = (row.paused_at ?? 0) + opts.pausedRetryMs - now;
      if (!recheck || left > 0) return pausedError(row, Math.max(1000, left));
    } else if (recheck) {
      return row; // another process lifted the pause meanwhile
    }
    if (failed !== undefined && replaced(row, failed)) return row;
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
      const reason = pauseReasonOf(e);
      if (reason) {
        await updatePortal(q, row.id, { pause_reason: reason, paused_at: now, updated_at: now });
        deps.portals.invalidate(row.member_id);
        const paused = { ...row, pause_reason: reason, paused_at: now };
        logger.error(
          {
            memberId: row.member_id,
            domain: row.domain,
            alert: 'portal_paused',
            reason,
            error: (e as Error).message,
          },
          `${PAUSE_TEXT[reason]}; its events are kept and processing retries every ${Math.round(opts.pausedRetryMs / 60_000)} min`,
        );
        return pausedError(paused, opts.pausedRetryMs);
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
      pause_reason: null,
      paused_at: null,
      updated_at: now,
    });
    deps.portals.invalidate(row.member_id);
    if (row.pause_reason) {
      logger.warn(
        { memberId: row.member_id, alert: 'portal_resumed', reason: row.pause_reason },
        'the OAuth server accepts the app again: the portal resumes processing',
      );
    }
    logger.info({ memberId: row.member_id }, 'portal tokens refreshed');
    return (await findPortalById(q, row.id)) as PortalRow;
  }

  /**
   * Runs the refresh under the portal's lease (a row in the database, so it holds across
   * processes on SQLite and PostgreSQL); a process that finds it taken waits for it, then
   * reads what the holder stored. Wall-clock time: the lease is shared between processes.
   */
  async function leased(portalId: number, failed: string | undefined, recheck: boolean) {
    // Someone already replaced the token that failed: no refresh, no lease needed.
    if (!recheck && failed !== undefined) {
      const row = await findPortalById(db, portalId);
      if (row && row.status === 'installed' && !row.pause_reason && replaced(row, failed)) {
        return row;
      }
    }
    // Refreshes of this process queue up here, so only other processes are waited for by
    // polling the lease.
    const before = localTail.get(portalId) ?? Promise.resolve();
    let done!: () => void;
    const mine = new Promise<void>((r) => (done = r));
    localTail.set(portalId, mine);
    await before;
    try {
      return await underLease(portalId, failed, recheck);
    } finally {
      done();
      if (localTail.get(portalId) === mine) localTail.delete(portalId);
    }
  }

  async function underLease(portalId: number, failed: string | undefined, recheck: boolean) {
    const holder = `${processId}-${++seq}`;
    const deadline = Date.now() + 2 * LEASE_MS;
    while (!(await acquireRefreshLease(db, portalId, holder, Date.now(), Date.now() + LEASE_MS))) {
      if (Date.now() > deadline) {
        throw new RetryableError(`portal ${portalId}: another process is still refreshing`);
      }
      await new Promise((r) => setTimeout(r, LEASE_POLL_MS));
    }
    try {
      return await run(portalId, failed, recheck);
    } finally {
      await releaseRefreshLease(db, portalId, holder);
    }
  }

  return {
    refresh(portalId, failed, o = {}) {
      const existing = inflight.get(portalId);
      if (existing) return existing;
      const p = leased(portalId, failed, o.recheck ?? false)
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
