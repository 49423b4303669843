import { toError } from '../lib/errors.js';
import { markStorageFailing } from '../metrics.js';
import { nextDueAt, releaseOrphanedJobs } from '../../db/stores/jobs.js';
import { claimAndRun } from './claim-and-run.js';
import { stepBudgetOf } from './step-budget.js';
import type { WorkerContext } from './worker-context.js';

/** Longest pause between claims while the database keeps refusing writes. */
const MAX_FAILURE_BACKOFF_MS = 15_000;

/**
 * The worker's loop (`start()` until `stop()`): yield to the intake under a flood, claim and
 * run a round, then claim again at once when there may be more, or sleep until work is due,
 * a slot frees or new work is stored (`notify`).
 */
export async function runLoop(w: WorkerContext): Promise<void> {
  const { state } = w;
  let yielded = 0;
  while (state.running) {
    if (w.shouldYield?.() && yielded < yieldLimit(w)) {
      yielded += 5;
      await new Promise((r) => setTimeout(r, 5));
      continue;
    }
    // Portals sending a flood alone (the others do not, together) have only their own jobs
    // held back: one each per longest wait, while the others' run as usual. A stranger who
    // installs the app can post a thousand genuine deliveries a second for his own portal;
    // holding everyone back then held every other portal to about one event a second.
    const held = heldPortals(w);
    // Still flooded after the longest wait: one job, so processing moves on without
    // spending the intake's time on a whole round of claims and outcome writes.
    const flooded = yielded > 0 && !held.limits && w.shouldYield?.() === true;
    yielded = 0;
    await sweepOrphans(w);
    // Portals whose steps filled in more than their share of the main thread take no job
    // until their budget is back (step-budget.ts): their jobs are not claimed only to pause.
    const budget = stepBudgetOf(w.deps);
    const spent = budget.waiting();
    const { claimFailed, more } = await loopRound(w, flooded, withNone(held.limits, spent));
    // A slot freed or work arrived while this round was claiming: claim again at once.
    if (more || (state.kicked && !claimFailed)) continue;
    let delay = claimFailed ? failureBackoff(w) : await dueDelay(w);
    // Their jobs are due but wait for their turn: no round before it, unless woken.
    if (held.limits) delay = Math.max(delay, state.floodTurnAt + w.maxYieldMs - performance.now());
    // A portal's budget back: its due jobs are claimed then, not at the next poll.
    if (spent.length)
      delay = Math.min(delay, Math.max(5, Math.min(...spent.map((p) => budget.waitMs(p)))));
    await sleep(w, delay);
  }
}

/**
 * How long the loop waits in a row for the intake. While some portals send a flood alone, the
 * others' jobs wait only briefly for a moment without deliveries waiting for their commit:
 * a flood that keeps the intake busy all the time would otherwise leave them one round a
 * second (on PostgreSQL, whose commits take longer, every moment was busy).
 */
function yieldLimit(w: WorkerContext): number {
  const alone = (w.flood?.().portals.size ?? 0) > 0;
  return alone ? Math.min(w.maxYieldMs, BRIEF_YIELD_MS) : w.maxYieldMs;
}

const BRIEF_YIELD_MS = 50;

/**
 * The portals whose jobs this round may take only one of each (their turn, once per
 * `maxYieldMs`) or none, while they send a flood (the others together do not: flood()).
 */
function heldPortals(w: WorkerContext): { limits: Map<number, number> | undefined } {
  const flood = w.flood?.();
  if (!flood || flood.portals.size === 0) return { limits: undefined };
  const { state } = w;
  const t = performance.now();
  const turn = t - state.floodTurnAt >= w.maxYieldMs;
  if (turn) state.floodTurnAt = t;
  const limits = new Map<number, number>();
  for (const p of flood.portals) {
    limits.set(p, turn ? 1 : 0);
    const logged = state.floodLogged.get(p);
    if (logged === undefined || t - logged >= FLOOD_LOG_EVERY_MS) {
      state.floodLogged.set(p, t);
      w.deps.logger.warn(
        { portalId: p },
        'a portal is flooding the intake: its events are processed one a second until it stops, the other portals as usual',
      );
    }
  }
  if (state.floodLogged.size > 1000) {
    for (const [p, at] of state.floodLogged) {
      if (t - at >= FLOOD_LOG_EVERY_MS) state.floodLogged.delete(p);
    }
  }
  return { limits };
}

/** `limits` with no job at all for `portals` (undefined when both are empty). */
function withNone(
  limits: ReadonlyMap<number, number> | undefined,
  portals: readonly number[],
): ReadonlyMap<number, number> | undefined {
  if (portals.length === 0) return limits;
  const out = new Map(limits);
  for (const p of portals) out.set(p, 0);
  return out;
}

/** How often a portal still sending a flood is named in the log again. */
const FLOOD_LOG_EVERY_MS = 60_000;

/** One round of the loop; `more`: every event slot was taken, so more may be due at once. */
async function loopRound(
  w: WorkerContext,
  flooded: boolean,
  portalLimits: ReadonlyMap<number, number> | undefined,
): Promise<{ claimFailed: boolean; more: boolean }> {
  const { state } = w;
  state.kicked = false;
  try {
    const round = await claimAndRun(w, {
      gated: true,
      eventLimit: flooded ? 1 : undefined,
      portalLimits,
      alerts: () => lookAtAlerts(w),
    });
    if (!round) return { claimFailed: false, more: false };
    const { jobs, eventSlots, alertsFull } = round;
    if (alertsFull) state.alertsDue = true;
    state.failedClaims = 0;
    const more = eventSlots > 0 && jobs.filter((j) => j.type !== 'alert').length === eventSlots;
    return { claimFailed: false, more };
  } catch (e) {
    state.failedClaims++;
    markStorageFailing(w.deps.metrics);
    // Once per streak at error level; a long fault (disk full) should not flood the log.
    if (state.failedClaims === 1) w.deps.logger.error({ err: e }, 'worker loop: claiming failed');
    else
      w.deps.logger.debug(
        { err: e, failedClaims: state.failedClaims },
        'worker loop: claiming failed again',
      );
    return { claimFailed: true, more: false };
  }
}

/** Whether this round queries the alert lane: alerts were stored, or once per pollMs. */
function lookAtAlerts(w: WorkerContext): boolean {
  const { state } = w;
  const look = state.alertsDue || Date.now() - state.alertsLookedAt >= w.pollMs;
  if (look) {
    state.alertsDue = false;
    state.alertsLookedAt = Date.now();
  }
  return look;
}

/**
 * Back off while the database refuses (each try may wait out its busy timeout); a delivery
 * committed meanwhile wakes the loop at once (notify).
 */
function failureBackoff(w: WorkerContext): number {
  const n = Math.min(w.state.failedClaims - 1, 10);
  return Math.min(MAX_FAILURE_BACKOFF_MS, w.pollMs * 2 ** n);
}

/**
 * What is due now and was not claimed waits for a free slot or an earlier job of its
 * entity: a finishing job or a new delivery wakes the loop (no 5 ms polling while every
 * slot is busy); only work that becomes due later shortens the sleep.
 */
async function dueDelay(w: WorkerContext): Promise<number> {
  try {
    const t = w.now();
    const due = await nextDueAt(w.deps.db, t);
    return due !== undefined ? Math.max(5, Math.min(w.pollMs, due - t)) : w.pollMs;
  } catch {
    return w.pollMs;
  }
}

/** Sleeps `delay` ms, or until `kick` wakes the loop, or work stored meanwhile is due. */
function sleep(w: WorkerContext, delay: number): Promise<void> {
  const { state } = w;
  // Kicked after the round looked (while the next due time was being read): that work is
  // due now, and a sleep would only end at the poll interval.
  if (state.kicked) return Promise.resolve();
  if (state.dueHint !== undefined) {
    delay = Math.min(delay, Math.max(0, state.dueHint - w.now()));
    state.dueHint = undefined;
  }
  return new Promise<void>((resolve) => {
    state.wake = () => {
      state.wake = undefined;
      state.sleepUntil = undefined;
      if (state.loopTimer) clearTimeout(state.loopTimer);
      resolve();
    };
    state.sleepUntil = w.now() + delay;
    state.loopTimer = setTimeout(() => state.wake?.(), delay);
  });
}

/**
 * Work was stored that becomes due at `at` (app clock, later than now): a sleeping loop
 * wakes by then, without a round now that would find nothing due; a loop that is not asleep
 * keeps it for its next sleep (the round it is in may have looked before the commit).
 */
export function wakeBy(w: WorkerContext, at: number): void {
  const { state } = w;
  if (!state.wake) {
    state.dueHint = Math.min(state.dueHint ?? Infinity, at);
    return;
  }
  if (state.sleepUntil !== undefined && at >= state.sleepUntil) return;
  if (state.loopTimer) clearTimeout(state.loopTimer);
  state.sleepUntil = at;
  state.loopTimer = setTimeout(() => state.wake?.(), Math.max(0, at - w.now()));
}

/** Jobs of dead instances back to the queue (PostgreSQL, with an instance lock only). */
async function sweepOrphans(w: WorkerContext): Promise<void> {
  const { state } = w;
  if (!w.lock || Date.now() - state.lastSweep < w.orphanSweepMs) return;
  state.lastSweep = Date.now();
  try {
    const n = await releaseOrphanedJobs(w.deps.db, w.now());
    if (n) w.deps.logger.warn({ jobs: n }, 'returned the jobs of a stopped instance to the queue');
  } catch (e) {
    w.deps.logger.error({ err: toError(e) }, 'worker loop: releasing orphaned jobs failed');
  }
}
