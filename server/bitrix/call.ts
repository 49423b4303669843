import { PausedError } from '../lib/retry-errors.js';
import type { PortalRow } from '../../db/stores/portals.js';
import { isBitrixApiError } from './errors.js';
import { assertPortalUrl, isVouchedPortal } from './hosts.js';
import { DEFAULT_BLOCK_MS, operatingOf, type OperatingBudget } from './operating.js';
import {
  callablePortal,
  pace,
  paceProbe,
  portalCredential,
  renewedToken,
  type RenewedCredential,
  type TokenProvider,
} from './token-provider.js';
import { PORTAL_MOVED, postRest, type FetchFn } from './transport.js';
import { pausePortal } from './refresh.js';
import { PermanentError } from '../lib/retry-errors.js';
import type { BitrixContext, ProbeCredential, ProbeOptions, TokenTarget } from './types.js';

/** What the call path keeps: one per REST client. */
export interface CallPath {
  readonly ctx: BitrixContext;
  readonly tokens: TokenProvider;
  /** The operating-time budget per portal and method (operating.ts). */
  readonly operating: OperatingBudget;
  readonly fetch: FetchFn;
  readonly timeoutMs: number;
  readonly probeMaxWaitMs: number;
  readonly sleep: (ms: number) => Promise<void>;
  /** Wall-clock milliseconds, the portal's time base. */
  readonly now: () => number;
}

/** Who one request is for, where it goes, and how it gets its turn. */
interface CallTarget {
  memberId: string;
  domain: string;
  /** The client endpoint, or an inbound webhook URL. */
  base: string;
  accessToken?: string;
  /** The OAuth server named `domain` as this portal's (hosts.ts assertPortalUrl). */
  vouched?: boolean;
  /** Waits for the request's turn (a stored portal's pace, or a probe's). */
  turn(): Promise<void>;
  /**
   * Stored portals: the operating-time budget gates and learns from each call, and an OAuth
   * portal's token refused as expired is replaced (`renew`) and the request sent once more;
   * so is a request the portal redirected (renamed), to the address the refresh names.
   */
  stored?: { renew?: (failed: string) => Promise<RenewedCredential> };
}

/** A heavy method's pause up to this long is waited out in the call; longer pauses the job. */
const INLINE_WAIT_MS = 2_000;

export const asRecord = (v: unknown): Record<string, unknown> => {
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
};

/** BitrixRest.call: a stored portal, by OAuth token or inbound webhook as it was connected. */
export async function callPortal<T>(
  cp: CallPath,
  portal: PortalRow,
  method: string,
  params: object,
): Promise<T> {
  const row = await callablePortal(cp.tokens, portal);
  const credential = await portalCredential(cp.tokens, row);
  const renew = credential.accessToken
    ? (failed: string) => renewedToken(cp.tokens, row, failed)
    : undefined;
  try {
    return await send<T>(
      cp,
      {
        memberId: row.member_id,
        domain: row.domain,
        vouched: isVouchedPortal(row),
        ...credential,
        turn: () => pace(cp.tokens, row.member_id),
        stored: { renew },
      },
      method,
      params,
    );
  } catch (e) {
    if (!isPlanRefusal(e)) throw e;
    throw await pausePortal(cp.tokens.ctx, row, 'payment_required', e, cp.tokens.pausedRetryMs);
  }
}

/**
 * The portal's plan refuses the app's calls, whatever the call: `PAYMENT_REQUIRED`,
 * "Subscription has been ended", answered to a REST call of a portal whose subscription
 * lapsed (bitrix24/b24pysdk b24pysdk/errors `BitrixAPIPaymentRequired`, and its
 * tests/integration/errors/test_errors.py calling `profile`), or the system error
 * `ACCESS_DENIED` "REST is available only on commercial plans" ("… only by subscription" for
 * a webhook; DOCS:_includes/system-errors.md). The portal's state, not the event's: the
 * portal is paused as at a refused refresh, and its events wait instead of failing.
 */
export function isPlanRefusal(e: unknown): boolean {
  if (!isBitrixApiError(e)) return false;
  if (e.bitrixCode === 'PAYMENT_REQUIRED') return true;
  return (
    e.bitrixCode === 'ACCESS_DENIED' &&
    /only (on commercial plans|by subscription)/i.test(e.description)
  );
}

/** BitrixRest.probe: a portal that is not stored (yet), with the credential of the request. */
export function probePortal<T>(
  cp: CallPath,
  target: TokenTarget,
  credential: ProbeCredential,
  method: string,
  params: object,
  opts: ProbeOptions = {},
): Promise<T> {
  return send<T>(
    cp,
    {
      memberId: target.memberId,
      domain: target.domain,
      vouched: target.vouched,
      ...('webhookUrl' in credential
        ? { base: credential.webhookUrl }
        : { base: target.clientEndpoint, accessToken: credential.accessToken }),
      turn: () =>
        paceProbe(cp.tokens, target.memberId, method, cp.probeMaxWaitMs, opts.budgetShare),
    },
    method,
    params,
  );
}

/** What the SDKs treat as a token to refresh (b24jssdk core/http/abstract-http `_isAuthError`). */
/**
 * Answers after which the token is refreshed and the call made once more. The app removed
 * from the portal is one: Bitrix24 refuses its tokens, expired or not (CORE:lib/oauth/auth.php
 * `onRestCheckAuth` checks the app before the expiry), with APPLICATION_NOT_FOUND while the
 * portal's cache still holds the token, else with the OAuth server's own 401 ERROR_OAUTH,
 * "Application not installed" (the cache lasts an hour: CORE `check`, `CACHE_TTL`; the answer:
 * bitrix24/b24pysdk tests/integration/errors/test_errors.py). The refresh then tells the rest:
 * `invalid_client` pauses the portal (refresh.ts), as for an uninstall whose ONAPPUNINSTALL
 * was lost, and its events wait instead of failing.
 */
function isExpiredToken(e: unknown): boolean {
  return (
    isBitrixApiError(e) &&
    (e.bitrixCode === 'APPLICATION_NOT_FOUND' ||
      (e.httpStatus === 401 &&
        (e.bitrixCode === 'expired_token' ||
          e.bitrixCode === 'invalid_token' ||
          e.bitrixCode === 'ERROR_OAUTH')))
  );
}

const isMoved = (e: unknown): boolean => isBitrixApiError(e) && e.bitrixCode === PORTAL_MOVED;

/**
 * The one call path to a portal: host check (hosts.ts), the operating-time gate, the
 * request's turn, the request itself (transport.ts), and for an OAuth token the portal
 * refuses as expired, one refresh and one more try (b24restdocs settings/oauth/index.md:
 * on 401 expired_token, refresh and repeat). A portal whose address changed redirects
 * (DOCS:settings/how-to-call-rest-api/change-domen.md): its new address comes with the next
 * token answer (refresh.ts keeps it), so a redirect is one refresh and one more try there.
 */
async function send<T>(cp: CallPath, target: CallTarget, method: string, params: object) {
  const { metrics, config } = cp.ctx;
  assertPortalUrl(config, target.domain, target.base, target.vouched);
  if (target.stored) await operatingGate(cp, target.memberId, method, params);
  let token = target.accessToken;
  let base = target.base;
  let renewed = false;
  let moved = false;
  for (;;) {
    await target.turn();
    let answer;
    try {
      answer = await postRest<T>(cp.fetch, base, method, params, {
        accessToken: token,
        timeoutMs: cp.timeoutMs,
      });
    } catch (e) {
      const renew = target.stored?.renew;
      if (renew && token && !renewed && isExpiredToken(e)) {
        token = (await renew(token)).accessToken;
        renewed = true;
        metrics.restCalls.inc({ outcome: 'expired_token' });
        continue;
      }
      if (renew && token && !moved && isMoved(e)) {
        const fresh = await renew(token);
        moved = true;
        metrics.restCalls.inc({ outcome: PORTAL_MOVED });
        if (fresh.base === base) {
          throw new PermanentError(
            `${(e as Error).message}; the OAuth server still names ${target.domain} (or the new host is outside B24_PORTAL_HOSTS), so the app keeps calling there: reinstall the app or allow the host`,
          );
        }
        assertPortalUrl(config, fresh.domain, fresh.base, target.vouched);
        [token, base] = [fresh.accessToken, fresh.base];
        continue;
      }
      metrics.restCalls.inc({ outcome: isBitrixApiError(e) ? e.bitrixCode || 'error' : 'error' });
      throw target.stored ? operatingLimited(cp, target.memberId, e) : e;
    }
    metrics.restCalls.inc({ outcome: 'ok' });
    if (target.stored) noteTime(cp, target.memberId, method, params, answer);
    return answer.result;
  }
}

/** The methods a request runs: the commands of a batch, or the method itself. */
function methodsOf(method: string, params: object): string[] {
  if (method !== 'batch') return [method];
  const cmd = (params as { cmd?: Record<string, string> }).cmd ?? {};
  return Object.values(cmd).map((c) => String(c).split('?')[0]!.toLowerCase());
}

/**
 * Waits while a method is heavy (up to INLINE_WAIT_MS here), or pauses the job until the
 * portal releases part of the method's operating budget (operating.ts).
 */
async function operatingGate(cp: CallPath, memberId: string, method: string, params: object) {
  let wait = 0;
  let heavy = method;
  for (const m of methodsOf(method, params)) {
    const d = cp.operating.delayFor(memberId, m);
    if (d > wait) [wait, heavy] = [d, m];
  }
  if (wait <= 0) return;
  if (wait > INLINE_WAIT_MS) {
    throw new PausedError(
      `${heavy} is at the portal's operating-time limit (DOCS:limits.md); next try at ${new Date(cp.now() + wait).toISOString()}`,
      wait,
    );
  }
  await cp.sleep(wait);
}

/** Feeds an answer's `time` (and a batch's per-command times) to the operating budget. */
function noteTime(
  cp: CallPath,
  memberId: string,
  method: string,
  params: object,
  answer: { time?: unknown; result: unknown },
) {
  const { operating } = cp;
  operating.note(memberId, method, answer.time);
  const result = answer.result;
  if (method !== 'batch' || !result || typeof result !== 'object') return;
  const cmd = (params as { cmd?: Record<string, string> }).cmd ?? {};
  const times = asRecord((result as Record<string, unknown>).result_time);
  const errors = asRecord((result as Record<string, unknown>).result_error);
  for (const [k, c] of Object.entries(cmd)) {
    const m = String(c).split('?')[0]!.toLowerCase();
    if (times[k] !== undefined) operating.note(memberId, m, times[k]);
    if (asRecord(errors[k]).error === 'OPERATION_TIME_LIMIT') {
      operating.block(
        memberId,
        m,
        operating.lastResetAt(memberId, m) ?? cp.now() + DEFAULT_BLOCK_MS,
      );
    }
  }
}

/**
 * A 429 OPERATION_TIME_LIMIT: the method is blocked until its `operating_reset_at` (the
 * error's, or the last successful answer's: DOCS:settings/performance/limits.md); the job
 * waits until then without spending an attempt, instead of the generic backoff.
 */
function operatingLimited(cp: CallPath, memberId: string, e: unknown): unknown {
  if (!isBitrixApiError(e) || e.bitrixCode !== 'OPERATION_TIME_LIMIT') return e;
  const now = cp.now();
  // The error's own figures if it has them, else the last successful answer's (the docs'
  // advice), else one basket.
  const reset = operatingOf(e.time)?.resetAtMs || cp.operating.lastResetAt(memberId, e.method) || 0;
  const until = reset > now ? reset : now + DEFAULT_BLOCK_MS;
  cp.operating.block(memberId, e.method, until);
  cp.ctx.metrics.restCalls.inc({ outcome: 'OPERATION_TIME_LIMIT' });
  return new PausedError(
    `${e.method}: OPERATION_TIME_LIMIT, blocked by the portal until ${new Date(until).toISOString()}`,
    until - now,
  );
}
