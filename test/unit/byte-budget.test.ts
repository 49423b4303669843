import { describe, expect, it } from '@jest/globals';
import { ByteBudget, ROW_BYTES, storedCost } from '../../server/intake/byte-budget.js';

const MB = 1024 * 1024;
const HOUR = 3_600_000;

describe('ByteBudget', () => {
  const at = (t0 = 1_000_000) => {
    let t = t0;
    return { now: () => t, add: (ms: number) => (t += ms) };
  };

  it("holds an hour's allowance per portal, refused bytes are not taken, and it fills again at that pace", () => {
    const clock = at();
    const b = new ByteBudget(4 * MB, clock.now);
    for (let i = 0; i < 16; i++) expect(b.take(1, 256 * 1024)).toBe(0);
    // Full: the next 256 KB wait for a sixteenth of the hour (225 s).
    expect(b.take(1, 256 * 1024)).toBe(225);
    // Another portal is not touched by the first one's use.
    expect(b.take(2, 256 * 1024)).toBe(0);
    // A refusal took nothing: after 225 s the same delivery fits, once.
    clock.add(225_000);
    expect(b.take(1, 256 * 1024)).toBe(0);
    expect(b.take(1, 1024)).toBeGreaterThan(0);
    // Smaller deliveries fit as the bucket fills.
    clock.add(1000);
    expect(b.take(1, 1024)).toBe(0);
    // An hour later it is full again, and forgotten at the next sweep.
    clock.add(HOUR);
    expect(b.take(1, 4 * MB)).toBe(0);
    expect(b.take(1, 1)).toBeGreaterThan(0);
  });

  it('lets a delivery larger than the whole hour through a full bucket only, and waits at most an hour', () => {
    const clock = at();
    const b = new ByteBudget(MB, clock.now);
    expect(b.take(1, 2 * MB)).toBe(0);
    expect(b.take(1, 2 * MB)).toBe(3600);
    clock.add(HOUR / 2);
    expect(b.take(1, 2 * MB)).toBe(1800);
    clock.add(HOUR / 2);
    expect(b.take(1, 2 * MB)).toBe(0);
  });

  it('says how many were refused, once a minute per portal', () => {
    const clock = at();
    const b = new ByteBudget(MB, clock.now);
    expect(b.take(1, MB)).toBe(0);
    expect(b.toLog(1)).toBeUndefined();
    for (let i = 0; i < 5; i++) expect(b.take(1, 1024)).toBeGreaterThan(0);
    expect(b.toLog(1)).toBe(5);
    b.take(1, 1024);
    b.take(1, 1024);
    expect(b.toLog(1)).toBeUndefined();
    clock.add(60_000);
    b.take(1, MB);
    expect(b.toLog(1)).toBe(3);
    expect(b.toLog(2)).toBeUndefined();
  });

  it('counts a body as stored, in UTF-8, with what its rows cost besides', () => {
    expect(storedCost('abc')).toBe(3 + ROW_BYTES);
    // A CJK character is one UTF-16 unit and three bytes in the database.
    expect(storedCost('\u4e00'.repeat(10))).toBe(30 + ROW_BYTES);
    expect(storedCost(null)).toBe(ROW_BYTES);
  });

  it('is off at 0', () => {
    const b = new ByteBudget(0, at().now);
    for (let i = 0; i < 100; i++) expect(b.take(1, 64 * MB)).toBe(0);
    expect(b.tracked).toBe(0);
  });

  it('forgets portals whose allowance is full again, so strangers do not grow the map', () => {
    const clock = at();
    const b = new ByteBudget(MB, clock.now);
    for (let p = 0; p < 5000; p++) b.take(p, 1024);
    expect(b.tracked).toBe(5000);
    clock.add(HOUR);
    for (let i = 0; i < 10_000; i++) b.take(9_999_999, 1);
    expect(b.tracked).toBe(1);
  });
});
