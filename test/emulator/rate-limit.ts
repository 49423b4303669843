import type { RateLimitOptions } from './types.js';

/**
 * Bitrix24's leaky bucket (DOCS:limits.md): each request adds 1, the level drains by
 * `drainPerSec` per second, and a request that would lift it above `burst` gets
 * 503 QUERY_LIMIT_EXCEEDED. Time comes from the injected clock so tests never sleep.
 */
export interface LeakyBucket {
  configure(options: RateLimitOptions): void;
  /** True when the request may pass (and is counted). */
  take(): boolean;
  readonly hits: number;
  readonly level: number;
}

export function createLeakyBucket(now: () => number): LeakyBucket {
  let enabled = false;
  let drainPerSec = 2;
  let burst = 50;
  let level = 0;
  let last = now();
  let hits = 0;

  const drain = (): void => {
    const t = now();
    level = Math.max(0, level - ((t - last) / 1000) * drainPerSec);
    last = t;
  };

  return {
    configure(options) {
      enabled = options.enabled;
      drainPerSec = options.drainPerSec ?? 2;
      burst = options.burst ?? 50;
      level = 0;
      last = now();
    },
    take() {
      if (!enabled) return true;
      drain();
      if (level + 1 > burst) {
        hits += 1;
        return false;
      }
      level += 1;
      return true;
    },
    get hits() {
      return hits;
    },
    get level() {
      drain();
      return level;
    },
  };
}
