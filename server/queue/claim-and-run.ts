import { toError } from '../lib/errors.js';
import { markStorageFailing, markStorageWritable } from '../metrics.js';
import { releaseJobs } from '../../db/stores/jobs.js';
import { executeJob } from './execute-job.js';
import type { JobRow } from './types.js';
import { kick, type JobOutcome, type WorkerContext } from './worker-context.js';

export interface ClaimOptions {
  /**
   * The loop's round: claim only when a slot is free and, with an instance lock, while this
   * instance holds it. `runOnce` claims whatever the lanes take.
   */
  gated?: boolean;
  /** Narrows the event lane (one job while the intake is flooded). */
  eventLimit?: number;
  /** Most jobs the round takes of these portals (those sending a flood). */
  portalLimits?: ReadonlyMap<number, number>;
  /** Asked only when the round claims: whether to query the alert lane. @default yes */
  alerts?: () => boolean;
}

export interface Round {
  jobs: JobRow[];
  /** Event slots the round offered. */
  eventSlots: number;
  /** The alert lane was filled: more alerts may be due. */
  alertsFull: boolean;
  /** Every claimed job's outcome, when all of them finished. */
  outcomes: Promise<JobOutcome[]>;
}

/**
 * One claim-and-run, shared by `runOnce` and the loop: release the jobs whose outcome could
 * not be written, claim what fits in the free slots, and start each claimed job in its slot.
 * Undefined when a gated round did not claim.
 */
export async function claimAndRun(
  w: WorkerContext,
  o: ClaimOptions = {},
): Promise<Round | undefined> {
  await releaseUnrecorded(w);
  if (o.gated) {
    const free = w.lanes.free();
    if (!(free.events > 0 || free.alerts > 0) || (w.lock && !w.lock.held())) return undefined;
  }
  const claimed = await w.lanes.claim(w.deps.db, {
    workerId: w.claimId,
    now: w.now(),
    eventLimit: o.eventLimit,
    portalLimits: o.portalLimits,
    alerts: o.alerts?.(),
  });
  return { ...claimed, outcomes: Promise.all(claimed.jobs.map((j) => runInSlot(w, j))) };
}

/** Runs a claimed job in its slot; the slot is freed (and the loop woken) when it ends. */
function runInSlot(w: WorkerContext, j: JobRow): Promise<JobOutcome> {
  return w.queue.add(async () => {
    let yielded = false;
    try {
      const outcome = await executeJob(w, j);
      yielded = outcome.outcome === 'yielded';
      // Its outcome was written: fresh evidence that the database takes writes again, so
      // /healthz stops saying "failing" without waiting for a delivery (a quiet portal may
      // send none for a long time).
      markStorageWritable(w.deps.metrics);
      return outcome;
    } catch (e) {
      lost(w, j, e);
      return { job: j, outcome: 'retry' as const, error: toError(e).message };
    } finally {
      w.lanes.release(j, { yielded });
      w.state.yielding.delete(j.id);
      kick(w);
    }
  }) as Promise<JobOutcome>;
}

/** The database failed under a claimed job: remember it and say so once per job. */
function lost(w: WorkerContext, j: JobRow, e: unknown): void {
  w.state.unrecorded.add(j.id);
  markStorageFailing(w.deps.metrics);
  w.deps.logger.error(
    { err: e, jobId: j.id },
    'worker could not record a job outcome; the job is released once the database takes writes',
  );
}

async function releaseUnrecorded(w: WorkerContext): Promise<void> {
  const { unrecorded } = w.state;
  if (unrecorded.size === 0) return;
  const busy = new Set(w.lanes.ids());
  const ids = [...unrecorded].filter((jobId) => !busy.has(jobId));
  if (ids.length === 0) return;
  try {
    const n = await releaseJobs(w.deps.db, w.claimId, ids, w.now());
    for (const jobId of ids) unrecorded.delete(jobId);
    markStorageWritable(w.deps.metrics);
    w.deps.logger.warn({ released: n }, 'database takes writes again: released unrecorded jobs');
  } catch {
    // Still refused; the next round tries again.
  }
}
