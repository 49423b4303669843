import { ownString } from '../lib/own-string.js';

/**
 * How many rejected deliveries a minute are stored as rows (a size-capped sample each);
 * past any budget only the counters grow. One flood — one forged member_id, or one reason —
 * uses up its own budgets and leaves room for the rest.
 */
export const REJECTED_LOG_BUDGET_PER_MINUTE = 120;
/** Rows a minute for one reject reason. */
export const REJECTED_PER_REASON_PER_MINUTE = 60;
/** Rows a minute for one member_id (forged or not). */
export const REJECTED_PER_MEMBER_PER_MINUTE = 20;
/**
 * Rows a day for one reason. The minute's budgets alone let one stranger posting about once a
 * second to the public events URL store 60 rows a minute for good: about 350 MB a day at 4 KB
 * a body, kept for the retention's 30 days. A day's sample of each reason is enough to tell
 * what is refused and why; the counters go on counting everything.
 */
export const REJECTED_PER_REASON_PER_DAY = 1000;
/** Distinct member_ids tracked a minute; rejections naming further ones are counted only. */
const MAX_MEMBERS_PER_MINUTE = 1000;

export interface RejectBudget {
  /** Whether one more rejected row of this reason and member_id may be stored now. */
  take(reason: string, memberId: string | undefined): boolean;
}

export function createRejectBudget(now: () => number): RejectBudget {
  let minute = -1;
  let day = -1;
  const byReasonToday = new Map<string, number>();
  let total = 0;
  const byReason = new Map<string, number>();
  const byMember = new Map<string, number>();
  return {
    take(reason, memberId) {
      const m = Math.floor(now() / 60_000);
      if (m !== minute) {
        minute = m;
        total = 0;
        byReason.clear();
        byMember.clear();
      }
      const d = Math.floor(now() / 86_400_000);
      if (d !== day) {
        day = d;
        byReasonToday.clear();
      }
      const today = byReasonToday.get(reason) ?? 0;
      if (today >= REJECTED_PER_REASON_PER_DAY) return false;
      const member = memberId ?? '';
      const r = byReason.get(reason) ?? 0;
      const k = byMember.get(member);
      if (total >= REJECTED_LOG_BUDGET_PER_MINUTE) return false;
      if (r >= REJECTED_PER_REASON_PER_MINUTE) return false;
      if (k === undefined && byMember.size >= MAX_MEMBERS_PER_MINUTE) return false;
      if ((k ?? 0) >= REJECTED_PER_MEMBER_PER_MINUTE) return false;
      total++;
      byReason.set(reason, r + 1);
      byReasonToday.set(reason, today + 1);
      byMember.set(k === undefined ? ownString(member) : member, (k ?? 0) + 1);
      return true;
    },
  };
}
