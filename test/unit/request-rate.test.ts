import { describe, expect, it } from '@jest/globals';
import { NO_FLOOD, RequestRate } from '../../server/intake/request-rate.js';

const hits = (rate: RequestRate, portal: number, n: number) => {
  for (let i = 0; i < n; i++) rate.hit(portal);
};

describe('who floods the intake', () => {
  const marks = { flood: 10, portal: 3 };
  let ms = 1_764_237_600_000;
  const rate = () => new RequestRate(marks, () => ms);

  it('is nobody at or under the flood mark', () => {
    const r = rate();
    hits(r, 1, 10);
    expect(r.recent()).toBe(10);
    expect(r.flood()).toBe(NO_FLOOD);
  });

  it('names the portals over the portal mark, and holds back the others only when they flood too', () => {
    const one = rate();
    hits(one, 1, 12);
    hits(one, 2, 3);
    expect(one.flood()).toEqual({ all: false, portals: new Set([1]) });

    const two = rate();
    hits(two, 1, 6);
    hits(two, 2, 6);
    hits(two, 3, 1);
    expect(two.flood()).toEqual({ all: false, portals: new Set([1, 2]) });

    // Twelve portals under the portal mark: the load is spread, everyone yields.
    const spread = rate();
    for (let p = 1; p <= 12; p++) hits(spread, p, 1);
    expect(spread.flood()).toEqual({ all: true, portals: new Set() });

    // One sender, and the others together over the flood mark as well.
    const both = rate();
    hits(both, 1, 20);
    for (let p = 2; p <= 13; p++) hits(both, p, 1);
    expect(both.flood()).toEqual({ all: true, portals: new Set([1]) });
  });

  it('reads the last full second until the current one has more, and forgets it after', () => {
    const r = rate();
    hits(r, 1, 12);
    ms += 1000;
    hits(r, 2, 1);
    expect(r.recent()).toBe(12);
    expect(r.flood()).toEqual({ all: false, portals: new Set([1]) });
    ms += 1000;
    expect(r.recent()).toBe(1);
    expect(r.flood()).toBe(NO_FLOOD);
    ms += 1000;
    expect(r.recent()).toBe(0);
    // A gap of more than a second forgets the one before it.
    hits(r, 1, 12);
    ms += 2000;
    expect(r.recent()).toBe(0);
    expect(r.flood()).toBe(NO_FLOOD);
  });
});
