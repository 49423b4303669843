import { describe, expect, it } from '@jest/globals';
import { MAX_RETRY_DELAY_MS, nextRunAt, retryDelayMs } from '../../server/queue/backoff.js';

describe('retry backoff', () => {
  const mid = () => 0.5; // no jitter

  it('starts at the base and doubles', () => {
    expect([1, 2, 3, 4, 5].map((n) => retryDelayMs(n, 10, mid))).toEqual([
      10_000, 20_000, 40_000, 80_000, 160_000,
    ]);
  });

  it('is capped at 6 hours', () => {
    expect(retryDelayMs(30, 10, mid)).toBe(MAX_RETRY_DELAY_MS);
    expect(retryDelayMs(1000, 10, () => 0.999)).toBe(MAX_RETRY_DELAY_MS);
  });

  it('jitters within ±20 %', () => {
    expect(retryDelayMs(1, 10, () => 0)).toBe(8_000);
    expect(retryDelayMs(1, 10, () => 0.9999)).toBeLessThanOrEqual(12_000);
  });

  it('honours a longer Retry-After', () => {
    expect(nextRunAt(1000, 1, 10, 60_000, mid)).toBe(61_000);
    expect(nextRunAt(1000, 1, 10, 1_000, mid)).toBe(11_000);
  });
});
