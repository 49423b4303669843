import { toError } from '../lib/errors.js';
import { finishEvent, getEvent, type EventRow } from '../../db/stores/events.js';
import { portalEvents } from '../../db/stores/portals.js';
import { completeJob, killJob, rescheduleJob } from '../../db/stores/jobs.js';
import { nextRunAt } from './backoff.js';
import { PausedError, PermanentError, RetryableError, YieldError } from '../lib/retry-errors.js';
import { slotTurn } from './slot-turn.js';
import type { JobHandler, JobRow } from './types.js';
import type { JobOutcome, WorkerContext } from './worker-context.js';

const describe = (e: Error) => {
  const code = (e as { code?: unknown }).code;
  return (typeof code === 'string' && code !== 'INTERNAL' ? `${code}: ` : '') + e.message;
};

/** A job that threw, as its outcome is recorded. */
interface Failure {
  readonly job: JobRow;
  readonly event: EventRow | undefined;
  /** `code: message`, as `last_error` stores it. */
  readonly message: string;
  readonly t: number;
}

const jobLogger = (w: WorkerContext, job: JobRow) =>
  w.deps.logger.child({ jobId: job.id, jobType: job.type, eventId: job.event_id });

/**
 * Runs one claimed job's handler and records its outcome. Errors decide the next step:
 * RetryableError and unknown errors retry with backoff until max_attempts, PermanentError
 * fails at once, PausedError waits without spending an attempt, YieldError gives the slot
 * back and runs again at once (slot-turn.ts). Throws only when the
 * outcome could not be written (claim-and-run.ts then remembers the job).
 */
export async function executeJob(w: WorkerContext, job: JobRow): Promise<JobOutcome> {
  const { db } = w.deps;
  const handler = w.handlers[job.type];
  // A `process_event` job's event was marked `processing` when the job was claimed.
  const event = job.event_id !== null ? await getEvent(db, job.event_id) : undefined;
  let outcome: JobOutcome;
  try {
    if (!handler) throw new PermanentError(`no handler for job type ${job.type}`);
    const slotWanted = slotTurn(w, job);
    const result = await handler({ deps: w.deps, job, event, attempt: job.attempts, slotWanted });
    await recordDone(w, job, event, result);
    outcome = { job, outcome: 'done' };
  } catch (thrown) {
    if (thrown instanceof YieldError) outcome = await recordYielded(w, job);
    else outcome = await recordThrown(w, job, event, thrown);
  }
  w.emitter.emit(`job:${outcome.outcome}`, outcome);
  w.emitter.emit('job', outcome);
  return outcome;
}

/** The outcome of a job whose handler threw: paused, dead or retried. */
async function recordThrown(
  w: WorkerContext,
  job: JobRow,
  event: EventRow | undefined,
  thrown: unknown,
): Promise<JobOutcome> {
  const e = toError(thrown);
  const failure = { job, event, message: describe(e).slice(0, 2000), t: w.now() };
  if (e instanceof PausedError) return recordPaused(w, failure, e);
  if (e instanceof PermanentError || job.attempts >= job.max_attempts)
    return recordDead(w, failure);
  return recordRetry(w, failure, e);
}

/**
 * Gave its slot back between two steps (slot-turn.ts): pending again in its place (its
 * run_at kept, so it goes ahead of its portal's later jobs and still holds back its
 * entity's), the attempt refunded, nothing written as an error; its event stays
 * `processing`, since it is only waiting for a slot.
 */
async function recordYielded(w: WorkerContext, job: JobRow): Promise<JobOutcome> {
  const t = w.now();
  await rescheduleJob(w.deps.db, job.id, {
    runAt: job.run_at,
    lastError: job.last_error,
    refundAttempt: true,
    now: t,
  });
  jobLogger(w, job).debug({}, 'job gave its worker slot to another portal');
  return { job, outcome: 'yielded' };
}

async function recordDone(
  w: WorkerContext,
  job: JobRow,
  event: EventRow | undefined,
  result: Awaited<ReturnType<JobHandler>>,
): Promise<void> {
  const { metrics } = w.deps;
  const t = w.now();
  // The job and its event finish in one transaction: a crash or a refused write between
  // the two would leave the event `processing` under a job that is done.
  const finished = await w.deps.db.transaction(async (trx) => {
    // The job's row first, then what the handler left to commit (it may touch the event):
    // the order every transaction that takes both keeps on PostgreSQL (jobs, then events).
    await completeJob(trx, job.id, t);
    await result?.commit?.(trx);
    if (!event || (job.type !== 'process_event' && event.status === 'rejected')) return;
    const fresh = await getEvent(trx, event.id);
    // A handler may have set a final status itself (rejected, skipped); keep it.
    if (!fresh || !['received', 'processing', 'unverified'].includes(fresh.status)) return;
    const status = result?.eventStatus ?? 'processed';
    await finishEvent(trx, event.id, { status, lastError: result?.note ?? null, at: t });
    return status;
  });
  if (event && finished) {
    const label = await eventLabel(w, event);
    metrics.eventsFinished.inc({ portal: event.member_id ?? '', event: label, status: finished });
    // From its receipt, or its last replay (as the rollups count it).
    const from = event.queued_at ?? event.received_at;
    metrics.processingSeconds.observe({ event: label }, (t - from) / 1000);
  }
}

/**
 * The event's `event` label: its name when the app or its portal binds it (the portal from
 * the short-lived directory, as the intake reads it), else `other`.
 */
async function eventLabel(w: WorkerContext, event: EventRow): Promise<string> {
  const { metrics } = w.deps;
  const known = metrics.eventLabel(event.event);
  if (known !== 'other' || !event.member_id) return known;
  const portal = await w.deps.portals.get(event.member_id);
  return metrics.eventLabel(event.event, () => (portal ? portalEvents(portal) : undefined));
}

/** Waits without spending an attempt; the event is `received` again. */
async function recordPaused(w: WorkerContext, f: Failure, e: PausedError): Promise<JobOutcome> {
  const { job, event, message, t } = f;
  await w.deps.db.transaction(async (trx) => {
    await rescheduleJob(trx, job.id, {
      runAt: t + e.resumeAfterMs,
      lastError: message,
      refundAttempt: true,
      waitingFor: e.waitingFor,
      now: t,
    });
    if (event) await finishEvent(trx, event.id, { status: 'received', lastError: message, at: t });
  });
  return { job, outcome: 'paused', error: message };
}

/** Fails for good: the job is dead, its event `failed`. */
async function recordDead(w: WorkerContext, f: Failure): Promise<JobOutcome> {
  const { job, event, message, t } = f;
  await w.deps.db.transaction(async (trx) => {
    await killJob(trx, job.id, message, t);
    if (event) await finishEvent(trx, event.id, { status: 'failed', lastError: message, at: t });
  });
  if (event) {
    w.deps.metrics.eventsFinished.inc({
      portal: event.member_id ?? '',
      event: await eventLabel(w, event),
      status: 'failed',
    });
  }
  jobLogger(w, job).warn({ err: message, attempts: job.attempts }, 'job failed for good');
  return { job, outcome: 'dead', error: message };
}

/** Tries again after the backoff (or the remote's Retry-After, when longer). */
async function recordRetry(w: WorkerContext, f: Failure, e: Error): Promise<JobOutcome> {
  const { job, event, message, t } = f;
  const retryAfter = e instanceof RetryableError ? e.retryAfterMs : undefined;
  const runAt = nextRunAt(
    t,
    job.attempts,
    w.deps.config.worker.retryBaseSeconds,
    retryAfter,
    w.random,
  );
  await w.deps.db.transaction(async (trx) => {
    await rescheduleJob(trx, job.id, { runAt, lastError: message, now: t });
    if (event) await finishEvent(trx, event.id, { status: 'received', lastError: message, at: t });
  });
  jobLogger(w, job).info(
    { err: message, attempts: job.attempts, retryAt: new Date(runAt).toISOString() },
    'job will be retried',
  );
  return { job, outcome: 'retry', error: message };
}
