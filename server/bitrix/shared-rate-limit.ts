import type { Knex } from 'knex';
import type { Logger } from '../lib/logger.js';
import { peekLevel, reserveSlot, reserveSlotBelow } from '../../db/stores/rate-buckets.js';
import {
  createRateLimiter,
  STANDARD_LIMITS,
  type RateLimiter,
  type RateLimiterOptions,
  type RateLimits,
} from './rate-limit.js';

/**
 * The per-portal leaky bucket of rate-limit.ts, kept in the database (`rate_buckets`) so that
 * every instance on PostgreSQL spends the same budget: Bitrix24 counts a portal's requests,
 * not ours per process, and three instances pacing themselves at 2 req/s each would send
 * 6 req/s. Each request reserves its slot with one atomic upsert and waits as the bucket
 * says, like the in-process limiter. If the database cannot answer, the instance falls back
 * to its own bucket (logged) rather than stop calling.
 */
export function createSharedRateLimiter(
  db: Knex,
  opts: RateLimiterOptions & { logger?: Logger } = {},
): RateLimiter {
  const defaults = opts.defaults ?? STANDARD_LIMITS;
  const headroom = opts.headroom ?? 2;
  const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const local = createRateLimiter(opts);
  const overrides = new Map<string, RateLimits>();
  const seen = new Map<string, { level: number; at: number }>();
  const limitsOf = (key: string) => overrides.get(key) ?? defaults;
  let warned = false;

  return {
    async acquire(key) {
      const { drainPerSec, burst } = limitsOf(key);
      let reserved: { level: number; at: number };
      try {
        reserved = await reserveSlot(db, key, drainPerSec);
      } catch (e) {
        if (!warned) {
          warned = true;
          opts.logger?.error(
            { err: (e as Error).message },
            'shared REST budget unavailable: pacing this instance on its own',
          );
        }
        return local.acquire(key);
      }
      warned = false;
      seen.set(key, { level: reserved.level, at: Date.now() });
      const room = Math.max(1, burst - headroom);
      const waitMs = Math.max(0, Math.ceil(((reserved.level - room) / drainPerSec) * 1000));
      if (waitMs > 0) await sleep(waitMs);
      return waitMs;
    },
    /**
     * Looks first and reserves only when the wait fits. Another instance may reserve between
     * the look and ours, so the wait can exceed `maxWaitMs` by what the others took meanwhile.
     */
    async tryAcquire(key, maxWaitMs, share = 1) {
      const { drainPerSec, burst } = limitsOf(key);
      const room = Math.max(1, burst - headroom);
      let level: number;
      try {
        level = await peekLevel(db, key, drainPerSec);
      } catch {
        return local.tryAcquire(key, maxWaitMs, share);
      }
      if (share < 1) {
        if (level + 1 > room * share) return null;
        // Taken only if it still fits when reserved: others may have looked at the same level.
        try {
          const got = await reserveSlotBelow(db, key, drainPerSec, room * share);
          if (!got) return null;
          seen.set(key, { level: got.level, at: Date.now() });
          return 0;
        } catch {
          return local.tryAcquire(key, maxWaitMs, share);
        }
      }
      if (((level + 1 - room) / drainPerSec) * 1000 > maxWaitMs) return null;
      return this.acquire(key);
    },
    setLimits(key, limits) {
      local.setLimits(key, limits);
      if (limits) overrides.set(key, limits);
      else overrides.delete(key);
    },
    limitsOf,
    /** The level this instance last saw, drained since (an estimate: others also spend it). */
    level(key) {
      const s = seen.get(key);
      if (!s) return 0;
      return Math.max(0, s.level - ((Date.now() - s.at) / 1000) * limitsOf(key).drainPerSec);
    },
  };
}
