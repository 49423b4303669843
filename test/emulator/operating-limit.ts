import { RestError } from './rest-error.js';
import type { PortalState } from './state.js';

/**
 * The per-method operating-time budget of DOCS:limits.md ("Resource Consumption Limits"):
 * every answer's `time` carries `operating`, the method's execution time summed over the
 * last 10 minutes, and `operating_reset_at`, when part of it is released; once the sum
 * exceeds the limit the method is blocked with 429 OPERATION_TIME_LIMIT "Method is blocked
 * due to operation time limit." (CORE:classes/general/rest.php `processCall`, LoadLimiter::is
 * before the call, registerEnding after it), while every other method goes on. The sum is
 * kept per application or webhook and method: CORE:lib/engine/access/loadlimiter.php keys it
 * by the portal's domain and sha1(entity type | the app's client_id or the webhook's password
 * id | method), and DOCS:limits.md (since 2026-07; before, it said "for all applications and
 * webhooks of that account") says "separately for an application or a webhook ... Other
 * applications, webhooks, and methods continue to function". `batch` itself is not counted
 * (loadlimiter.php `$ignoreMethod`); each of its commands counts for its own method. The
 * limit is the docs' example, 480 s (the core reads it from the cloud's feature variable
 * `rest_load_limiter_seconds`, 420 s where it has none); the app must not count on the
 * figure. The cost of one call is what a test sets per method (real costs depend on the
 * portal's data, which no emulator can know); unset methods cost 0 and report no
 * `operating`. The 429 carries no `time` (rest-error.ts).
 */
export interface OperatingState {
  /** Seconds one call of a method costs. */
  costs: Map<string, number>;
  /** Charged calls per caller (the app's client id or the webhook) and method. */
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

/** Who a call's operating time is counted for: `app:<client id>` or `webhook:<id>`. */
export type OperatingCaller = string;

function live(
  portal: PortalState,
  caller: OperatingCaller,
  method: string,
): Array<{ at: number; sec: number }> {
  const o = portal.operating;
  const now = portal.ctx.now();
  const key = `${caller}|${method}`;
  const kept = (o.spent.get(key) ?? []).filter((e) => now - e.at < o.windowMs);
  o.spent.set(key, kept);
  return kept;
}

/** `time.operating` / `time.operating_reset_at` for a method that has a cost. */
export function operatingTime(
  portal: PortalState,
  caller: OperatingCaller,
  method: string,
): Record<string, number> {
  if (!portal.operating.costs.has(method)) return {};
  const entries = live(portal, caller, method);
  const operating = entries.reduce((a, e) => a + e.sec, 0);
  const oldest = entries[0]?.at ?? portal.ctx.now();
  return {
    operating,
    operating_reset_at: Math.ceil((oldest + portal.operating.windowMs) / 1000),
  };
}

/** The 429 a blocked method gets, or null. */
export function operatingBlock(
  portal: PortalState,
  caller: OperatingCaller,
  method: string,
): RestError | null {
  if (!portal.operating.costs.has(method)) return null;
  const time = operatingTime(portal, caller, method);
  if ((time['operating'] ?? 0) <= portal.operating.limitSec) return null;
  return new RestError(
    429,
    'OPERATION_TIME_LIMIT',
    'Method is blocked due to operation time limit.',
  );
}

export function chargeOperating(
  portal: PortalState,
  caller: OperatingCaller,
  method: string,
): void {
  const sec = portal.operating.costs.get(method);
  if (sec === undefined) return;
  live(portal, caller, method).push({ at: portal.ctx.now(), sec });
}
