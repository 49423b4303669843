import { describe, expect, it } from '@jest/globals';
import { NO_FLOOD, RequestRate } from '../../server/intake/request-rate.js';

/** `n` deliveries of each portal, in turns (as they arrive mixed). */
const hits = (rate: RequestRate, perPortal: Record<number, number>) => {
  const left = new Map(Object.entries(perPortal).map(([p, n]) => [Number(p), n]));
  while (left.size > 0) {
    for (const [p, n] of left) {
      rate.hit(p);
      if (n === 1) left.delete(p);
      else left.set(p, n - 1);
    }
  }
};
const range = (from: number, to: number, n: number) =>
  Object.fromEntries(Array.from({ length: to - from + 1 }, (_, i) => [from + i, n]));

describe('who floods the intake', () => {
  let ms = 1_764_237_600_000;
  const rate = (mark = 1000) => new RequestRate(mark, () => ms);

  it('is nobody at or under the flood mark', () => {
    const r = rate();
    hits(r, { 1: 600, 2: 400 });
    expect(r.recent()).toBe(1000);
    expect(r.flood()).toBe(NO_FLOOD);
  });

  it('holds the largest sender only, not a busy genuine portal the flood pushed over the mark', () => {
    const r = rate();
    hits(r, { 1: 950, 2: 150, 3: 2 });
    expect(r.flood()).toEqual({ portals: new Set([1]) });
  });

  it('holds a flood spread over many portals at its largest senders, until the rest is under the mark', () => {
    // Thirteen of a stranger's portals at 95 a second each, and ten quiet ones.
    const r = rate();
    hits(r, { ...range(1, 13, 95), ...range(100, 109, 1) });
    const { portals } = r.flood();
    // 1,245 a second: three of the thirteen held leave 960, under the mark.
    expect(portals).toEqual(new Set([1, 2, 3]));
  });

  it('reads the last full second until the current one has more, and forgets it after', () => {
    const r = rate(10);
    hits(r, { 1: 12 });
    ms += 1000;
    hits(r, { 2: 1 });
    expect(r.recent()).toBe(12);
    expect(r.flood()).toEqual({ portals: new Set([1]) });
    ms += 1000;
    expect(r.recent()).toBe(1);
    expect(r.flood()).toBe(NO_FLOOD);
    ms += 1000;
    expect(r.recent()).toBe(0);
    // A gap of more than a second forgets the one before it.
    hits(r, { 1: 12 });
    ms += 2000;
    expect(r.recent()).toBe(0);
    expect(r.flood()).toBe(NO_FLOOD);
  });
});
