import type { ProbeOptions } from '../bitrix/types.js';

/**
 * A portal whose tokens were refused this often in PROBE_REFUSAL_WINDOW_MS (per instance) is
 * being probed by someone who does not hold them: anyone who knows its member_id and domain
 * can post frame entries or installs with made-up AUTH_IDs, and each is checked with the
 * portal itself (`profile`, `app.info`) on its REST budget, which its rules' steps need. Its
 * checks then take the lower half of the budget only, without waiting (RATE_BUDGET_BUSY when
 * that half is full), so its events go on at full speed meanwhile. Callers count in lanes:
 * frame entries that carried the portal's application token apart from those that did not
 * (server/ui/frame-entry.ts), installs apart from both.
 */
export const PROBE_REFUSALS_GUARDED = 10;
export const PROBE_REFUSAL_WINDOW_MS = 60_000;
const refusals = new Map<string, number[]>();

const recent = (lane: string, now: number): number[] =>
  (refusals.get(lane) ?? []).filter((t) => now - t < PROBE_REFUSAL_WINDOW_MS);

/** How a check in this lane may use the portal's budget now. */
export function guardedProbe(lane: string, now: number): ProbeOptions {
  return { budgetShare: recent(lane, now).length >= PROBE_REFUSALS_GUARDED ? 0.5 : 1 };
}

/** A token in this lane was refused by the portal. */
export function countProbeRefusal(lane: string, now: number): void {
  const list = recent(lane, now);
  list.push(now);
  refusals.set(lane, list.slice(-PROBE_REFUSALS_GUARDED));
  if (refusals.size > 10_000) {
    for (const [k, v] of refusals)
      if (now - (v.at(-1) ?? 0) >= PROBE_REFUSAL_WINDOW_MS) refusals.delete(k);
  }
}
