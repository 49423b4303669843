import { describe, expect, it } from '@jest/globals';
import { createPortalStepBudget } from '../../server/queue/step-budget.js';

describe("a portal's budget of characters its steps fill in", () => {
  const MI = 1024 * 1024;

  it('lets one largest step through at once, then waits what it overdrew', () => {
    let t = 0;
    const b = createPortalStepBudget(2 * MI, () => t, 8 * MI);
    expect(b.spend(1, 6 * MI)).toBe(false);
    expect(b.waitMs(1)).toBe(0);
    expect(b.spend(1, 6 * MI)).toBe(true); // 8 - 12 = -4 Mi: below zero now
    expect(b.waitMs(1)).toBe(2000);
    expect(b.waiting()).toEqual([1]);
    expect(b.waitMs(2)).toBe(0); // another portal is not held
    t += 1000;
    expect(b.waitMs(1)).toBe(1000);
    t += 1000;
    expect(b.waitMs(1)).toBe(0);
    expect(b.waiting()).toEqual([]);
  });

  it('does not drain when the clock is set back', () => {
    let t = 100_000;
    const b = createPortalStepBudget(1 * MI, () => t, 8 * MI);
    b.spend(1, 7 * MI);
    t -= 60_000; // an hour of NTP correction would have made it -59 Mi
    expect(b.waitMs(1)).toBe(0);
    expect(b.waiting()).toEqual([]);
  });

  it('holds nobody at rate 0 (off)', () => {
    const b = createPortalStepBudget(0, () => 0, 8 * MI);
    expect(b.spend(1, 100 * MI)).toBe(false);
    expect(b.waitMs(1)).toBe(0);
    expect(b.waiting()).toEqual([]);
  });
});
