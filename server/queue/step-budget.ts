import type { Deps } from '../deps.js';
import { MAX_RENDERED_CHARS } from '../rules/templates.js';

/**
 * What one portal's steps may fill in from their templates, per instance: a bucket of
 * characters per portal, refilled at `PORTAL_STEP_MB_PER_SECOND` (counted in characters) up to
 * one largest step (MAX_RENDERED_CHARS). Filling in a step, turning it into JSON, signing
 * and sending it all run on the main thread in proportion to its size: an 8 Mi-character
 * step held the thread for 30–170 ms, between two deliveries of every portal. A portal whose
 * rules wrote a large field into every step (its own deals' text, many times over) could
 * take most of the thread with a stream of its own events. A portal that filled in more
 * than its bucket held waits (its jobs are not claimed, a running job pauses before its next
 * step, no attempt spent) until the bucket is back at zero; the others go on. A step is never
 * cut: the bucket may go below zero by one step, which is what the wait then pays back.
 */
export interface PortalStepBudget {
  /** Milliseconds until the portal may fill in another step (0: now). */
  waitMs(portalId: number): number;
  /** The characters a step of the portal filled in; true when they took its bucket below zero. */
  spend(portalId: number, chars: number): boolean;
  /** Portals that must wait now (for the claim's limits). */
  waiting(): number[];
  /** Characters per second (0: off). */
  readonly rate: number;
}

/** Portals whose bucket is remembered, at most (full ones are forgotten first). */
const MAX_PORTALS = 10_000;

export function createPortalStepBudget(
  rate: number,
  now: () => number,
  capacity = MAX_RENDERED_CHARS,
): PortalStepBudget {
  /** Level in characters at `at` (ms), per portal; a portal not here has a full bucket. */
  const buckets = new Map<number, { level: number; at: number }>();
  /** Portals whose level went below zero (waiting() reads these, not every bucket). */
  const below = new Set<number>();
  const level = (portalId: number, t: number): number => {
    const b = buckets.get(portalId);
    if (!b) return capacity;
    // A clock set back does not drain the buckets: no time passed is no refill.
    return Math.min(capacity, b.level + (Math.max(0, t - b.at) / 1000) * rate);
  };
  const forgetFull = (t: number) => {
    for (const [p] of buckets) if (level(p, t) >= capacity) buckets.delete(p);
  };
  return {
    rate,
    waitMs(portalId) {
      if (rate <= 0) return 0;
      const l = level(portalId, now());
      return l >= 0 ? 0 : Math.ceil((-l / rate) * 1000);
    },
    spend(portalId, chars) {
      if (rate <= 0 || chars <= 0) return false;
      const t = now();
      const before = level(portalId, t);
      buckets.set(portalId, { level: before - chars, at: t });
      if (before - chars < 0) below.add(portalId);
      if (buckets.size > MAX_PORTALS) forgetFull(t);
      return before >= 0 && before - chars < 0;
    },
    waiting() {
      if (rate <= 0 || below.size === 0) return [];
      const t = now();
      const out: number[] = [];
      for (const p of below) {
        if (level(p, t) < 0) out.push(p);
        else below.delete(p);
      }
      return out;
    },
  };
}

const budgets = new WeakMap<Deps, PortalStepBudget>();

/** The instance's budget (one per Deps: the worker's claims and the steps share it). */
export function stepBudgetOf(deps: Deps): PortalStepBudget {
  let b = budgets.get(deps);
  if (!b) {
    b = createPortalStepBudget(deps.config.worker.portalStepCharsPerSecond, () =>
      deps.clock.now().getTime(),
    );
    budgets.set(deps, b);
  }
  return b;
}
