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
import { destinationName } from '../lib/destination-name.js';
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
 *
 * The operator's channels (Telegram, SMTP, SMS) are shared by every portal, and what a step
 * sends there is the portal's to choose: one portal's messages may fail where everyone
 * else's go through (a gateway that answers 500 to one text). So a portal's failures there
 * count twice: in its own row, `<key>#<portal id>`, which opens for that portal alone as any
 * destination does, and in the shared row, which opens for all only when the channel itself
 * does not answer a request of the operator's own (`check`, server/actions/channel-check.ts):
 * two portals (anyone may open two) whose texts a gateway refuses with 500 would otherwise
 * hold every portal's messages for cool-downs of up to ten minutes, again and again.
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
  /**
   * The portal whose step this is. To a shared destination its failures also count in the
   * portal's own row (see above); absent, a send of the operator's own.
   */
  portalId?: number;
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
  /**
   * Whether a shared channel answers a request of the operator's own (true: it does). Asked
   * when portals' failures in a row would open it for all; without it, they open it once
   * they are not one portal's (downForAll).
   */
  check?: (key: string) => Promise<boolean>;
  /** How long a check's "it answers" holds. @default 30 s */
  checkTtlMs?: number;
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
    answers: opts.check
      ? sharedCheck(opts.check, opts.checkTtlMs ?? 30_000, deps.clock)
      : undefined,
  };
  const probeLease = opts.probeLeaseMs ?? 2 * 60_000;
  const busyRetry = opts.busyRetryMs ?? 1000;
  const active = new Map<string, number>();
  const now = () => deps.clock.now().getTime();

  /** The PausedError of a job waiting for `key`'s open row. */
  function down(key: string, row: DestinationRow, waitMs: number) {
    const quoted = isPortalDestination(key) ? (row.last_error ?? '').trim() : '';
    return new PausedError(
      `destination ${destinationName(key)} is down (circuit open after ${row.failures} failures)` +
        (quoted ? `: ${quoted}` : ''),
      Math.max(busyRetry, waitMs),
      { waitingFor: key },
    );
  }

  /**
   * Throws while `key`'s row is open and its cool-down not over (an admin's test send of the
   * portal's own destination goes at once: `probeNow`).
   */
  function waitOut(key: string, row: DestinationRow | undefined, probeNow: boolean) {
    if (row?.state !== 'open' || (probeNow && isPortalDestination(key))) return;
    const until = row.retry_at ?? now();
    if (until > now()) throw down(key, row, until - now());
  }

  /** Whether the job is the probe of `key`'s open row; throws if another job probes it. */
  async function probeOf(key: string, row: DestinationRow | undefined, probeNow: boolean) {
    if (row?.state !== 'open') return false;
    const t = now();
    const atOnce = probeNow && isPortalDestination(key);
    if (!atOnce && !(await takeProbe(db, key, t, t + probeLease))) throw down(key, row, 0);
    logger.info({ destination: key }, 'destination probe');
    return true;
  }

  /** A success: `key`'s row closed again (a no-op unless it had failures). */
  async function succeeded(key: string, row: DestinationRow | undefined) {
    if (!row || (row.failures === 0 && row.state === 'closed')) return;
    await closeDestination(db, key, now());
    if (row.state === 'open') logger.info({ destination: key }, 'destination is up again');
  }

  return {
    async run(key, work, runOpts = {}) {
      if ((active.get(key) ?? 0) >= opts.concurrency) {
        throw new PausedError(
          `destination ${destinationName(key)} has ${opts.concurrency} requests under way`,
          busyRetry,
          { waitingFor: key },
        );
      }
      const shared = !isPortalDestination(key);
      const ownKey =
        shared && runOpts.portalId !== undefined ? `${key}#${runOpts.portalId}` : undefined;
      const probeNow = runOpts.probeNow === true;
      const ownRow = ownKey ? await getDestination(db, ownKey) : undefined;
      const row = await getDestination(db, key);
      // Neither probe is taken while the other row still makes the job wait.
      if (ownKey) waitOut(ownKey, ownRow, false);
      waitOut(key, row, probeNow);
      const ownProbe = ownKey ? await probeOf(ownKey, ownRow, false) : false;
      const probe = await probeOf(key, row, probeNow);
      active.set(key, (active.get(key) ?? 0) + 1);
      try {
        const result = await work();
        if (ownKey) await succeeded(ownKey, ownRow);
        await succeeded(key, row);
        return result;
      } catch (e) {
        if (isDestinationFailure(e)) {
          if (ownKey) await recordFailure(deps, breaker, ownKey, ownProbe, e as Error);
          const by = shared ? String(runOpts.portalId ?? '*') : undefined;
          await recordFailure(deps, breaker, key, probe, e as Error, by);
        }
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
  /** Whether a shared channel answers the operator's own check (see DestinationOptions.check). */
  readonly answers: ((key: string) => Promise<boolean>) | undefined;
}

/**
 * `check`, asked at most once at a time per channel, its "it answers" kept for `ttlMs` (a
 * "does not answer" opens the channel, and is asked again when it would close).
 */
function sharedCheck(check: (key: string) => Promise<boolean>, ttlMs: number, clock: Clock) {
  const asked = new Map<string, { at: number; answer: Promise<boolean> }>();
  return (key: string): Promise<boolean> => {
    const t = clock.now().getTime();
    const kept = asked.get(key);
    if (kept && t - kept.at < ttlMs) return kept.answer;
    const answer = check(key).catch(() => false);
    asked.set(key, { at: t, answer });
    void answer.then((up) => {
      if (!up && asked.get(key)?.answer === answer) asked.delete(key);
    });
    return answer;
  };
}

/** Portals kept in a shared destination's run of failures, at most. */
const STREAK_PORTALS = 4;

/**
 * A shared destination's run of failures with one more of `by`: `portal:failures` pairs,
 * `'3:5,7:1'`.
 */
function withFailureOf(streak: string | null | undefined, by: string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const pair of streak ? streak.split(',') : []) {
    const [who, n] = pair.split(':');
    if (who) counts.set(who, Number(n) || 1);
  }
  if (counts.has(by) || counts.size < STREAK_PORTALS) counts.set(by, (counts.get(by) ?? 0) + 1);
  return counts;
}

/**
 * Whether a shared destination's run of failures says it is down for everyone: a send of the
 * operator's own failed, or two failures or more came from other portals than the one that
 * failed most (one portal's texts refused a hundred times, and one other portal's single
 * timeout meanwhile, do not).
 */
function downForAll(counts: Map<string, number>): boolean {
  if (counts.has('*')) return true;
  const all = [...counts.values()];
  return all.reduce((a, b) => a + b, 0) - Math.max(0, ...all) >= 2;
}

/**
 * What `threshold` failures in a row do: a destination of one portal's opens; a shared one
 * opens when the operator's own send failed among them or the channel does not answer the
 * operator's check ('answers': it does, so they were the portals' own), and without a check
 * once they are not one portal's.
 */
async function sharedVerdict(
  breaker: Breaker,
  key: string,
  streak: Map<string, number> | undefined,
): Promise<'opens' | 'counts' | 'answers'> {
  if (streak === undefined || streak.has('*')) return 'opens';
  if (breaker.answers) return (await breaker.answers(key)) ? 'answers' : 'opens';
  return downForAll(streak) ? 'opens' : 'counts';
}

/**
 * A failure that says the destination is down: count it, open the destination at
 * `threshold` failures in a row; an open destination's failed probe doubles its cool-down.
 * `by`: for a shared destination, the portal whose step failed (`'*'`: the operator's own
 * send); the destination then opens only once the run of failures is not one portal's.
 */
async function recordFailure(
  deps: DestinationDeps,
  breaker: Breaker,
  key: string,
  probe: boolean,
  e: Error,
  by?: string,
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
  const streak = by === undefined ? undefined : withFailureOf(base.streak_portals, by);
  const verdict = failures < threshold ? 'counts' : await sharedVerdict(breaker, key, streak);
  if (verdict === 'answers') {
    // The channel answers the operator: the failures were the portals' own (their own rows
    // count them); the shared run starts again. Read again: the check took a while, and an
    // operator's own failed send may have opened the row meanwhile.
    const now = await getDestination(db, key);
    if (now?.state === 'open') return;
    await saveDestination(db, {
      ...(now ?? base),
      failures: 0,
      streak_portals: null,
      updated_at: t,
    });
    logger.info(
      { destination: key, failures, portals: streak ? [...streak.keys()] : [] },
      "a shared channel's failures in a row were the portals' own: it answers the operator's check, so it stays closed for all",
    );
    return;
  }
  const opens = verdict === 'opens';
  await saveDestination(db, {
    ...base,
    failures,
    last_error: lastError,
    streak_portals: streak ? [...streak].map(([who, n]) => `${who}:${n}`).join(',') : null,
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
