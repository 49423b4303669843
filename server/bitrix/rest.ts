import { ApiVersion, B24OAuth, type B24OAuthParams } from '@bitrix24/b24jssdk';
import qs from 'qs';
import type { Deps } from '../deps.js';
import { AppError } from '../lib/errors.js';
import { PausedError, PermanentError } from '../queue/errors.js';
import { findPortalById, type PortalRow } from '../../db/stores/portals.js';
import { getSetting } from '../../db/stores/settings.js';
import { BitrixRetryableError, bitrixApiError, isBitrixApiError } from './errors.js';
import { assertPortalUrl } from './hosts.js';
import { exchangeRefreshToken, readTokens, type RefreshAnswer } from './oauth.js';
import {
  createRateLimiter,
  ENTERPRISE_LIMITS,
  STANDARD_LIMITS,
  type RateLimiter,
  type RateLimits,
} from './rate-limit.js';
import { createTokenRefresher, pausedError, type TokenRefresher } from './refresh.js';
import { createSharedRateLimiter } from './shared-rate-limit.js';
import { isPg } from '../../db/connect.js';
import { postRest, type FetchFn } from './transport.js';
import { createOperatingBudget, DEFAULT_BLOCK_MS, operatingOf } from './operating.js';

/** What the REST client needs from the app's deps. */
export type BitrixRestDeps = Pick<
  Deps,
  'config' | 'db' | 'box' | 'clock' | 'logger' | 'metrics' | 'portals'
>;

export interface BitrixRestOptions {
  /** Default per-portal limits. @default STANDARD_LIMITS (2/s, burst 50) */
  limits?: RateLimits;
  /** Burst requests left unused as a safety margin. @default 2 */
  headroom?: number;
  /** Milliseconds clock of the rate limiter (real time: it paces real requests). */
  now?: () => number;
  sleep?: (ms: number) => Promise<void>;
  fetch?: FetchFn;
  /** How long a job waits when its portal needs re-authorisation. @default 10 min */
  pausedRetryMs?: number;
  /** A REST request without an answer by then fails as REQUEST_TIMEOUT (retried). @default 30 s */
  timeoutMs?: number;
  /**
   * A `probe` that would wait longer than this for the portal's REST budget fails at once
   * (RATE_BUDGET_BUSY, retryable) without reserving a slot. @default 3000
   */
  probeMaxWaitMs?: number;
}

export interface BatchOptions {
  halt?: boolean;
  /** `auth_connector` of the whole batch (offline-event calls). */
  authConnector?: string;
}

/** One command of a batch: method and params. */
export type BatchCommand = readonly [method: string, params?: object];

export interface BatchAnswer {
  /** Results by command key, for the commands that succeeded. */
  result: Record<string, unknown>;
  /** Errors by command key: `{error, error_description}`. */
  errors: Record<string, { error: string; error_description: string }>;
}

/** Where a not-yet-stored portal is called with a token given in the request (install). */
export interface TokenTarget {
  memberId: string;
  domain: string;
  clientEndpoint: string;
}

export interface BitrixRest {
  /** One REST call for a stored portal (OAuth tokens or inbound webhook, as it was connected). */
  call<T = unknown>(portal: PortalRow, method: string, params?: object): Promise<T>;
  /**
   * Up to 50 commands in one request; it counts once against the rate limit.
   * `authConnector` goes on the batch request itself: Bitrix24 reads `auth_connector` from
   * the top-level request's auth data only, and every command of a batch shares it
   * (CORE:lib/oauth/auth.php, CORE:lib/api/event.php `getAuthData()`; protocol §3.1).
   */
  batch(
    portal: PortalRow,
    cmds: Readonly<Record<string, BatchCommand>>,
    opts?: BatchOptions,
  ): Promise<BatchAnswer>;
  /**
   * A read that is coalesced with the other reads for the same portal issued in the same
   * tick into one `batch` (≤ 50 commands per request).
   */
  read<T = unknown>(portal: PortalRow, method: string, params?: object): Promise<T>;
  /**
   * A call for a portal that is not stored (yet), with credentials from the request: the
   * install checks AUTH_ID with it, `connect-webhook` the inbound webhook URL. The same host
   * checks and rate limit apply.
   */
  probe<T = unknown>(
    target: TokenTarget,
    credential: { accessToken: string } | { webhookUrl: string },
    method: string,
    params?: object,
  ): Promise<T>;
  /** Exchanges a refresh token at an allowlisted OAuth server (install-time proof). */
  exchangeRefreshToken(serverEndpoint: string, refreshToken: string): Promise<RefreshAnswer>;
  /** Refreshes a portal's tokens now (single-flight); resolves to the updated row. */
  refresh(portal: PortalRow): Promise<PortalRow>;
  readonly limiter: RateLimiter;
}

export const BATCH_LIMIT = 50;
/** A heavy method's pause up to this long is waited out in the call; longer pauses the job. */
const INLINE_WAIT_MS = 2_000;

/** Our limiter paces calls; the SDK's own limiter, adaptive delays and retries are turned off. */
const SDK_RESTRICTIONS = {
  rateLimit: { burstLimit: 1_000_000, drainRate: 1_000_000, adaptiveEnabled: false },
  operatingLimit: { windowMs: 600_000, limitMs: 1_000_000_000, heavyPercent: 100 },
  adaptiveConfig: { enabled: false, thresholdPercent: 100, coefficient: 0, maxDelay: 0 },
  maxRetries: 1,
  retryDelay: 0,
  retryOnNetworkError: false,
};

/** The first of our own errors in an SDK error's chain (a refresh that failed inside it). */
function ownError(e: unknown): Error | undefined {
  let cur: unknown = e;
  for (let i = 0; i < 5 && cur; i++) {
    if (cur instanceof AppError) return cur;
    const next =
      (cur as { originalError?: unknown }).originalError ?? (cur as { cause?: unknown }).cause;
    cur = next;
  }
  return undefined;
}

function fromSdkError(e: unknown, method: string): Error {
  const own = ownError(e);
  if (own) return own;
  const err = e as {
    code?: unknown;
    status?: unknown;
    message?: unknown;
    originalError?: { response?: { data?: { time?: unknown } } };
  };
  const code = typeof err.code === 'string' ? err.code : 'ERROR';
  const status = typeof err.status === 'number' ? err.status : 0;
  return bitrixApiError(
    {
      bitrixCode: code === 'ERR_BAD_REQUEST' ? 'ERROR' : code,
      httpStatus: code === 'NETWORK_ERROR' ? 0 : status,
      method,
      description: typeof err.message === 'string' ? err.message.slice(0, 300) : '',
      // The portal's answer body: OPERATION_TIME_LIMIT says when the method is free again.
      time: err.originalError?.response?.data?.time,
    },
    e,
  );
}

const asRecord = (v: unknown): Record<string, unknown> => {
  if (Array.isArray(v)) return Object.fromEntries(v.map((x, i) => [String(i), x]));
  return v && typeof v === 'object' ? (v as Record<string, unknown>) : {};
};

/**
 * The Bitrix24 REST client. OAuth portals go through b24jssdk's B24OAuth pointed at the
 * stored client endpoint; we do the refresh ourselves (single-flight per portal, the new
 * pair persisted before use, only to an allowlisted OAuth server). Inbound-webhook portals
 * are called with plain fetch. Every request first passes the host check and the per-portal
 * rate limiter.
 */
export function createBitrixRest(deps: BitrixRestDeps, opts: BitrixRestOptions = {}): BitrixRest {
  const { config, db, box, metrics } = deps;
  const fetchFn = opts.fetch ?? fetch;
  const limiterOptions = {
    defaults: opts.limits ?? STANDARD_LIMITS,
    now: opts.now,
    sleep: opts.sleep,
    headroom: opts.headroom,
  };
  // On PostgreSQL several instances may call the same portal: they share one bucket.
  const limiter = isPg(db)
    ? createSharedRateLimiter(db, { ...limiterOptions, logger: deps.logger })
    : createRateLimiter(limiterOptions);
  const pausedRetryMs = opts.pausedRetryMs ?? 10 * 60_000;
  const wallNow = opts.now ?? Date.now;
  const operating = createOperatingBudget({ now: wallNow });
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const timeoutMs = opts.timeoutMs ?? 30_000;
  const probeMaxWaitMs = opts.probeMaxWaitMs ?? 3000;
  const refresher: TokenRefresher = createTokenRefresher(deps, { fetch: fetchFn, pausedRetryMs });
  const limitsLoaded = new Set<string>();
  const pendingReads = new Map<
    number,
    {
      portal: PortalRow;
      items: Array<{
        method: string;
        params: object;
        resolve(v: unknown): void;
        reject(e: unknown): void;
      }>;
    }
  >();

  /** Per-portal override (settings key `rateLimit`: `"enterprise"` or `{drainPerSec, burst}`). */
  async function loadLimits(memberId: string): Promise<void> {
    if (limitsLoaded.has(memberId)) return;
    limitsLoaded.add(memberId);
    const v = await getSetting<unknown>(db, memberId, 'rateLimit');
    if (v === 'enterprise') limiter.setLimits(memberId, ENTERPRISE_LIMITS);
    else if (v && typeof v === 'object') {
      const { drainPerSec, burst } = v as Partial<RateLimits>;
      if (
        typeof drainPerSec === 'number' &&
        typeof burst === 'number' &&
        drainPerSec > 0 &&
        burst >= 1
      ) {
        limiter.setLimits(memberId, { drainPerSec, burst });
      }
    }
  }

  async function pace(memberId: string): Promise<void> {
    await loadLimits(memberId);
    const waited = await limiter.acquire(memberId);
    if (waited > 0) metrics.rateLimitWaits.inc();
  }

  async function counted<T>(p: Promise<T>): Promise<T> {
    try {
      const v = await p;
      metrics.restCalls.inc({ outcome: 'ok' });
      return v;
    } catch (e) {
      metrics.restCalls.inc({ outcome: isBitrixApiError(e) ? e.bitrixCode || 'error' : 'error' });
      throw e;
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
  async function operatingGate(memberId: string, method: string, params: object) {
    let wait = 0;
    let heavy = method;
    for (const m of methodsOf(method, params)) {
      const d = operating.delayFor(memberId, m);
      if (d > wait) [wait, heavy] = [d, m];
    }
    if (wait <= 0) return;
    if (wait > INLINE_WAIT_MS) {
      throw new PausedError(
        `${heavy} is at the portal's operating-time limit (DOCS:limits.md); next try at ${new Date(wallNow() + wait).toISOString()}`,
        wait,
      );
    }
    await sleep(wait);
  }

  /** Feeds an answer's `time` (and a batch's per-command times) to the operating budget. */
  function noteTime(
    memberId: string,
    method: string,
    params: object,
    time: unknown,
    result: unknown,
  ) {
    operating.note(memberId, method, time);
    if (method !== 'batch' || !result || typeof result !== 'object') return;
    const cmd = (params as { cmd?: Record<string, string> }).cmd ?? {};
    const times = asRecord((result as Record<string, unknown>).result_time);
    const errors = asRecord((result as Record<string, unknown>).result_error);
    for (const [k, c] of Object.entries(cmd)) {
      const m = String(c).split('?')[0]!.toLowerCase();
      if (times[k] !== undefined) operating.note(memberId, m, times[k]);
      if (asRecord(errors[k]).error === 'OPERATION_TIME_LIMIT') {
        operating.block(memberId, m, wallNow() + DEFAULT_BLOCK_MS);
      }
    }
  }

  /**
   * A 429 OPERATION_TIME_LIMIT: the method is blocked until its `operating_reset_at`; the job
   * waits until then without spending an attempt, instead of the generic backoff.
   */
  function operatingLimited(memberId: string, e: unknown): unknown {
    if (!isBitrixApiError(e) || e.bitrixCode !== 'OPERATION_TIME_LIMIT') return e;
    const reset = operatingOf(e.time)?.resetAtMs ?? 0;
    const until = reset > wallNow() ? reset : wallNow() + DEFAULT_BLOCK_MS;
    operating.block(memberId, e.method, until);
    metrics.restCalls.inc({ outcome: 'OPERATION_TIME_LIMIT' });
    return new PausedError(
      `${e.method}: OPERATION_TIME_LIMIT, blocked by the portal until ${new Date(until).toISOString()}`,
      until - wallNow(),
    );
  }

  /** The stored row, re-read: tokens may have rotated since the caller loaded it. */
  async function current(portal: PortalRow): Promise<PortalRow> {
    const row = await findPortalById(db, portal.id);
    if (!row || row.member_id !== portal.member_id) {
      throw new PermanentError(`portal ${portal.member_id} is not stored`);
    }
    if (row.status === 'uninstalled')
      throw new PermanentError(`portal ${row.member_id} is uninstalled`);
    if (row.status === 'needs_reauth') {
      throw new PausedError(`portal ${row.member_id} needs re-authorisation`, pausedRetryMs);
    }
    if (row.pause_reason) {
      // invalid_client / PAYMENT_REQUIRED at the last refresh: wait, then try one refresh.
      const left = (row.paused_at ?? 0) + pausedRetryMs - deps.clock.now().getTime();
      if (left > 0) throw pausedError(row, left);
      return refresher.refresh(row.id, undefined, { recheck: true });
    }
    return row;
  }

  async function webhookCall<T>(row: PortalRow, method: string, params: object): Promise<T> {
    if (!row.webhook_url_enc)
      throw new PermanentError(`portal ${row.member_id} has no webhook URL`);
    const url = box.decrypt(row.webhook_url_enc);
    assertPortalUrl(config, row.domain, url);
    await operatingGate(row.member_id, method, params);
    await pace(row.member_id);
    let answer;
    try {
      answer = await counted(postRest<T>(fetchFn, url, method, params, { timeoutMs }));
    } catch (e) {
      throw operatingLimited(row.member_id, e);
    }
    noteTime(row.member_id, method, params, answer.time, answer.result);
    return answer.result;
  }

  async function oauthCall<T>(portal: PortalRow, method: string, params: object): Promise<T> {
    let row = portal;
    const endpoint = row.client_endpoint ?? `https://${row.domain}/rest/`;
    assertPortalUrl(config, row.domain, endpoint);
    let tokens = readTokens(box, row);
    if (!tokens) throw new PermanentError(`portal ${row.member_id} has no stored tokens`);
    const nowMs = deps.clock.now().getTime();
    if (tokens.expiresAt !== null && tokens.expiresAt <= nowMs) {
      row = await refresher.refresh(row.id, tokens.accessToken);
      tokens = readTokens(box, row)!;
    }
    // The SDK compares expiry with the real clock; hand it the time left on ours.
    const left = tokens.expiresAt === null ? 3600_000 : Math.max(1000, tokens.expiresAt - nowMs);
    const inUse = { accessToken: tokens.accessToken };
    const params0: B24OAuthParams = {
      applicationToken: '',
      userId: row.installed_by_user_id ?? 0,
      memberId: row.member_id,
      accessToken: tokens.accessToken,
      refreshToken: '',
      expires: Math.floor((Date.now() + left) / 1000),
      expiresIn: Math.round(left / 1000),
      scope: row.scope ?? '',
      domain: row.domain,
      clientEndpoint: endpoint,
      serverEndpoint: row.server_endpoint ?? '',
      status: (row.plan ?? 'L') as B24OAuthParams['status'],
    };
    // No client secret for the SDK: it never refreshes by itself (see setCustomRefreshAuth).
    const b24 = new B24OAuth(
      params0,
      { clientId: config.b24.clientId ?? '', clientSecret: '' },
      { restrictionParams: SDK_RESTRICTIONS },
    );
    b24.setCustomRefreshAuth(async () => {
      const fresh = await refresher.refresh(row.id, inUse.accessToken);
      const t = readTokens(box, fresh)!;
      inUse.accessToken = t.accessToken;
      const leftMs = Math.max(1000, (t.expiresAt ?? nowMs + 3600_000) - deps.clock.now().getTime());
      metrics.restCalls.inc({ outcome: 'expired_token' });
      return {
        access_token: t.accessToken,
        refresh_token: '',
        expires: String(Math.floor((Date.now() + leftMs) / 1000)),
        expires_in: String(Math.round(leftMs / 1000)),
        client_endpoint: endpoint,
        server_endpoint: fresh.server_endpoint ?? '',
        member_id: fresh.member_id,
        scope: fresh.scope ?? '',
        status: fresh.plan ?? 'L',
        domain: fresh.domain,
      };
    });
    // Paced right before axios sends, so time spent in the SDK does not bunch requests up;
    // the SDK's repeat after a refresh passes here too.
    b24.getHttpClient(ApiVersion.v2).ajaxClient.interceptors.request.use(async (cfg) => {
      await pace(row.member_id);
      cfg.timeout = timeoutMs;
      return cfg;
    });
    await operatingGate(row.member_id, method, params);
    let res;
    try {
      res = await b24.actions.v2.call.make<T>({
        method,
        params: params as Record<string, unknown>,
      });
    } catch (e) {
      const err = fromSdkError(e, method);
      if (isBitrixApiError(err)) metrics.restCalls.inc({ outcome: err.bitrixCode || 'error' });
      throw operatingLimited(row.member_id, err);
    }
    if (!res.isSuccess) {
      const msg = res.getErrorMessages().join('; ');
      metrics.restCalls.inc({ outcome: 'error' });
      throw bitrixApiError({
        bitrixCode: 'ERROR',
        httpStatus: res.getStatus(),
        method,
        description: msg,
      });
    }
    metrics.restCalls.inc({ outcome: 'ok' });
    const data = res.getData()!;
    noteTime(row.member_id, method, params, data.time, data.result);
    return data.result;
  }

  async function call<T>(portal: PortalRow, method: string, params: object = {}): Promise<T> {
    const row = await current(portal);
    return row.auth_mode === 'webhook'
      ? webhookCall<T>(row, method, params)
      : oauthCall<T>(row, method, params);
  }

  async function batch(
    portal: PortalRow,
    cmds: Readonly<Record<string, BatchCommand>>,
    o: BatchOptions = {},
  ): Promise<BatchAnswer> {
    const keys = Object.keys(cmds);
    if (keys.length > BATCH_LIMIT) {
      throw new PermanentError(`a batch holds at most ${BATCH_LIMIT} commands, got ${keys.length}`);
    }
    if (keys.length === 0) return { result: {}, errors: {} };
    const cmd: Record<string, string> = {};
    for (const k of keys) {
      const [method, params] = cmds[k]!;
      const query = params ? qs.stringify(params) : '';
      cmd[k] = query ? `${method}?${query}` : method;
    }
    const answer = await call<Record<string, unknown>>(portal, 'batch', {
      halt: o.halt ? 1 : 0,
      cmd,
      ...(o.authConnector ? { auth_connector: o.authConnector } : {}),
    });
    const errors: BatchAnswer['errors'] = {};
    for (const [k, v] of Object.entries(asRecord(answer.result_error))) {
      const e = asRecord(v);
      errors[k] = {
        error: String(e.error ?? ''),
        error_description: String(e.error_description ?? ''),
      };
    }
    return { result: asRecord(answer.result), errors };
  }

  async function flush(portalId: number): Promise<void> {
    const pending = pendingReads.get(portalId);
    pendingReads.delete(portalId);
    if (!pending) return;
    const { portal, items } = pending;
    if (items.length === 1) {
      const only = items[0]!;
      call(portal, only.method, only.params).then(only.resolve, only.reject);
      return;
    }
    for (let i = 0; i < items.length; i += BATCH_LIMIT) {
      const chunk = items.slice(i, i + BATCH_LIMIT);
      const cmds: Record<string, BatchCommand> = {};
      chunk.forEach((it, j) => (cmds[`r${j}`] = [it.method, it.params]));
      batch(portal, cmds).then(
        (answer) => {
          chunk.forEach((it, j) => {
            const key = `r${j}`;
            const err = answer.errors[key];
            if (err) {
              it.reject(
                bitrixApiError({
                  bitrixCode: err.error,
                  httpStatus: 400,
                  method: it.method,
                  description: err.error_description,
                }),
              );
            } else if (key in answer.result) it.resolve(answer.result[key]);
            else {
              it.reject(
                bitrixApiError({
                  bitrixCode: 'ERROR_UNEXPECTED_ANSWER',
                  httpStatus: 200,
                  method: it.method,
                  description: 'no result in the batch answer',
                }),
              );
            }
          });
        },
        (e: unknown) => chunk.forEach((it) => it.reject(e)),
      );
    }
  }

  return {
    limiter,
    call,
    batch,
    read<T>(portal: PortalRow, method: string, params: object = {}): Promise<T> {
      return new Promise<T>((resolve, reject) => {
        let pending = pendingReads.get(portal.id);
        if (!pending) {
          pending = { portal, items: [] };
          pendingReads.set(portal.id, pending);
          setImmediate(() => void flush(portal.id));
        }
        pending.items.push({ method, params, resolve: resolve as (v: unknown) => void, reject });
      });
    },
    async probe<T>(
      target: TokenTarget,
      credential: { accessToken: string } | { webhookUrl: string },
      method: string,
      params: object = {},
    ) {
      const base = 'webhookUrl' in credential ? credential.webhookUrl : target.clientEndpoint;
      assertPortalUrl(config, target.domain, base);
      await loadLimits(target.memberId);
      const waited = await limiter.tryAcquire(target.memberId, probeMaxWaitMs);
      if (waited === null) {
        metrics.restCalls.inc({ outcome: 'RATE_BUDGET_BUSY' });
        throw new BitrixRetryableError(
          {
            bitrixCode: 'RATE_BUDGET_BUSY',
            httpStatus: 429,
            method,
            description: `the portal's REST budget is taken for more than ${probeMaxWaitMs} ms`,
          },
          { retryAfterMs: probeMaxWaitMs },
        );
      }
      if (waited > 0) metrics.rateLimitWaits.inc();
      const answer = await counted(
        postRest<T>(
          fetchFn,
          base,
          method,
          params,
          'accessToken' in credential
            ? { accessToken: credential.accessToken, timeoutMs }
            : { timeoutMs },
        ),
      );
      return answer.result;
    },
    exchangeRefreshToken: (serverEndpoint, refreshToken) =>
      exchangeRefreshToken(config, fetchFn, serverEndpoint, refreshToken),
    async refresh(portal) {
      const row = await current(portal);
      const tokens = readTokens(box, row);
      return refresher.refresh(row.id, tokens?.accessToken);
    },
  };
}
