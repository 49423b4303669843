/**
 * A per-portal leaky bucket that mirrors Bitrix24's own (b24restdocs limits.md): each
 * request adds 1, the level drains by `drainPerSec`, and the portal refuses a request that
 * would lift it above `burst` with 503 QUERY_LIMIT_EXCEEDED. We reserve a slot before every
 * request and wait until the portal's bucket will have room, so a burst of calls is spread
 * out instead of refused. The portal counts a request when it arrives, which is never before
 * we send it, so its level is never above ours.
 */
export interface RateLimits {
  /** Requests drained per second. */
  readonly drainPerSec: number;
  /** Largest level the portal accepts. */
  readonly burst: number;
}

/** Every plan but Enterprise. */
export const STANDARD_LIMITS: RateLimits = Object.freeze({ drainPerSec: 2, burst: 50 });
/** Enterprise plans. */
export const ENTERPRISE_LIMITS: RateLimits = Object.freeze({ drainPerSec: 5, burst: 250 });

export interface RateLimiter {
  /**
   * Reserves one request for `key` (a portal's member_id) and resolves when it may be sent.
   * Returns how long it waited, in ms.
   */
  acquire(key: string): Promise<number>;
  /**
   * Like `acquire`, but only when the wait would be at most `maxWaitMs`; otherwise nothing
   * is reserved and it resolves to null at once. Probes that anyone can trigger (install,
   * frame entry, lifecycle proofs) use it, so a flood of them fails fast instead of piling
   * reservations onto the portal's bucket ahead of its real work. With `share` below 1 the
   * request is taken only while the bucket stays within that share of its room, without
   * waiting: the rest is left to the portal's own work.
   */
  tryAcquire(key: string, maxWaitMs: number, share?: number): Promise<number | null>;
  /** Limits for one key (the Enterprise override); `undefined` returns it to the default. */
  setLimits(key: string, limits: RateLimits | undefined): void;
  limitsOf(key: string): RateLimits;
  /** The modelled bucket level of `key` now. */
  level(key: string): number;
}

export interface RateLimiterOptions {
  /** @default STANDARD_LIMITS */
  defaults?: RateLimits;
  /** Milliseconds clock. @default Date.now */
  now?: () => number;
  /** @default setTimeout-based */
  sleep?: (ms: number) => Promise<void>;
  /**
   * Requests of the portal's burst we never use. The portal counts a request when it arrives,
   * and arrivals bunch up when earlier requests were slower on the way; other apps on the same
   * server may also spend the portal's budget. @default 2
   */
  headroom?: number;
}

const realSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function createRateLimiter(opts: RateLimiterOptions = {}): RateLimiter {
  const defaults = opts.defaults ?? STANDARD_LIMITS;
  const now = opts.now ?? Date.now;
  const sleep = opts.sleep ?? realSleep;
  const headroom = opts.headroom ?? 2;
  const overrides = new Map<string, RateLimits>();
  const buckets = new Map<string, { level: number; at: number }>();

  const limitsOf = (key: string) => overrides.get(key) ?? defaults;
  const drained = (key: string, t: number) => {
    const b = buckets.get(key);
    if (!b) return 0;
    return Math.max(0, b.level - ((t - b.at) / 1000) * limitsOf(key).drainPerSec);
  };

  const reserve = async (key: string, maxWaitMs: number, share = 1): Promise<number | null> => {
    const t = now();
    const { drainPerSec, burst } = limitsOf(key);
    const level = drained(key, t);
    // The level may exceed `burst` in our model: those are reservations still waiting.
    const room = Math.max(1, burst - headroom);
    if (share < 1 && level + 1 > room * share) return null;
    const waitMs = Math.max(0, Math.ceil(((level + 1 - room) / drainPerSec) * 1000));
    if (waitMs > maxWaitMs) return null;
    buckets.set(key, { level: level + 1, at: t });
    if (buckets.size > 10_000) {
      for (const k of buckets.keys()) if (k !== key && drained(k, t) === 0) buckets.delete(k);
    }
    if (waitMs > 0) await sleep(waitMs);
    return waitMs;
  };

  return {
    acquire: async (key) => (await reserve(key, Infinity))!,
    tryAcquire: reserve,
    setLimits(key, limits) {
      if (limits) overrides.set(key, limits);
      else overrides.delete(key);
    },
    limitsOf,
    level: (key) => drained(key, now()),
  };
}
