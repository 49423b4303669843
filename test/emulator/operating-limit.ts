import { RestError } from './rest-error.js';
import type { PortalState } from './state.js';

/**
 * The per-method operating-time budget of DOCS:limits.md ("Resource Consumption Limits"):
 * every answer's `time` carries `operating`, the method's execution time summed over the
 * last 10 minutes, and `operating_reset_at`, when part of it is released; once the sum
 * exceeds 480 s the method is blocked for every app and webhook of the portal with 429
 * OPERATION_TIME_LIMIT "Method is blocked due to operation time limit." (CORE:classes/general/
 * rest.php `processCall`, LoadLimiter::is before the call, registerEnding after it), while
 * every other method goes on. The cost of one call is what a test sets per method (real
 * costs depend on the portal's data, which no emulator can know); unset methods cost 0 and
 * report no `operating`. The 429 carries no `time`: DOCS:settings/performance/limits.md
 * ("How to Respond to Limit Errors") says to take the first retry time from
 * `operating_reset_at` of the last successful answer, so the app must not count on one in
 * the error. That page also keeps the sum per application or webhook; here it is per portal,
 * which is the same for the one app the tests run (two processes of it share the sum).
 */
export interface OperatingState {
  /** Seconds one call of a method costs. */
  costs: Map<string, number>;
  /** Charged calls per method: when, and how many seconds. */
  spent: Map<string, Array<{ at: number; sec: number }>>;
  /** @default 480 */
  limitSec: number;
  /** @default 600 000 (10 minutes) */
  windowMs: number;
}

export const createOperatingState = (): OperatingState => ({
  costs: new Map(),
  spent: new Map(),
  limitSec: 480,
  windowMs: 600_000,
});

function live(portal: PortalState, method: string): Array<{ at: number; sec: number }> {
  const o = portal.operating;
  const now = portal.ctx.now();
  const kept = (o.spent.get(method) ?? []).filter((e) => now - e.at < o.windowMs);
  o.spent.set(method, kept);
  return kept;
}

/** `time.operating` / `time.operating_reset_at` for a method that has a cost. */
export function operatingTime(portal: PortalState, method: string): Record<string, number> {
  if (!portal.operating.costs.has(method)) return {};
  const entries = live(portal, method);
  const operating = entries.reduce((a, e) => a + e.sec, 0);
  const oldest = entries[0]?.at ?? portal.ctx.now();
  return {
    operating,
    operating_reset_at: Math.ceil((oldest + portal.operating.windowMs) / 1000),
  };
}

/** The 429 a blocked method gets, or null. */
export function operatingBlock(portal: PortalState, method: string): RestError | null {
  if (!portal.operating.costs.has(method)) return null;
  const time = operatingTime(portal, method);
  if ((time['operating'] ?? 0) <= portal.operating.limitSec) return null;
  return new RestError(
    429,
    'OPERATION_TIME_LIMIT',
    'Method is blocked due to operation time limit.',
  );
}

export function chargeOperating(portal: PortalState, method: string): void {
  const sec = portal.operating.costs.get(method);
  if (sec === undefined) return;
  live(portal, method).push({ at: portal.ctx.now(), sec });
}
