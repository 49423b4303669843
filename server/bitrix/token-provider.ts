import { PausedError, PermanentError } from '../lib/retry-errors.js';
import { findPortalById, updatePortal, type PortalRow } from '../../db/stores/portals.js';
import { getSetting } from '../../db/stores/settings.js';
import { isPg } from '../../db/connect.js';
import { BitrixRetryableError } from './errors.js';
import { assertPortalUrl, isVouchedPortal } from './hosts.js';
import { readTokens, readWebhookUrl } from './oauth.js';
import {
  createRateLimiter,
  ENTERPRISE_LIMITS,
  STANDARD_LIMITS,
  type RateLimiter,
  type RateLimits,
} from './rate-limit.js';
import { createTokenRefresher, pausedError, type TokenRefresher } from './refresh.js';
import { createSharedRateLimiter } from './shared-rate-limit.js';
import type { FetchFn } from './transport.js';
import type { BitrixContext, BitrixRestOptions } from './types.js';

/**
 * The token provider: the one place a REST request gets its credential and its turn. It
 * opens the stored token or webhook URL (oauth.ts), refreshes an expired token (refresh.ts:
 * single-flight, under the portal's lease across processes) and paces every request
 * through the portal's rate limiter (shared between instances on PostgreSQL).
 */
export interface TokenProvider {
  readonly ctx: BitrixContext;
  readonly limiter: RateLimiter;
  readonly refresher: TokenRefresher;
  readonly pausedRetryMs: number;
  /** Portals whose `rateLimit` setting was read into the limiter. */
  readonly limitsLoaded: Set<string>;
}

/** How a stored portal is reached for one call. */
export interface PortalCredential {
  /** The client endpoint, or the inbound webhook URL. */
  base: string;
  /** OAuth portals only: sent as `auth`. */
  accessToken?: string;
}

export function createTokenProvider(
  ctx: BitrixContext,
  opts: BitrixRestOptions & { fetch: FetchFn },
): TokenProvider {
  const limiterOptions = {
    defaults: opts.limits ?? STANDARD_LIMITS,
    now: opts.now,
    sleep: opts.sleep,
    headroom: opts.headroom,
  };
  const pausedRetryMs = opts.pausedRetryMs ?? 10 * 60_000;
  return {
    ctx,
    // On PostgreSQL several instances may call the same portal: they share one bucket.
    limiter: isPg(ctx.db)
      ? createSharedRateLimiter(ctx.db, { ...limiterOptions, logger: ctx.logger })
      : createRateLimiter(limiterOptions),
    refresher: createTokenRefresher(ctx, { fetch: opts.fetch, pausedRetryMs }),
    pausedRetryMs,
    limitsLoaded: new Set(),
  };
}

/** Per-portal override (settings key `rateLimit`: `"enterprise"` or `{drainPerSec, burst}`). */
async function loadLimits(tp: TokenProvider, memberId: string): Promise<void> {
  if (tp.limitsLoaded.has(memberId)) return;
  tp.limitsLoaded.add(memberId);
  const v = await getSetting<unknown>(tp.ctx.db, memberId, 'rateLimit');
  if (v === 'enterprise') tp.limiter.setLimits(memberId, ENTERPRISE_LIMITS);
  else if (v && typeof v === 'object') {
    const { drainPerSec, burst } = v as Partial<RateLimits>;
    if (
      typeof drainPerSec === 'number' &&
      typeof burst === 'number' &&
      drainPerSec > 0 &&
      burst >= 1
    ) {
      tp.limiter.setLimits(memberId, { drainPerSec, burst });
    }
  }
}

/** Waits for the portal's turn: every request of a stored portal passes here right before it leaves. */
export async function pace(tp: TokenProvider, memberId: string): Promise<void> {
  await loadLimits(tp, memberId);
  const waited = await tp.limiter.acquire(memberId);
  if (waited > 0) tp.ctx.metrics.rateLimitWaits.inc();
}

/**
 * A probe's turn: taken only when it comes within `maxWaitMs`, else RATE_BUDGET_BUSY
 * (retryable) at once, without reserving a slot.
 */
export async function paceProbe(
  tp: TokenProvider,
  memberId: string,
  method: string,
  maxWaitMs: number,
  share = 1,
): Promise<void> {
  await loadLimits(tp, memberId);
  const waited = await tp.limiter.tryAcquire(memberId, maxWaitMs, share);
  if (waited === null) {
    tp.ctx.metrics.restCalls.inc({ outcome: 'RATE_BUDGET_BUSY' });
    throw new BitrixRetryableError(
      {
        bitrixCode: 'RATE_BUDGET_BUSY',
        httpStatus: 429,
        method,
        description:
          share < 1
            ? `the portal's REST budget is kept for its own work`
            : `the portal's REST budget is taken for more than ${maxWaitMs} ms`,
      },
      { retryAfterMs: maxWaitMs },
    );
  }
  if (waited > 0) tp.ctx.metrics.rateLimitWaits.inc();
}

/**
 * The stored row, re-read (tokens may have rotated since the caller loaded it), if the
 * portal may be called now: uninstalled fails the job, needing re-authorisation pauses it,
 * a paused portal waits for its next try and then gets one refresh.
 */
export async function callablePortal(tp: TokenProvider, portal: PortalRow): Promise<PortalRow> {
  const row = await findPortalById(tp.ctx.db, portal.id);
  if (!row || row.member_id !== portal.member_id) {
    throw new PermanentError(`portal ${portal.member_id} is not stored`);
  }
  if (row.status === 'uninstalled')
    throw new PermanentError(`portal ${row.member_id} is uninstalled`);
  if (row.status === 'needs_reauth') {
    throw new PausedError(`portal ${row.member_id} needs re-authorisation`, tp.pausedRetryMs);
  }
  if (row.pause_reason) {
    // invalid_client / PAYMENT_REQUIRED at the last refresh: wait, then try one refresh.
    const left = (row.paused_at ?? 0) + tp.pausedRetryMs - tp.ctx.clock.now().getTime();
    if (left > 0) throw pausedError(row, left);
    if (row.auth_mode === 'webhook') {
      // No tokens to refresh: the pause (the portal's plan, at a call) is lifted and the call
      // tells (it pauses again if the plan still refuses).
      await updatePortal(tp.ctx.db, row.id, {
        pause_reason: null,
        paused_at: null,
        updated_at: tp.ctx.clock.now().getTime(),
      });
      tp.ctx.portals.invalidate(row.member_id);
      return { ...row, pause_reason: null, paused_at: null };
    }
    return tp.refresher.refresh(row.id, undefined, { recheck: true });
  }
  return row;
}

/**
 * How to reach a callable portal now: its inbound webhook URL, or its client endpoint and
 * access token (refreshed first when it has expired on our clock).
 */
export async function portalCredential(
  tp: TokenProvider,
  row: PortalRow,
): Promise<PortalCredential> {
  const { box, clock } = tp.ctx;
  if (row.auth_mode === 'webhook') {
    const url = readWebhookUrl(box, row);
    if (!url) throw new PermanentError(`portal ${row.member_id} has no webhook URL`);
    return { base: url };
  }
  const base = row.client_endpoint ?? `https://${row.domain}/rest/`;
  // Checked before a refresh too: a portal we may not call gets no refresh either.
  assertPortalUrl(tp.ctx.config, row.domain, base, isVouchedPortal(row));
  let tokens = readTokens(box, row);
  if (!tokens) throw new PermanentError(`portal ${row.member_id} has no stored tokens`);
  if (tokens.expiresAt !== null && tokens.expiresAt <= clock.now().getTime()) {
    tokens = readTokens(box, await tp.refresher.refresh(row.id, tokens.accessToken))!;
  }
  return { base, accessToken: tokens.accessToken };
}

/** A refreshed OAuth credential, and where it is sent now (a renamed portal moves). */
export interface RenewedCredential {
  accessToken: string;
  base: string;
  domain: string;
}

/**
 * The portal refused `failed` as expired (or redirected it): a new access token, from the
 * refresh that replaces it (shared with every caller that saw the same token fail), and the
 * client endpoint and domain the portal has after it.
 */
export async function renewedToken(
  tp: TokenProvider,
  row: PortalRow,
  failed: string,
): Promise<RenewedCredential> {
  const fresh = await tp.refresher.refresh(row.id, failed);
  return {
    accessToken: readTokens(tp.ctx.box, fresh)!.accessToken,
    base: fresh.client_endpoint ?? `https://${fresh.domain}/rest/`,
    domain: fresh.domain,
  };
}

/** BitrixRest.refresh: a refresh now, for a portal that may be called. */
export async function refreshNow(tp: TokenProvider, portal: PortalRow): Promise<PortalRow> {
  const row = await callablePortal(tp, portal);
  return tp.refresher.refresh(row.id, readTokens(tp.ctx.box, row)?.accessToken);
}
