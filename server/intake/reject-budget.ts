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
/** Distinct member_ids tracked a minute; rejections naming further ones are counted only. */
const MAX_MEMBERS_PER_MINUTE = 1000;

export interface RejectBudget {
  /** Whether one more rejected row of this reason and member_id may be stored now. */
  take(reason: string, memberId: string | undefined): boolean;
}

export function createRejectBudget(now: () => number): RejectBudget {
  let minute = -1;
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
      const member = memberId ?? '';
      const r = byReason.get(reason) ?? 0;
      const k = byMember.get(member);
      if (total >= REJECTED_LOG_BUDGET_PER_MINUTE) return false;
      if (r >= REJECTED_PER_REASON_PER_MINUTE) return false;
      if (k === undefined && byMember.size >= MAX_MEMBERS_PER_MINUTE) return false;
      if ((k ?? 0) >= REJECTED_PER_MEMBER_PER_MINUTE) return false;
      total++;
      byReason.set(reason, r + 1);
      byMember.set(k === undefined ? ownString(member) : member, (k ?? 0) + 1);
      return true;
    },
  };
}
