import type { Knex } from 'knex';
import type { Config } from '../config.js';
import type { Clock } from '../lib/clock.js';
import type { Logger } from '../lib/logger.js';
import type { Action } from '../rules/model.js';
import type { RateLimiter } from '../bitrix/rate-limit.js';
import {
  closeDestination,
  getDestination,
  saveDestination,
  takeProbe,
  type DestinationRow,
} from '../../db/stores/destinations.js';
import { PausedError, RetryableError } from '../lib/retry-errors.js';

/**
 * Destinations: every place a step talks to — the host of an `http` step, the
 * Telegram API, the SMTP server, the SMS gateway, a portal's REST endpoint — has a cap on
 * requests at once (per instance) and a circuit breaker shared by every instance (table
 * `destinations`). After `threshold` failures in a row (timeouts, 5xx, connection errors)
 * the destination opens for a cool-down; then one job is let through as the probe: its
 * success closes the destination, its failure doubles the cool-down (up to `maxCooldownMs`).
 * A job for an open destination, or one at its cap, throws PausedError: the worker gives the
 * slot back and refunds the attempt, and the job is claimed again when the destination may
 * be tried.
 */
export interface Destinations {
  run<T>(key: string, work: () => Promise<T>, opts?: RunOptions): Promise<T>;
}

export interface RunOptions {
  /**
   * An admin's test send of a step (the rule builder's "Send this step once"): to an open
   * destination of the portal's own (its http hosts, its REST endpoint) it goes at once, as
   * the probe, rather than waiting out the cool-down: an admin who has just fixed the
   * endpoint was told it was down for minutes, and nothing was sent. Success closes the
   * destination; failure counts as a failed probe. Shared destinations (Telegram, SMTP, SMS)
   * keep their cool-down: one portal's test does not probe them for all.
   */
  probeNow?: boolean;
}

export interface DestinationOptions {
  /** Requests at once to one destination, per instance. */
  concurrency: number;
  /** Failures in a row that open a destination. @default 5 */
  threshold?: number;
  /** The first cool-down. @default 30 s */
  cooldownMs?: number;
  /** @default 10 min */
  maxCooldownMs?: number;
  /** How long a probe may take before another job may probe instead. @default 2 min */
  probeLeaseMs?: number;
  /** How soon a job that found its destination at the cap looks again. @default 1 s */
  busyRetryMs?: number;
}

export interface DestinationDeps {
  db: Knex;
  clock: Clock;
  logger: Logger;
}

/** Failures that say the destination is down, not that the request was wrong. */
export function isDestinationFailure(e: unknown): boolean {
  if (!(e instanceof RetryableError) || e.refusedRequest) return false;
  return !/^HTTP 4\d\d /.test(e.message);
}

const hostOf = (raw: string | undefined, fallback: string): string => {
  try {
    return raw ? new URL(raw).host : fallback;
  } catch {
    return fallback;
  }
};

/**
 * The destination a rendered step talks to. A host an `http` step names is chosen by the
 * portal's own rules, so it is that portal's destination (`http:<host>#<portal id>`): another
 * portal's failures there (a step with a 1 ms timeout fails every time) never open it for
 * this one, nor fill its cap. The operator's channels and the portal's own REST endpoint are
 * one destination each.
 */
export function destinationOf(
  rendered: Action,
  config: Config,
  portal: { id: number; domain: string },
): string {
  switch (rendered.type) {
    case 'http':
      // Opened before rendering: a sealed or $env URL is a string by now.
      return `http:${hostOf(typeof rendered.url === 'string' ? rendered.url : undefined, 'invalid')}#${portal.id}`;
    case 'telegram':
      return `telegram:${hostOf(config.telegram.apiUrl, 'api.telegram.org')}`;
    case 'email':
      return `smtp:${hostOf(config.email.smtpUrl, 'none')}`;
    case 'sms':
      return `sms:${hostOf(config.sms.url, config.sms.provider ?? 'none')}`;
    case 'bitrix':
      return `rest:${portal.domain}`;
  }
}

/**
 * Whether one portal's steps alone use this destination: its own `http` hosts
 * (`…#<portal id>`) and its REST endpoint. The operator's channels (Telegram, SMTP, SMS) are
 * shared: their last error may come from any portal's step and quote its data (a recipient
 * address, a phone number), so it is not repeated to another portal's waiting events.
 */
export const isPortalDestination = (key: string): boolean =>
  /#\d+$/.test(key) || key.startsWith('rest:');

export function createDestinations(deps: DestinationDeps, opts: DestinationOptions): Destinations {
  const { db, logger } = deps;
  const breaker: Breaker = {
    threshold: opts.threshold ?? 5,
    baseCooldown: opts.cooldownMs ?? 30_000,
    maxCooldown: opts.maxCooldownMs ?? 10 * 60_000,
  };
  const probeLease = opts.probeLeaseMs ?? 2 * 60_000;
  const busyRetry = opts.busyRetryMs ?? 1000;
  const active = new Map<string, number>();
  const now = () => deps.clock.now().getTime();

  return {
    async run(key, work, runOpts = {}) {
      if ((active.get(key) ?? 0) >= opts.concurrency) {
        throw new PausedError(
          `destination ${key} has ${opts.concurrency} requests under way`,
          busyRetry,
          { waitingFor: key },
        );
      }
      const t = now();
      const row = await getDestination(db, key);
      let probe = false;
      if (row?.state === 'open') {
        const until = row.retry_at ?? t;
        const atOnce = runOpts.probeNow === true && isPortalDestination(key);
        if (!atOnce && (until > t || !(await takeProbe(db, key, t, t + probeLease)))) {
          const waitMs = Math.max(busyRetry, until - t);
          const quoted = isPortalDestination(key) ? (row.last_error ?? '').trim() : '';
          throw new PausedError(
            `destination ${key} is down (circuit open after ${row.failures} failures)` +
              (quoted ? `: ${quoted}` : ''),
            waitMs,
            { waitingFor: key },
          );
        }
        probe = true;
        logger.info({ destination: key }, 'destination probe');
      }
      active.set(key, (active.get(key) ?? 0) + 1);
      try {
        const result = await work();
        if (row && (row.failures > 0 || row.state !== 'closed')) {
          await closeDestination(db, key, now());
          if (row.state === 'open') logger.info({ destination: key }, 'destination is up again');
        }
        return result;
      } catch (e) {
        if (isDestinationFailure(e)) await recordFailure(deps, breaker, key, probe, e as Error);
        throw e;
      } finally {
        const n = (active.get(key) ?? 1) - 1;
        if (n > 0) active.set(key, n);
        else active.delete(key);
      }
    },
  };
}

/** When a destination opens and how long it stays open. */
interface Breaker {
  readonly threshold: number;
  readonly baseCooldown: number;
  readonly maxCooldown: number;
}

/**
 * A failure that says the destination is down: count it, open the destination at
 * `threshold` failures in a row; an open destination's failed probe doubles its cool-down.
 */
async function recordFailure(
  deps: DestinationDeps,
  breaker: Breaker,
  key: string,
  probe: boolean,
  e: Error,
): Promise<void> {
  const { db, logger } = deps;
  const { threshold, baseCooldown, maxCooldown } = breaker;
  const t = deps.clock.now().getTime();
  const row = await getDestination(db, key);
  const lastError = e.message.slice(0, 500);
  const base: DestinationRow = row ?? {
    key,
    state: 'closed',
    failures: 0,
    cooldown_ms: 0,
    opened_at: null,
    retry_at: null,
    last_error: null,
    updated_at: t,
  };
  const failures = base.failures + 1;
  if (base.state === 'open') {
    // Requests already under way when it opened fail too: only the probe's failure counts.
    if (!probe) return;
    const cooldown = Math.min(maxCooldown, Math.max(baseCooldown, base.cooldown_ms * 2));
    await saveDestination(db, {
      ...base,
      failures,
      cooldown_ms: cooldown,
      retry_at: t + cooldown,
      last_error: lastError,
      updated_at: t,
    });
    logger.warn({ destination: key, cooldownMs: cooldown }, 'destination still down');
    return;
  }
  const opens = failures >= threshold;
  await saveDestination(db, {
    ...base,
    failures,
    last_error: lastError,
    updated_at: t,
    ...(opens
      ? { state: 'open', cooldown_ms: baseCooldown, opened_at: t, retry_at: t + baseCooldown }
      : {}),
  });
  if (opens) {
    logger.warn(
      { destination: key, failures, cooldownMs: baseCooldown, err: lastError },
      'destination is down: its jobs wait (circuit open)',
    );
  }
}

/**
 * How long a REST call for `memberId` would wait for the portal's budget now, from the
 * limiter's modelled level (its headroom assumed at the default 2 requests).
 */
export function restWaitMs(limiter: RateLimiter, memberId: string): number {
  const { drainPerSec, burst } = limiter.limitsOf(memberId);
  const room = Math.max(1, burst - 2);
  return Math.max(0, Math.ceil(((limiter.level(memberId) + 1 - room) / drainPerSec) * 1000));
}
