import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Clock } from '../lib/clock.js';
import type { SecretBox } from '../lib/crypto.js';
import type { Logger } from '../lib/logger.js';
import type { Metrics } from '../metrics.js';
import type { PortalDirectory } from '../portal-directory.js';
import type { PortalRow } from '../../db/stores/portals.js';
import type { RefreshAnswer } from './oauth.js';
import type { RateLimiter, RateLimits } from './rate-limit.js';
import type { FetchFn } from './transport.js';

/**
 * What the REST client needs from the app: the app's deps satisfy it as they are, a test
 * may hand in just these. Nothing in server/bitrix reads the deps themselves.
 */
export interface BitrixContext {
  /** B24_CLIENT_ID/SECRET, B24_OAUTH_SERVERS, B24_PORTAL_HOSTS. */
  readonly config: Pick<Config, 'b24'>;
  readonly db: Knex;
  /** Opens the stored tokens and webhook URLs (oauth.ts is the one place that does). */
  readonly box: SecretBox;
  /** The app's clock: token expiry and portal pauses are measured on it. */
  readonly clock: Clock;
  readonly logger: Logger;
  readonly metrics: Pick<Metrics, 'restCalls' | 'rateLimitWaits'>;
  /** Cached portal lookups, dropped after a refresh changes a portal. */
  readonly portals: Pick<PortalDirectory, 'invalidate'>;
}

/** What the token refresher needs: the client's context without the metrics. */
export type RefresherContext = Omit<BitrixContext, 'metrics'>;

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

export interface ProbeOptions {
  /**
   * Share of the portal's REST budget this probe may fill (1 by default): below 1 it is taken
   * only while the bucket stays within that share, without waiting, else RATE_BUDGET_BUSY.
   */
  budgetShare?: number;
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
  /** `result_total`: how many records a list command found in all, by command key. */
  total?: Record<string, number>;
}

/** Where a not-yet-stored portal is called with a token given in the request (install). */
export interface TokenTarget {
  memberId: string;
  domain: string;
  clientEndpoint: string;
  /**
   * The OAuth server, asked with our client credentials, named `domain` as this member_id's
   * portal: a cloud address of a zone outside B24_PORTAL_HOSTS's list may then be called.
   */
  vouched?: boolean;
}

/** A credential given in the request, for a portal that is not stored (yet). */
export type ProbeCredential = { accessToken: string } | { webhookUrl: string };

export interface BitrixRest {
  /** One REST call for a stored portal (OAuth tokens or inbound webhook, as it was connected). */
  call<T = unknown>(portal: PortalRow, method: string, params?: object): Promise<T>;
  /**
   * Up to 50 commands in one request; it counts once against the rate limit.
   * `authConnector` goes on the batch request itself: Bitrix24 reads `auth_connector` from
   * the top-level request's auth data only, and every command of a batch shares it
   * (core `rest` module: lib/oauth/auth.php, lib/api/event.php `getAuthData()`).
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
    credential: ProbeCredential,
    method: string,
    params?: object,
    opts?: ProbeOptions,
  ): Promise<T>;
  /** Exchanges a refresh token at an allowlisted OAuth server (install-time proof). */
  exchangeRefreshToken(serverEndpoint: string, refreshToken: string): Promise<RefreshAnswer>;
  /** Refreshes a portal's tokens now (single-flight); resolves to the updated row. */
  refresh(portal: PortalRow): Promise<PortalRow>;
  readonly limiter: RateLimiter;
}
