import type { Deps } from '../deps.js';
import type { EventRow } from '../../db/stores/events.js';
import type { JobType } from '../../db/stores/jobs.js';

export interface JobRow {
  id: number;
  type: JobType;
  event_id: number | null;
  portal_id: number | null;
  entity_key: string | null;
  payload: string | null;
  status: 'pending' | 'running' | 'done' | 'dead';
  attempts: number;
  max_attempts: number;
  run_at: number;
  locked_at: number | null;
  locked_by: string | null;
  last_error: string | null;
  /** The destination (server/queue/destinations.ts) this job waits for, if any. */
  waiting_for?: string | null;
}

/** What a job handler gets. `event` is loaded when the job has an event_id. */
export interface JobContext {
  readonly deps: Deps;
  readonly job: JobRow;
  readonly event: EventRow | undefined;
  /** 1 on the first try. */
  readonly attempt: number;
}

/**
 * A job handler. Return normally when done; throw RetryableError / PermanentError /
 * PausedError (server/lib/retry-errors.ts) to steer retries. A handler may set the event's final
 * status itself (e.g. `skipped`); otherwise the worker marks it `processed` on success.
 */
export type JobHandler = (
  ctx: JobContext,
) => Promise<{ eventStatus?: 'processed' | 'skipped'; note?: string } | void>;
