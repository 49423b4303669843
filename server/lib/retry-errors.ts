import { AppError } from './errors.js';

/**
 * How a job handler says what should happen next. Anything else thrown counts as retryable
 * (network trouble, 5xx) until MAX_ATTEMPTS.
 */
export class RetryableError extends AppError {
  /** Earliest retry, when the remote said so (Retry-After, operating_reset_at). */
  readonly retryAfterMs: number | undefined;
  /**
   * The destination answered and refused this request for now (an SMTP relay's 450 for one
   * recipient): retried, but no sign the destination is down (server/queue/destinations.ts).
   */
  readonly refusedRequest: boolean;
  constructor(
    message: string,
    options: { retryAfterMs?: number; cause?: unknown; refusedRequest?: boolean } = {},
  ) {
    super('INTERNAL', message, { status: 503, cause: options.cause });
    this.name = 'RetryableError';
    this.retryAfterMs = options.retryAfterMs;
    this.refusedRequest = options.refusedRequest === true;
  }
}

/** A failure that will not change by retrying (4xx other than 408/409/425/429): fail at once. */
export class PermanentError extends AppError {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('INTERNAL', message, { status: 422, cause: options.cause });
    this.name = 'PermanentError';
  }
}

/** Processing must wait without spending an attempt (e.g. the portal needs re-authorisation). */
export class PausedError extends AppError {
  readonly resumeAfterMs: number;
  /** The destination the job waits for (an open circuit), counted on the dashboard. */
  readonly waitingFor: string | undefined;
  constructor(message: string, resumeAfterMs: number, options: { waitingFor?: string } = {}) {
    super('INTERNAL', message, { status: 503 });
    this.name = 'PausedError';
    this.resumeAfterMs = resumeAfterMs;
    this.waitingFor = options.waitingFor;
  }
}

/**
 * The job gives its worker slot back between two steps: it has held the slot long and
 * another portal's job waits for one (server/queue/slot-turn.ts). Not a failure: the job
 * runs again at once, no attempt spent, its finished steps skipped, its event `processing`.
 */
export class YieldError extends AppError {
  constructor() {
    super('INTERNAL', 'gave the worker slot to another portal', { status: 503 });
    this.name = 'YieldError';
  }
}
