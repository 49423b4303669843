import { randomBytes } from 'node:crypto';
import { AppError } from '../lib/errors.js';
import { PausedError, PermanentError, RetryableError } from '../lib/retry-errors.js';
import {
  acquireRefreshLease,
  findPortalById,
  releaseRefreshLease,
  updatePortal,
  type PauseReason,
  type PortalRow,
} from '../../db/stores/portals.js';
import { markLapse } from '../../db/stores/lapses.js';
import { isBitrixApiError } from './errors.js';
import {
  allowedOAuthOrigin,
  hostOf,
  isPortalHostAllowed,
  isUnlistedCloudHost,
  isVouchedPortal,
} from './hosts.js';
import {
  exchangeRefreshToken,
  InvalidGrantError,
  readTokens,
  tokenColumns,
  type RefreshAnswer,
} from './oauth.js';
import type { FetchFn } from './transport.js';
import type { RefresherContext } from './types.js';

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

/**
 * OAuth server refusals of the app itself: `invalid_client` (a wrong secret, or "the
 * application may not be installed": b24restdocs settings/oauth/error-codes.md),
 * `wrong_client` (a client id it does not know, answered with HTTP 200; not in the docs, but
 * what a real server gave bitrix24/b24pysdk's tests/integration/errors/test_errors_oauth.py),
 * and `NOT_INSTALLED`, "Application not installed" (b24pysdk/errors/oauth.py names it for an
 * app removed from the portal).
 */
const APP_REFUSED = new Set(['invalid_client', 'wrong_client', 'NOT_INSTALLED']);

/** OAuth errors at refresh that pause a portal with their own reason (b24restdocs settings/oauth/error-codes.md). */
export function pauseReasonOf(e: unknown): PauseReason | undefined {
  if (!isBitrixApiError(e) || e.retryable) return undefined;
  if (APP_REFUSED.has(e.bitrixCode)) return 'invalid_client';
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

/** What a refresher keeps between calls: one per REST client. */
export interface Refresher extends TokenRefresher {
  readonly ctx: RefresherContext;
  readonly fetch: FetchFn;
  readonly pausedRetryMs: number;
  /** The refresh in flight per portal, shared by the callers arriving meanwhile. */
  readonly inflight: Map<number, Promise<PortalRow>>;
  /** Names this process's lease holders apart from other processes'. */
  readonly processId: string;
  seq: number;
  /** The last refresh of this process queued per portal (local callers wait here). */
  readonly localTail: Map<number, Promise<void>>;
  /**
   * Answers of the OAuth server the database refused to store (locked, disk full), per
   * portal: their refresh token is the only live one (the stored one is spent), so the next
   * try stores it instead of refreshing again. In this process's memory only.
   */
  readonly unstored: Map<number, { answer: RefreshAnswer; at: number }>;
}

export function createTokenRefresher(
  ctx: RefresherContext,
  opts: { fetch: FetchFn; pausedRetryMs: number },
): Refresher {
  const r: Refresher = {
    ctx,
    fetch: opts.fetch,
    pausedRetryMs: opts.pausedRetryMs,
    inflight: new Map(),
    processId: randomBytes(6).toString('hex'),
    seq: 0,
    localTail: new Map(),
    unstored: new Map(),
    refresh: (portalId, failed, o = {}) => refreshPortal(r, portalId, failed, o.recheck ?? false),
  };
  return r;
}

/** TokenRefresher.refresh: single-flight per portal in this process, leased across processes. */
export function refreshPortal(
  r: Refresher,
  portalId: number,
  failed: string | undefined,
  recheck: boolean,
): Promise<PortalRow> {
  const existing = r.inflight.get(portalId);
  if (existing) return existing;
  const p = leased(r, portalId, failed, recheck)
    .then((outcome) => {
      if (outcome instanceof PausedError) throw outcome;
      // Another instance may have refreshed while we waited: drop our cached row.
      r.ctx.portals.invalidate(outcome.member_id);
      return outcome;
    })
    .finally(() => r.inflight.delete(portalId));
  r.inflight.set(portalId, p);
  return p;
}

/** Whether the stored access token is a newer one than `failed`, and still valid. */
function replaced(ctx: RefresherContext, row: PortalRow, failed: string): boolean {
  const tokens = readTokens(ctx.box, row);
  if (!tokens || tokens.accessToken === failed) return false;
  return tokens.expiresAt === null || tokens.expiresAt > ctx.clock.now().getTime();
}

/**
 * Runs the refresh under the portal's lease (a row in the database, so it holds across
 * processes on SQLite and PostgreSQL); a process that finds it taken waits for it, then
 * reads what the holder stored. Wall-clock time: the lease is shared between processes.
 */
async function leased(
  r: Refresher,
  portalId: number,
  failed: string | undefined,
  recheck: boolean,
): Promise<PortalRow | PausedError> {
  // Someone already replaced the token that failed: no refresh, no lease needed.
  if (!recheck && failed !== undefined) {
    const row = await findPortalById(r.ctx.db, portalId);
    if (row && row.status === 'installed' && !row.pause_reason && replaced(r.ctx, row, failed)) {
      return row;
    }
  }
  // Refreshes of this process queue up here, so only other processes are waited for by
  // polling the lease.
  const before = r.localTail.get(portalId) ?? Promise.resolve();
  let done!: () => void;
  const mine = new Promise<void>((res) => (done = res));
  r.localTail.set(portalId, mine);
  await before;
  try {
    return await underLease(r, portalId, failed, recheck);
  } finally {
    done();
    if (r.localTail.get(portalId) === mine) r.localTail.delete(portalId);
  }
}

async function underLease(
  r: Refresher,
  portalId: number,
  failed: string | undefined,
  recheck: boolean,
): Promise<PortalRow | PausedError> {
  const { db } = r.ctx;
  const holder = `${r.processId}-${++r.seq}`;
  const deadline = Date.now() + 2 * LEASE_MS;
  while (!(await acquireRefreshLease(db, portalId, holder, Date.now(), Date.now() + LEASE_MS))) {
    if (Date.now() > deadline) {
      throw new RetryableError(`portal ${portalId}: another process is still refreshing`);
    }
    await new Promise((res) => setTimeout(res, LEASE_POLL_MS));
  }
  try {
    return await runRefresh(r, portalId, failed, recheck);
  } finally {
    await releaseRefreshLease(db, portalId, holder);
  }
}

/** The refresh itself, run while this process holds the portal's lease. */
async function runRefresh(
  r: Refresher,
  portalId: number,
  failed: string | undefined,
  recheck: boolean,
): Promise<PortalRow | PausedError> {
  const { ctx } = r;
  const row = await findPortalById(ctx.db, portalId);
  if (!row) throw new PermanentError(`portal ${portalId} is not stored`);
  if (row.status === 'uninstalled')
    throw new PermanentError(`portal ${row.member_id} is uninstalled`);
  if (row.status === 'needs_reauth') {
    throw new PausedError(`portal ${row.member_id} needs re-authorisation`, r.pausedRetryMs);
  }
  const tokens = readTokens(ctx.box, row);
  if (!tokens) throw new PermanentError(`portal ${row.member_id} has no stored tokens`);
  const now = ctx.clock.now().getTime();
  if (row.pause_reason) {
    // Another process confirmed the pause meanwhile: wait for the next try.
    const left = (row.paused_at ?? 0) + r.pausedRetryMs - now;
    if (!recheck || left > 0) return pausedError(row, Math.max(1000, left));
  } else if (recheck) {
    return row; // another process lifted the pause meanwhile
  }
  if (failed !== undefined && replaced(ctx, row, failed)) return row;
  const kept = r.unstored.get(portalId);
  if (kept) {
    const stored = await storeAnswer(ctx, row, kept.answer, kept.at);
    r.unstored.delete(portalId);
    ctx.logger.warn({ memberId: row.member_id }, 'the refreshed tokens kept in memory are stored');
    return stored;
  }
  let answer: RefreshAnswer;
  try {
    answer = await exchangeRefreshToken(
      ctx.config,
      r.fetch,
      row.server_endpoint ?? '',
      tokens.refreshToken,
    );
  } catch (e) {
    return refused(r, row, now, e);
  }
  try {
    return await storeAnswer(ctx, row, answer, now);
  } catch (e) {
    if (e instanceof PermanentError) throw e;
    // The old refresh token is spent: losing this answer would leave the portal needing an
    // admin. Kept for the next try, which stores it (the caller's job retries).
    r.unstored.set(portalId, { answer, at: now });
    const message = (e as Error).message;
    ctx.logger.error(
      { memberId: row.member_id, err: message },
      'the refreshed tokens could not be stored (the database refused): kept in memory and stored at the next try',
    );
    throw new RetryableError(
      `portal ${row.member_id}: the refreshed tokens are not stored yet (${message})`,
    );
  }
}

/**
 * The OAuth server refused the refresh: invalid_grant marks the portal as needing
 * re-authorisation, invalid_client / PAYMENT_REQUIRED pause it; anything else is thrown.
 */
async function refused(
  r: Refresher,
  row: PortalRow,
  now: number,
  e: unknown,
): Promise<PausedError> {
  const { ctx } = r;
  if (e instanceof InvalidGrantError) {
    await updatePortal(ctx.db, row.id, { status: 'needs_reauth', updated_at: now });
    ctx.portals.invalidate(row.member_id);
    ctx.logger.error(
      { memberId: row.member_id, domain: row.domain, alert: 'portal_needs_reauth' },
      'the portal refused our refresh token: processing pauses until an admin opens the app or reinstalls',
    );
    return new PausedError(`portal ${row.member_id} needs re-authorisation`, r.pausedRetryMs);
  }
  const reason = pauseReasonOf(e);
  if (reason) return pausePortal(ctx, row, reason, e, r.pausedRetryMs);
  if (e instanceof AppError && e.code === 'CONFIG') throw new PermanentError(e.message);
  throw e;
}

/**
 * Pauses a portal for `reason` (its jobs wait, retried every `retryMs` with one refresh, and
 * the portal-paused alert fires) and answers the PausedError of the job that found it.
 */
export async function pausePortal(
  ctx: RefresherContext,
  row: PortalRow,
  reason: PauseReason,
  e: unknown,
  retryMs: number,
): Promise<PausedError> {
  const now = ctx.clock.now().getTime();
  await updatePortal(ctx.db, row.id, { pause_reason: reason, paused_at: now, updated_at: now });
  // A lapsed payment: the portal sends the app nothing meanwhile (server/recovery/lapses.ts);
  // a webhook's events are not an app's, and still come.
  if (reason === 'payment_required' && row.auth_mode !== 'webhook') {
    await markLapse(ctx.db, row.id, now);
  }
  ctx.portals.invalidate(row.member_id);
  ctx.logger.error(
    {
      memberId: row.member_id,
      domain: row.domain,
      alert: 'portal_paused',
      reason,
      error: (e as Error).message,
    },
    `${PAUSE_TEXT[reason]}; its events are kept and processing retries every ${Math.round(retryMs / 60_000)} min`,
  );
  return pausedError({ ...row, pause_reason: reason, paused_at: now }, retryMs);
}

/** Keeps the new pair (before anyone uses it) and the endpoints the answer may move. */
async function storeAnswer(
  ctx: RefresherContext,
  row: PortalRow,
  answer: RefreshAnswer,
  now: number,
): Promise<PortalRow> {
  if (answer.member_id && answer.member_id !== row.member_id) {
    throw new PermanentError('the OAuth server answered for another portal; tokens not stored');
  }
  let clientEndpoint = row.client_endpoint;
  let domain = row.domain;
  if (answer.client_endpoint && answer.client_endpoint !== clientEndpoint) {
    const host = hostOf(answer.client_endpoint);
    if (host === row.domain.toLowerCase()) clientEndpoint = answer.client_endpoint;
    else if (
      host &&
      (isPortalHostAllowed(ctx.config, host) ||
        (isVouchedPortal(row) && isUnlistedCloudHost(ctx.config, host)))
    ) {
      // A renamed portal (DOCS:settings/how-to-call-rest-api/change-domen.md): the member_id
      // stays, and the OAuth server (one of B24_OAUTH_SERVERS, answering for this member_id
      // with our client credentials) is where its new address comes from; its word is also
      // what admits a cloud zone B24_PORTAL_HOSTS does not list.
      ctx.logger.warn(
        { memberId: row.member_id, from: row.domain, to: host },
        'the portal moved to a new address; calling it there from now on',
      );
      clientEndpoint = answer.client_endpoint;
      domain = host;
    } else {
      ctx.logger.warn(
        { memberId: row.member_id, domain: row.domain, named: host },
        'the OAuth server names a portal host outside B24_PORTAL_HOSTS (renamed portal?); keeping the stored one',
      );
    }
  }
  const serverEndpoint =
    answer.server_endpoint && allowedOAuthOrigin(ctx.config, answer.server_endpoint)
      ? answer.server_endpoint
      : row.server_endpoint;
  // Persist first: the old refresh token is spent now, so a crash must not lose the new one.
  await updatePortal(ctx.db, row.id, {
    ...tokenColumns(
      ctx.box,
      {
        accessToken: answer.access_token,
        refreshToken: answer.refresh_token,
        expiresInSec: Number(answer.expires_in) || undefined,
      },
      now,
    ),
    client_endpoint: clientEndpoint,
    domain,
    server_endpoint: serverEndpoint,
    scope: answer.scope ?? row.scope,
    pause_reason: null,
    paused_at: null,
    updated_at: now,
  });
  ctx.portals.invalidate(row.member_id);
  if (row.pause_reason) {
    ctx.logger.warn(
      { memberId: row.member_id, alert: 'portal_resumed', reason: row.pause_reason },
      'the OAuth server accepts the app again: the portal resumes processing',
    );
  }
  ctx.logger.info({ memberId: row.member_id }, 'portal tokens refreshed');
  return (await findPortalById(ctx.db, row.id)) as PortalRow;
}
