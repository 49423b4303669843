import { describe, expect, it } from '@jest/globals';
import {
  createRejectBudget,
  REJECTED_PER_REASON_PER_DAY,
  REJECTED_PER_REASON_PER_MINUTE,
} from '../../server/intake/reject-budget.js';

/**
 * The sample of rejected deliveries kept as rows. Anyone may post to the events URL: a
 * stranger naming a new made-up member_id each second filled the minute's budget of its
 * reason all day, every row (4 KB a body) kept for the retention's 30 days.
 */
describe('the rejected-delivery sample', () => {
  it('keeps at most a day’s share of one reason, and a new day starts a new share', () => {
    let t = Date.UTC(2026, 11, 5);
    const budget = createRejectBudget(() => t);
    const stored = (minutes: number) => {
      let n = 0;
      for (let m = 0; m < minutes; m++, t += 60_000) {
        // Two a second, each naming another member_id (past the per-member_id budget).
        for (let i = 0; i < 120; i++) if (budget.take('unknown_portal', `m${m}-${i}`)) n++;
      }
      return n;
    };
    // The first minute: the minute's budget of the reason (control: the stranger was heard).
    expect(stored(1)).toBe(REJECTED_PER_REASON_PER_MINUTE);
    // The rest of the day: no more than the day's share in all.
    const rest = stored(24 * 60 - 1);
    expect(REJECTED_PER_REASON_PER_MINUTE + rest).toBe(REJECTED_PER_REASON_PER_DAY);
    // Another reason still has its own.
    expect(budget.take('token_mismatch', 'genuine')).toBe(true);
    // The next day (t is now its first minute): a new share.
    expect(stored(1)).toBe(REJECTED_PER_REASON_PER_MINUTE);
  });
});
