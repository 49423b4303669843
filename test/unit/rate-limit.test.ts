import { describe, expect, it } from '@jest/globals';
import { createRateLimiter, ENTERPRISE_LIMITS } from '../../server/bitrix/rate-limit.js';

function fakeTime() {
  let t = 0;
  const sleeps: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number) => {
      sleeps.push(ms);
    },
    advance: (ms: number) => (t += ms),
    sleeps,
  };
}

describe('per-portal leaky bucket', () => {
  it('lets a burst of 50 through at once and paces the rest at 2 per second', async () => {
    const time = fakeTime();
    const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 0 });
    const waits = await Promise.all(Array.from({ length: 54 }, () => limiter.acquire('a')));
    expect(waits.slice(0, 50).every((w) => w === 0)).toBe(true);
    expect(waits.slice(50)).toEqual([500, 1000, 1500, 2000]);
  });

  it('tryAcquire reserves only when the wait fits, and reserves nothing otherwise', async () => {
    const time = fakeTime();
    const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 0 });
    for (let i = 0; i < 50; i++) await limiter.acquire('a');
    expect(await limiter.tryAcquire('a', 600)).toBe(500);
    // 1000 ms would be next: refused, and the bucket is not raised by the refusals.
    for (let i = 0; i < 100; i++) expect(await limiter.tryAcquire('a', 600)).toBeNull();
    expect(limiter.level('a')).toBe(51);
    time.advance(1000);
    expect(await limiter.tryAcquire('a', 600)).toBe(0);
  });

  it('tryAcquire with a share keeps the rest of the bucket for acquire, without waiting', async () => {
    const time = fakeTime();
    const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 0 });
    const taken = [];
    for (let i = 0; i < 40; i++) taken.push(await limiter.tryAcquire('a', 3000, 0.5));
    expect(taken.filter((w) => w === 0)).toHaveLength(25);
    expect(taken.slice(25).every((w) => w === null)).toBe(true);
    expect(limiter.level('a')).toBe(25);
    // The other half is the portal's own work, at once.
    for (let i = 0; i < 25; i++) expect(await limiter.acquire('a')).toBe(0);
    expect(time.sleeps).toEqual([]);
  });

  it('drains with time', async () => {
    const time = fakeTime();
    const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 0 });
    for (let i = 0; i < 50; i++) await limiter.acquire('a');
    time.advance(10_000);
    expect(limiter.level('a')).toBe(30);
    expect(await limiter.acquire('a')).toBe(0);
  });

  it('keeps one bucket per portal', async () => {
    const time = fakeTime();
    const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 0 });
    for (let i = 0; i < 50; i++) await limiter.acquire('a');
    expect(await limiter.acquire('b')).toBe(0);
    expect(await limiter.acquire('a')).toBe(500);
  });

  it('takes an Enterprise override for one portal', async () => {
    const time = fakeTime();
    const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 0 });
    limiter.setLimits('big', ENTERPRISE_LIMITS);
    const waits = await Promise.all(Array.from({ length: 251 }, () => limiter.acquire('big')));
    expect(waits.filter((w) => w > 0)).toEqual([200]);
  });
});

it('keeps a headroom of the burst unused', async () => {
  const time = fakeTime();
  const limiter = createRateLimiter({ now: time.now, sleep: time.sleep, headroom: 2 });
  const waits = await Promise.all(Array.from({ length: 49 }, () => limiter.acquire('a')));
  expect(waits.filter((w) => w > 0)).toEqual([500]);
});
