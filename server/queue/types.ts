import type { Knex } from 'knex';
import type { Deps } from '../deps.js';
import type { EventRow } from '../../db/stores/events.js';
import type { JobRow } from '../../db/stores/jobs.js';

/** The row type lives with its store; re-exported for the handlers that name it. */
export type { JobRow };

/** What a job handler gets. `event` is loaded when the job has an event_id. */
export interface JobContext {
  readonly deps: Deps;
  readonly job: JobRow;
  readonly event: EventRow | undefined;
  /** 1 on the first try. */
  readonly attempt: number;
  /**
   * Asked between two steps: true when the job should give its worker slot back now (it has
   * held it long and another portal's job waits for one, server/queue/slot-turn.ts). The
   * handler then throws YieldError (server/lib/retry-errors.ts) and is run again at once.
   * Absent outside the worker.
   */
  readonly slotWanted?: () => Promise<boolean>;
}

/** What a handler that returns normally may say about its job. */
export interface JobResult {
  eventStatus?: 'processed' | 'skipped';
  note?: string;
  /**
   * Writes that belong to the outcome: run in the transaction that records the job done,
   * so they cost no commit of their own (each commit is an fsync on the main thread). Only
   * for what may be lost with the outcome, a crash before it meaning the job runs again.
   */
  commit?: (trx: Knex) => Promise<void>;
}

/**
 * A job handler. Return normally when done; throw RetryableError / PermanentError /
 * PausedError (server/lib/retry-errors.ts) to steer retries, YieldError to give the slot back. A handler may set the event's final
 * status itself (e.g. `skipped`); otherwise the worker marks it `processed` on success.
 */
export type JobHandler = (ctx: JobContext) => Promise<JobResult | void>;
