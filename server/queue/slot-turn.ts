import { NO_PORTAL, otherPortalDue } from '../../db/stores/jobs.js';
import type { JobRow } from './types.js';
import type { WorkerContext } from './worker-context.js';

/** How often one job looks for other portals' due jobs while it holds its slot (real time). */
const LOOK_EVERY_MS = 250;

/**
 * A job's turn in its worker slot: `slotWanted` for its handler (JobContext). Fair claiming
 * (round-robin across portals, WORKER_PORTAL_SHARE) decides only who gets a slot; a job of
 * many steps then holds it for all of them (25 steps of 400 ms kept another portal's
 * one-step event waiting 12 s). So, between two steps, a job that has held its slot for
 * `slotTurnMs` of real time (the monotonic clock: a test's clock stands still) gives it
 * back when no slot of this worker is free (a free one takes the waiting job anyway) and
 * another portal has a due job. Another portal then waits at most `slotTurnMs` plus the
 * step in flight (at most its timeout), however many steps a rule has.
 */
export function slotTurn(w: WorkerContext, job: JobRow): () => Promise<boolean> {
  const started = performance.now();
  let lookedAt = -Infinity;
  return async () => {
    const now = performance.now();
    if (now - started < w.slotTurnMs || now - lookedAt < LOOK_EVERY_MS) return false;
    // A slot is free, or another job is already giving its slot back: the loop's next claim
    // serves the waiting portal without this job stopping too.
    if (w.lanes.free().events > 0 || w.state.yielding.size > 0) return false;
    lookedAt = now;
    if (!(await otherPortalDue(w.deps.db, w.now(), job.portal_id ?? NO_PORTAL))) return false;
    // Counted until the slot is released (claim-and-run.ts), so the other jobs of this
    // worker wait for the claim it makes before they give theirs.
    w.state.yielding.add(job.id);
    return true;
  };
}
