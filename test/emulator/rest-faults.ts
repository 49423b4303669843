import { RestError } from './rest-error.js';
import type { PortalState } from './state.js';

/**
 * A fault-injection switch for a portal's REST endpoint (the reliability suite): a share of
 * requests fails the ways Bitrix24 fails (503 QUERY_LIMIT_EXCEEDED: DOCS:limits.md; 500 and
 * expired_token: CORE lib/oauth/auth.php). A test tool, not a model: real portals fail at no set
 * rate. Every injected fault happens before the method runs, so a failed call changed nothing on
 * the portal — a retry is the only way the app can make it happen, and a write that happens twice
 * is the app's doing.
 */
export interface RestFaultPlan {
  /** Share of requests answered 503 `QUERY_LIMIT_EXCEEDED` (0…1). */
  queryLimit?: number;
  /** Share answered 500 `INTERNAL_SERVER_ERROR`. */
  serverError?: number;
  /** Share never answered: the request is held until the client gives up. */
  timeout?: number;
  /**
   * Every n-th request first expires every access token of the portal, so it and every
   * call in flight meet `expired_token`: a storm the app must survive with one refresh.
   */
  expireEvery?: number;
  /** Seed of the deterministic choice of which requests fail. @default 1 */
  seed?: number;
}

/** What the switch did so far. */
export interface RestFaultCounts {
  requests: number;
  queryLimit: number;
  serverError: number;
  timeout: number;
  /** Times every access token was expired. */
  expiries: number;
}

interface Armed {
  plan: RestFaultPlan;
  counts: RestFaultCounts;
  random: () => number;
}

/** By member_id (random per portal, so emulators in one process never share an entry). */
const armed = new Map<string, Armed>();

/** mulberry32: a small seeded generator, so a run's faults can be replayed. */
function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Arms the switch for one portal; the returned counts stay live until `disarm`. */
export function armRestFaults(memberId: string, plan: RestFaultPlan): RestFaultCounts {
  const counts: RestFaultCounts = {
    requests: 0,
    queryLimit: 0,
    serverError: 0,
    timeout: 0,
    expiries: 0,
  };
  armed.set(memberId, { plan, counts, random: seeded(plan.seed ?? 1) });
  return counts;
}

export function disarmRestFaults(memberId: string): void {
  armed.delete(memberId);
}

/**
 * Called by the REST endpoint for each request, before authentication and the method. Returns
 * true when it answered (or is holding) the request itself.
 */
export function injectRestFault(portal: PortalState, fail: (error: RestError) => void): boolean {
  const a = armed.get(portal.memberId);
  if (!a) return false;
  const { plan, counts } = a;
  counts.requests += 1;
  if (plan.expireEvery && counts.requests % plan.expireEvery === 0) {
    portal.ctx.tokens.expireAccess(portal.memberId);
    counts.expiries += 1;
  }
  const r = a.random();
  const limit = plan.queryLimit ?? 0;
  const server = limit + (plan.serverError ?? 0);
  const hang = server + (plan.timeout ?? 0);
  if (r < limit) {
    counts.queryLimit += 1;
    fail(new RestError(503, 'QUERY_LIMIT_EXCEEDED', 'Too many requests'));
    return true;
  }
  if (r < server) {
    counts.serverError += 1;
    fail(new RestError(500, 'INTERNAL_SERVER_ERROR', 'Internal server error'));
    return true;
  }
  if (r < hang) {
    counts.timeout += 1;
    // No answer: the socket stays open until the client aborts or the emulator closes.
    return true;
  }
  return false;
}
