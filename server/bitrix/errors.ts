import { PermanentError, RetryableError } from '../lib/retry-errors.js';

/** What Bitrix24 (or the way to it) answered when a REST call failed. */
export interface BitrixFailure {
  /** Bitrix24's `error` code (`QUERY_LIMIT_EXCEEDED`, `expired_token`…), or NETWORK_ERROR. */
  readonly bitrixCode: string;
  /** HTTP status of the answer; 0 when no answer arrived. */
  readonly httpStatus: number;
  /** The REST method called. */
  readonly method: string;
  readonly description: string;
  /** The answer's `time` block, when the error answer had one (OPERATION_TIME_LIMIT). */
  readonly time?: unknown;
}

/** Codes worth another try later, whatever their HTTP status (b24restdocs _includes/system-errors.md, limits.md). */
const RETRYABLE_CODES = new Set([
  'QUERY_LIMIT_EXCEEDED',
  'OPERATION_TIME_LIMIT',
  'OVERLOAD_LIMIT',
  'INTERNAL_SERVER_ERROR',
  'NETWORK_ERROR',
  'REQUEST_TIMEOUT',
  // The portal could not reach its authorization server to check the token: a 401 with
  // "Error connecting to authorization server" (CORE rest lib/oauth/auth.php
  // `onRestCheckAuth`; an OAuthException is 401, lib/oauthexception.php). The portal's
  // state for a moment, not the token's: it failed the event for good.
  'CONNECTION_ERROR',
  // Still expired after the refresh and repeat inside the call: the token expired again
  // meanwhile (a storm). The next attempt refreshes again, at most once per expiry.
  'expired_token',
]);

export function isRetryableFailure(f: Pick<BitrixFailure, 'bitrixCode' | 'httpStatus'>): boolean {
  if (RETRYABLE_CODES.has(f.bitrixCode)) return true;
  if (f.httpStatus === 0 || f.httpStatus >= 500) return true;
  return f.httpStatus === 408 || f.httpStatus === 429;
}

const text = (f: BitrixFailure) =>
  `${f.method}: ${f.bitrixCode || 'ERROR'} (HTTP ${f.httpStatus})${f.description ? ` ${f.description}` : ''}`;

/**
 * A Bitrix24 REST failure that is worth retrying (rate limit, operating limit, 5xx, network).
 * It is a RetryableError, so the worker reschedules the job without any mapping of its own.
 */
export class BitrixRetryableError extends RetryableError implements BitrixFailure {
  readonly bitrixCode: string;
  readonly httpStatus: number;
  readonly method: string;
  readonly description: string;
  readonly time: unknown;
  readonly retryable = true as const;
  constructor(f: BitrixFailure, options: { retryAfterMs?: number; cause?: unknown } = {}) {
    super(text(f), options);
    this.name = 'BitrixRetryableError';
    this.bitrixCode = f.bitrixCode;
    this.httpStatus = f.httpStatus;
    this.method = f.method;
    this.description = f.description;
    this.time = f.time;
  }
}

/** A Bitrix24 REST failure that retrying will not change (any other 4xx): fails the job. */
export class BitrixPermanentError extends PermanentError implements BitrixFailure {
  readonly bitrixCode: string;
  readonly httpStatus: number;
  readonly method: string;
  readonly description: string;
  readonly time: unknown;
  readonly retryable = false as const;
  constructor(f: BitrixFailure, options: { cause?: unknown } = {}) {
    super(text(f), options);
    this.name = 'BitrixPermanentError';
    this.bitrixCode = f.bitrixCode;
    this.httpStatus = f.httpStatus;
    this.method = f.method;
    this.description = f.description;
    this.time = f.time;
  }
}

/** Every REST failure is one of these two; `retryable` tells them apart. */
export type BitrixApiError = BitrixRetryableError | BitrixPermanentError;

export function bitrixApiError(f: BitrixFailure, cause?: unknown): BitrixApiError {
  return isRetryableFailure(f)
    ? new BitrixRetryableError(f, { cause })
    : new BitrixPermanentError(f, { cause });
}

export function isBitrixApiError(e: unknown): e is BitrixApiError {
  return e instanceof BitrixRetryableError || e instanceof BitrixPermanentError;
}

/**
 * Refused before contacting anyone: the host is not in B24_PORTAL_HOSTS / B24_OAUTH_SERVERS,
 * or differs from the portal's stored domain. Retrying cannot help, so it is permanent.
 */
export class NotAllowedHostError extends PermanentError {
  constructor(message: string) {
    super(message);
    this.name = 'NotAllowedHostError';
  }
}
