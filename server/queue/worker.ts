import { EventEmitter } from 'node:events';
import os from 'node:os';
import PQueue from 'p-queue';
import type { Deps } from '../deps.js';
import { toError } from '../lib/errors.js';
import { markStorageFailing } from '../intake/storage-health.js';
import { finishEvent, getEvent, markEventProcessing } from '../../db/stores/events.js';
import {
  completeJob,
  killJob,
  nextDueAt,
  releaseJobs,
  releaseOrphanedJobs,
  releaseStaleJobs,
  rescheduleJob,
  type JobType,
} from '../../db/stores/jobs.js';
import type { InstanceLock } from '../cluster/instance-lock.js';
import { nextRunAt } from './backoff.js';
import { createLanes } from './lanes.js';
import { PausedError, PermanentError, RetryableError } from './errors.js';
import type { JobHandler, JobRow } from './types.js';

export interface WorkerOptions {
  handlers: Partial<Record<JobType, JobHandler>>;
  /** Slots for event work (every job type but `alert`). Default WORKER_CONCURRENCY. */
  concurrency?: number;
  /** Default WORKER_PORTAL_SHARE. */
  portalShare?: number;
  /** Slots of the alert lane, on top of `concurrency`. @default 2 */
  alertConcurrency?: number;
  /** A job `running` longer than this is presumed abandoned by a dead process. Default 10 min. */
  leaseMs?: number;
  /** How often to look for due work when nothing wakes the worker. Default 1 s. */
  pollMs?: number;
  workerId?: string;
  random?: () => number;
  /**
   * Intake first: while this says the intake is under a flood, the loop waits before
   * claiming (at most `maxYieldMs` in a row, then it claims one job), so acknowledging
   * deliveries — which Bitrix24 never re-sends — is never starved by processing, which
   * still moves and catches up once the flood is over.
   */
  shouldYield?: () => boolean;
  /** @default 1000 */
  maxYieldMs?: number;
  /**
   * PostgreSQL with several instances: this instance's presence lock. Leases then carry its
   * key, and the loop returns the jobs of instances that died to the queue (every
   * `orphanSweepMs`, real time) instead of leaving them to a lease timeout.
   */
  instanceLock?: InstanceLock;
  /** @default 5000 */
  orphanSweepMs?: number;
}

export interface JobOutcome {
  job: JobRow;
  outcome: 'done' | 'retry' | 'dead' | 'paused';
  error?: string;
}

export interface Worker extends EventEmitter {
  readonly id: string;
  /** Claims whatever is due now, runs it, and resolves when all of it finished. */
  runOnce(): Promise<JobOutcome[]>;
  /** Runs `runOnce` until nothing is due (for tests and replay --wait). */
  drain(maxRounds?: number): Promise<JobOutcome[]>;
  start(): void;
  /** Stops claiming, waits for work in flight up to `timeoutMs`, then releases what is left. */
  stop(timeoutMs?: number): Promise<void>;
  /**
   * Wake the loop (new work was stored); `'alert'` when alert jobs were stored (the alert
   * lane is otherwise looked at once per `pollMs`, not on every delivery).
   */
  notify(kind?: 'alert'): void;
  /** Returns running jobs abandoned by a dead process to the queue. */
  recoverStale(): Promise<number>;
}

/** Longest pause between claims while the database keeps refusing writes. */
const MAX_FAILURE_BACKOFF_MS = 15_000;

const describe = (e: Error) => {
  const code = (e as { code?: unknown }).code;
  return (typeof code === 'string' && code !== 'INTERNAL' ? `${code}: ` : '') + e.message;
};

/**
 * The worker: the jobs table is the truth; p-queue only bounds how many run at once. Each
 * claimed job carries a lease (who, when). Errors decide the next step: RetryableError and
 * unknown errors retry with backoff until max_attempts, PermanentError fails at once,
 * PausedError waits without spending an attempt.
 */
export function createWorker(deps: Deps, opts: WorkerOptions): Worker {
  const { db, logger, metrics, config } = deps;
  // locked_by is 64 characters at most; `#<instance key>` may follow (claimId).
  const id =
    opts.workerId ??
    `${os.hostname().slice(0, 32)}:${process.pid}:${Math.random().toString(36).slice(2, 8)}`;
  const lock = opts.instanceLock;
  const claimId = lock ? `${id}#${lock.key}` : id;
  const orphanSweepMs = opts.orphanSweepMs ?? 5000;
  let lastSweep = 0;
  const concurrency = opts.concurrency ?? config.worker.concurrency;
  const leaseMs = opts.leaseMs ?? 10 * 60_000;
  const pollMs = opts.pollMs ?? 1000;
  const alertConcurrency = opts.alertConcurrency ?? 2;
  const lanes = createLanes({
    concurrency,
    portalShare: opts.portalShare ?? config.worker.portalShare,
    alertConcurrency,
  });
  const queue = new PQueue({ concurrency: concurrency + alertConcurrency });
  const now = () => deps.clock.now().getTime();
  let running = false;
  let loopTimer: NodeJS.Timeout | undefined;
  let wake: (() => void) | undefined;
  /** Set by `kick` (a slot freed, work stored) so a wake-up during a claim is not lost. */
  let kicked = false;
  /** The alert lane is looked at when alerts were stored, or once per pollMs (retries). */
  let alertsDue = true;
  let alertsLookedAt = 0;
  const kick = () => {
    kicked = true;
    wake?.();
  };
  let loopDone: Promise<void> | undefined;
  /**
   * Jobs claimed (so `running` in the table) whose outcome could not be written: the
   * database refused (locked, disk full). They go back to the queue as soon as it takes
   * writes again, without waiting for a lease to expire or a restart.
   */
  const unrecorded = new Set<number>();
  /** Claims that failed in a row: the loop backs off while the database refuses. */
  let failedClaims = 0;

  const emitter = new EventEmitter() as Worker;

  async function execute(job: JobRow): Promise<JobOutcome> {
    const handler = opts.handlers[job.type];
    const log = {
      child: () => logger.child({ jobId: job.id, jobType: job.type, eventId: job.event_id }),
    };
    const event = job.event_id !== null ? await getEvent(db, job.event_id) : undefined;
    if (event && job.type === 'process_event')
      await markEventProcessing(db, event.id, job.attempts, now());
    let outcome: JobOutcome;
    try {
      if (!handler) throw new PermanentError(`no handler for job type ${job.type}`);
      const result = await handler({ deps, job, event, attempt: job.attempts });
      const t = now();
      // The job and its event finish in one transaction: a crash or a refused write between
      // the two would leave the event `processing` under a job that is done.
      const finished = await db.transaction(async (trx) => {
        await completeJob(trx, job.id, t);
        if (!event || (job.type !== 'process_event' && event.status === 'rejected')) return;
        const fresh = await getEvent(trx, event.id);
        // A handler may have set a final status itself (rejected, skipped); keep it.
        if (!fresh || !['received', 'processing', 'unverified'].includes(fresh.status)) return;
        const status = result?.eventStatus ?? 'processed';
        await finishEvent(trx, event.id, { status, lastError: result?.note ?? null, at: t });
        return status;
      });
      if (event && finished) {
        metrics.eventsFinished.inc({
          portal: event.member_id ?? '',
          event: event.event,
          status: finished,
        });
        metrics.processingSeconds.observe({ event: event.event }, (t - event.received_at) / 1000);
      }
      outcome = { job, outcome: 'done' };
    } catch (thrown) {
      const e = toError(thrown);
      const message = describe(e).slice(0, 2000);
      const t = now();
      if (e instanceof PausedError) {
        await db.transaction(async (trx) => {
          await rescheduleJob(trx, job.id, {
            runAt: t + e.resumeAfterMs,
            lastError: message,
            refundAttempt: true,
            waitingFor: e.waitingFor,
            now: t,
          });
          if (event)
            await finishEvent(trx, event.id, { status: 'received', lastError: message, at: t });
        });
        outcome = { job, outcome: 'paused', error: message };
      } else if (e instanceof PermanentError || job.attempts >= job.max_attempts) {
        await db.transaction(async (trx) => {
          await killJob(trx, job.id, message, t);
          if (event)
            await finishEvent(trx, event.id, { status: 'failed', lastError: message, at: t });
        });
        if (event) {
          metrics.eventsFinished.inc({
            portal: event.member_id ?? '',
            event: event.event,
            status: 'failed',
          });
        }
        log.child().warn({ err: message, attempts: job.attempts }, 'job failed for good');
        outcome = { job, outcome: 'dead', error: message };
      } else {
        const retryAfter = e instanceof RetryableError ? e.retryAfterMs : undefined;
        const runAt = nextRunAt(
          t,
          job.attempts,
          config.worker.retryBaseSeconds,
          retryAfter,
          opts.random,
        );
        await db.transaction(async (trx) => {
          await rescheduleJob(trx, job.id, { runAt, lastError: message, now: t });
          if (event)
            await finishEvent(trx, event.id, { status: 'received', lastError: message, at: t });
        });
        log
          .child()
          .info(
            { err: message, attempts: job.attempts, retryAt: new Date(runAt).toISOString() },
            'job will be retried',
          );
        outcome = { job, outcome: 'retry', error: message };
      }
    }
    emitter.emit(`job:${outcome.outcome}`, outcome);
    emitter.emit('job', outcome);
    return outcome;
  }

  /** The database failed under a claimed job: remember it and say so once per job. */
  function lost(j: JobRow, e: unknown) {
    unrecorded.add(j.id);
    markStorageFailing(metrics);
    logger.error(
      { err: e, jobId: j.id },
      'worker could not record a job outcome; the job is released once the database takes writes',
    );
  }

  async function releaseUnrecorded(): Promise<void> {
    if (unrecorded.size === 0) return;
    const busy = new Set(lanes.ids());
    const ids = [...unrecorded].filter((jobId) => !busy.has(jobId));
    if (ids.length === 0) return;
    try {
      const n = await releaseJobs(db, claimId, ids, now());
      for (const jobId of ids) unrecorded.delete(jobId);
      logger.warn({ released: n }, 'database takes writes again: released unrecorded jobs');
    } catch {
      // Still refused; the next round tries again.
    }
  }

  /** Runs a claimed job in its slot; the slot is freed (and the loop woken) when it ends. */
  function run(j: JobRow): Promise<JobOutcome> {
    return queue.add(async () => {
      try {
        return await execute(j);
      } catch (e) {
        lost(j, e);
        return { job: j, outcome: 'retry' as const, error: toError(e).message };
      } finally {
        lanes.release(j);
        kick();
      }
    }) as Promise<JobOutcome>;
  }

  async function runOnce(): Promise<JobOutcome[]> {
    await releaseUnrecorded();
    const { jobs } = await lanes.claim(db, { workerId: claimId, now: now() });
    return Promise.all(jobs.map(run));
  }

  /** Jobs of dead instances back to the queue (PostgreSQL, with an instance lock only). */
  async function sweepOrphans(): Promise<void> {
    if (!lock || Date.now() - lastSweep < orphanSweepMs) return;
    lastSweep = Date.now();
    try {
      const n = await releaseOrphanedJobs(db, now());
      if (n) logger.warn({ jobs: n }, 'returned the jobs of a stopped instance to the queue');
    } catch (e) {
      logger.error({ err: toError(e) }, 'worker loop: releasing orphaned jobs failed');
    }
  }

  async function loop(): Promise<void> {
    let yielded = 0;
    while (running) {
      if (opts.shouldYield?.() && yielded < (opts.maxYieldMs ?? 1000)) {
        yielded += 5;
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      // Still flooded after the longest wait: one job, so processing moves on without
      // spending the intake's time on a whole round of claims and outcome writes.
      const flooded = yielded > 0 && opts.shouldYield?.() === true;
      yielded = 0;
      await sweepOrphans();
      let claimFailed = false;
      let more = false;
      kicked = false;
      try {
        await releaseUnrecorded();
        const free = lanes.free();
        if ((free.events > 0 || free.alerts > 0) && (!lock || lock.held())) {
          const lookAtAlerts = alertsDue || Date.now() - alertsLookedAt >= pollMs;
          if (lookAtAlerts) {
            alertsDue = false;
            alertsLookedAt = Date.now();
          }
          const { jobs, eventSlots, alertsFull } = await lanes.claim(db, {
            workerId: claimId,
            now: now(),
            eventLimit: flooded ? 1 : undefined,
            alerts: lookAtAlerts,
          });
          if (alertsFull) alertsDue = true;
          for (const j of jobs) void run(j);
          failedClaims = 0;
          // Every event slot taken: there may be more due at once.
          more = eventSlots > 0 && jobs.filter((j) => j.type !== 'alert').length === eventSlots;
        }
      } catch (e) {
        claimFailed = true;
        failedClaims++;
        markStorageFailing(metrics);
        // Once per streak at error level; a long fault (disk full) should not flood the log.
        if (failedClaims === 1) logger.error({ err: e }, 'worker loop: claiming failed');
        else logger.debug({ err: e, failedClaims }, 'worker loop: claiming failed again');
      }
      // A slot freed or work arrived while this round was claiming: claim again at once.
      if (more || (kicked && !claimFailed)) continue;
      let delay = pollMs;
      if (claimFailed) {
        // Back off while the database refuses (each try may wait out its busy timeout);
        // a delivery committed meanwhile wakes the loop at once (notify).
        delay = Math.min(MAX_FAILURE_BACKOFF_MS, pollMs * 2 ** Math.min(failedClaims - 1, 10));
      } else {
        // What is due now and was not claimed waits for a free slot or an earlier job of its
        // entity: a finishing job or a new delivery wakes the loop (no 5 ms polling while
        // every slot is busy); only work that becomes due later shortens the sleep.
        try {
          const t = now();
          const due = await nextDueAt(db, t);
          if (due !== undefined) delay = Math.max(5, Math.min(pollMs, due - t));
        } catch {
          delay = pollMs;
        }
      }
      await new Promise<void>((resolve) => {
        wake = () => {
          wake = undefined;
          if (loopTimer) clearTimeout(loopTimer);
          resolve();
        };
        loopTimer = setTimeout(() => wake?.(), delay);
      });
    }
  }

  return Object.assign(emitter, {
    id,
    runOnce,
    async drain(maxRounds = 10_000) {
      const all: JobOutcome[] = [];
      for (let i = 0; i < maxRounds; i++) {
        const done = await runOnce();
        if (done.length === 0) break;
        all.push(...done);
      }
      return all;
    },
    start() {
      if (running) return;
      running = true;
      loopDone = loop();
    },
    async stop(timeoutMs = 30_000) {
      running = false;
      wake?.();
      await loopDone;
      const idle = queue.onIdle();
      const timer = new Promise<'timeout'>((r) =>
        setTimeout(() => r('timeout'), timeoutMs).unref(),
      );
      if ((await Promise.race([idle.then(() => 'idle' as const), timer])) === 'timeout') {
        const left = lanes.ids();
        const n = await releaseJobs(db, claimId, left, now());
        logger.warn({ released: n }, 'shutdown: released jobs still running after the timeout');
      }
    },
    notify(kind?: 'alert') {
      if (kind === 'alert') alertsDue = true;
      kick();
    },
    async recoverStale() {
      const n = await releaseStaleJobs(db, now() - leaseMs, now());
      if (n) logger.warn({ jobs: n }, 'returned abandoned jobs to the queue');
      return n;
    },
  });
}
